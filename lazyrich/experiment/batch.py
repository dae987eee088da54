"""Config → batch: the task, the initial weights of every network of the batch, and one metadata row each.

The batch axes ``init.lam``, ``init.scale``, ``trainer.lr`` and ``seed`` may each be a list: their Cartesian
product is trained as ONE batch. Each network's initial weights depend only on its own (seed, lam, scale), so a
network's numbers are the same whatever else shares its batch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from lazyrich import init as inits
from lazyrich.config import checks
from lazyrich.config.run import fill_group
from lazyrich.device import DTYPE
from lazyrich.tasks import Task, TaskSequence, make

__all__ = ["META_COLUMNS", "as_list", "build_batch", "build_task", "config_get", "given_batch"]

META_COLUMNS = ("lam", "scale", "lr", "seed")
"""The batch axes of one network, as columns of its metadata row (:func:`build_batch`)."""


def as_list(value: Any) -> list[Any]:
    """A config value as a list: a scalar becomes [value], a list or ListConfig a plain list."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def config_get(cfg: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """The value at the dotted key ``dotted`` (e.g. ``"task.name"``) of ``cfg``, or ``default`` where absent."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def build_task(task_cfg: Mapping[str, Any]) -> Task | TaskSequence:
    """The task of ``task_cfg`` = {name, whiten, phase, **params}; ``whiten`` true (ZCA) or ``"pca"`` whitens
    inputs; ``phase`` (an int) keeps only that phase of a task sequence, as a task of its own."""
    params = {k: v for k, v in dict(task_cfg).items() if k not in ("name", "whiten", "phase")}
    task = make(str(task_cfg["name"]), **params)
    phase = task_cfg.get("phase")
    if phase is not None:
        n_phases = len(task) if isinstance(task, TaskSequence) else 0
        if not 0 <= int(phase) < n_phases:
            raise ValueError(f"task.phase={phase} picks one phase of a task sequence, but task {task_cfg['name']!r} "
                             + (f"has phases 0 … {n_phases - 1}; pick one of those." if n_phases
                                else "is a single task; drop task.phase."))
        task = task.tasks[int(phase)]
    whiten = task_cfg.get("whiten", False)
    if whiten:
        method = "pca" if whiten == "pca" else "zca"
        if isinstance(task, TaskSequence):
            from lazyrich.tasks import Phase

            task = TaskSequence([Phase(p.task.whiten(method), p.t_budget, p.name) for p in task],
                                name=task.name)
        else:
            task = task.whiten(method)
    return task


def build_batch(cfg: Mapping[str, Any], n_in: int, n_out: int, align_to: torch.Tensor | None,
                device: torch.device) -> tuple[list[torch.Tensor], pd.DataFrame]:
    """Initial weights [W1, …, WL] (each (B, out, in)) for the Cartesian product of the batch axes, and one
    metadata row per network (lam, scale, lr, seed)."""
    init_cfg, model_cfg = fill_group("init", cfg.get("init")), fill_group("model", cfg.get("model"))
    kind, depth = init_cfg["kind"], int(model_cfg["depth"])
    hidden = model_cfg["hidden"] or min(n_in, n_out)
    widths = [n_in] + [int(hidden)] * (depth - 1) + [n_out]
    lam = init_cfg["lam"]
    if kind == "gaussian" and lam is None:  # the gaussian preset leaves λ unset: it is measured (lam_hat)
        lam = math.nan
    lams = checks.floats("init.lam", lam, allow_nan=kind == "gaussian")
    scales = checks.floats("init.scale", init_cfg["scale"], nonnegative=True)
    lrs = checks.floats("trainer.lr", fill_group("trainer", cfg.get("trainer"))["lr"], positive=True)
    seeds = checks.seeds("seed", cfg.get("seed", 0))
    align = align_to if init_cfg["align"] else None
    if kind == "gaussian" and len(lams) > 1:
        raise ValueError("init.lam is not an input of the gaussian init (its λ is measured, column lam_hat); "
                         "sweep init.scale instead, or use init=balanced.")
    perturb = float(init_cfg["perturb"] or 0.0)
    if kind == "balanced" and depth == 2 and not perturb:
        return _balanced_pairs(widths, lams, scales, lrs, seeds, align, device)
    layers: list[list[torch.Tensor]] = [[] for _ in range(depth)]
    rows = []
    for lam, scale, lr, seed in itertools.product(lams, scales, lrs, seeds):
        gen = torch.Generator().manual_seed(seed)
        if kind == "balanced" and depth == 2:
            ws = list(inits.lambda_balanced(n_in, widths[1], n_out, lam, scale=scale, generator=gen,
                                            align_to=align))
        elif kind == "balanced":
            ws = inits.deep_balanced(widths, lam, scale=scale, generator=gen, align_to=align)
        elif kind == "gaussian":
            ws = inits.gaussian(widths, scale, lecun=bool(init_cfg["lecun"]), generator=gen)
        else:
            raise ValueError(f"init.kind={kind!r} is unknown; choose 'balanced' or 'gaussian'.")
        ws = inits.perturb(ws, perturb, generator=gen)
        for l, w in enumerate(ws):
            layers[l].append(w)
        rows.append({"lam": lam if kind == "balanced" else float("nan"), "scale": scale, "lr": lr, "seed": seed})
    return _with_balance([torch.stack(ws).to(device=device, dtype=DTYPE) for ws in layers], pd.DataFrame(rows))


def given_batch(weights: Sequence[torch.Tensor], meta: pd.DataFrame,
                device: torch.device) -> tuple[list[torch.Tensor], pd.DataFrame]:
    """A batch whose initial weights are given rather than built from an init config (e.g. a re-factorised
    pretrained product): float64 copies on ``device`` and the metadata, one row per network with at least its
    ``lr``, completed with the measured λ̂ like :func:`build_batch`."""
    weights = [torch.as_tensor(w).detach().to(device=device, dtype=DTYPE).clone() for w in weights]
    meta = pd.DataFrame(meta).reset_index(drop=True)
    if len(meta) != weights[0].shape[0]:
        raise ValueError(f"the initial weights hold {weights[0].shape[0]} networks but their meta has {len(meta)} "
                         f"rows; give one row per network.")
    if "lr" not in meta:
        raise ValueError("the meta of given initial weights needs an `lr` column (each network's step).")
    checks.floats("lr", meta["lr"].tolist(), positive=True)
    return _with_balance(weights, meta)


def _balanced_pairs(widths: list[int], lams: list[float], scales: list[float], lrs: list[float], seeds: list[int],
                    align: torch.Tensor | None, device: torch.device) -> tuple[list[torch.Tensor], pd.DataFrame]:
    """The λ-balanced two-layer batch of :func:`build_batch`, one factorisation per (scale, seed) for all λ.

    ``inits.lambda_balanced(…, generator=seeded)`` draws the product and then the hidden rotation, neither of
    which depends on λ: drawing them once per (scale, seed) and re-factorising the product at every λ gives each
    network the weights it gets alone (the same to rounding, 1e-16), in one batched SVD instead of one per
    network (14 s of a 65 536-network run).
    """
    n_in, n_hidden, n_out = widths
    cpu = torch.device("cpu")
    lam_t = torch.tensor(lams, dtype=DTYPE)
    pairs = {}
    for scale, seed in itertools.product(scales, seeds):
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}.")
        gen = torch.Generator().manual_seed(seed)
        product = inits._initial_product((n_out, n_in), scale, align, gen, DTYPE, cpu)  # as lambda_balanced
        w1, w2 = inits.refactorise(product.expand(len(lams), n_out, n_in), lam_t, n_hidden=n_hidden,
                                   rotate=False)
        r = inits.random_orthogonal(n_hidden, generator=gen, dtype=DTYPE)
        pairs[scale, seed] = (r @ w1, w2 @ r.mT)
    index = [(i, scale, lr, seed) for i, scale, lr, seed in itertools.product(range(len(lams)), scales, lrs, seeds)]
    weights = [torch.stack([pairs[scale, seed][layer][i] for i, scale, _, seed in index]).to(device=device)
               for layer in (0, 1)]
    meta = pd.DataFrame([{"lam": lams[i], "scale": scale, "lr": lr, "seed": seed} for i, scale, lr, seed in index])
    return _with_balance(weights, meta)


def _with_balance(weights: list[torch.Tensor], meta: pd.DataFrame) -> tuple[list[torch.Tensor], pd.DataFrame]:
    """The weights and their metadata with the measured λ̂ and balance deviation of each network."""
    lam_hat, dev = inits.balance(weights)
    meta["lam_hat"] = lam_hat[:, 0].cpu().numpy()
    meta["balance_dev0"] = dev[:, 0].cpu().numpy()
    return weights, meta
