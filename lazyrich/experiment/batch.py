"""Config → batch: the task, the initial weights of every network of the batch, and one metadata row each.

The batch axes ``init.lam``, ``init.scale``, ``trainer.lr``, the training options (``trainer.weight_decay``,
``trainer.output_scale``, ``trainer.layer_lr``) and ``seed`` may each be a list: their Cartesian product is trained
as ONE batch. Each network's initial weights depend only on its own (seed, lam, scale) and, for a balanced init with
layer rates, its rates (the init is balanced in the rates' units, :class:`lazyrich.train.TrainOptions`), so a
network's numbers are the same whatever else shares its batch. A training option becomes a metadata column
(``weight_decay``, ``output_scale``, ``layer_lr_<l>``) only in a run that sets it.
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
from lazyrich.config.run import InitConfig, ModelConfig, TrainerConfig
from lazyrich.device import DTYPE
from lazyrich.tasks import Task, TaskSequence, make
from lazyrich.train import TrainOptions

__all__ = ["META_COLUMNS", "batch_size", "build_batch", "build_task", "given_batch", "option_axes", "option_columns",
           "options_of"]

META_COLUMNS = ("lam", "scale", "lr", "seed")
"""The batch axes of one network, as columns of its metadata row (:func:`build_batch`); the training options add
theirs (:func:`option_columns`) in a run that sets them."""


def option_axes(trainer: TrainerConfig) -> dict[str, list[Any]]:
    """The training options of a resolved ``trainer`` that a run sets (not the plain GD of the loss), each as
    its list of values (a batch axis): {"weight_decay": [...], "output_scale": [...], "layer_lr": [(m_1, …)]}."""
    axes: dict[str, list[Any]] = {}
    if trainer.weight_decay != [0.0]:
        axes["weight_decay"] = list(trainer.weight_decay)
    if trainer.output_scale != [1.0]:
        axes["output_scale"] = list(trainer.output_scale)
    if trainer.layer_lr is not None:
        axes["layer_lr"] = [tuple(rates) for rates in trainer.layer_lr]
    return axes


def batch_size(init: InitConfig, trainer: TrainerConfig, seeds: Sequence[int]) -> int:
    """How many networks :func:`build_batch` builds for these resolved settings (the product of the axes' sizes),
    without building them."""
    sizes = [len(init.lam), len(init.scale), len(trainer.lr), len(seeds), *map(len, option_axes(trainer).values())]
    return math.prod(sizes)


def _option_row(names: Sequence[str], values: Sequence[Any]) -> dict[str, float]:
    """The metadata columns of one combination of option values (``layer_lr`` as layer_lr_1, …)."""
    row: dict[str, float] = {}
    for name, value in zip(names, values, strict=True):
        if name == "layer_lr":
            row.update({f"layer_lr_{l}": float(m) for l, m in enumerate(value, start=1)})
        else:
            row[name] = float(value)
    return row


def option_columns(meta: pd.DataFrame) -> list[str]:
    """The training-option columns a batch's ``meta`` holds, in order."""
    return [c for c in meta.columns if c in ("weight_decay", "output_scale") or c.startswith("layer_lr_")]


def options_of(meta: pd.DataFrame) -> dict[str, Any]:
    """The per-network training options of a batch from its ``meta`` columns, as the keyword arguments of
    :func:`lazyrich.train.train` and the theories: layer_lr (B, L), output_scale (B,), weight_decay (B,) or None."""
    rates = sorted((c for c in meta.columns if c.startswith("layer_lr_")), key=lambda c: int(c.rsplit("_", 1)[1]))
    return {"layer_lr": meta[rates].to_numpy(dtype=float) if rates else None,
            "output_scale": meta["output_scale"].to_numpy(dtype=float) if "output_scale" in meta else None,
            "weight_decay": meta["weight_decay"].to_numpy(dtype=float) if "weight_decay" in meta else None}


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


def build_batch(init: InitConfig, model: ModelConfig, lrs: Sequence[float], seeds: Sequence[int], n_in: int,
                n_out: int, align_to: torch.Tensor | None, device: torch.device,
                options: Mapping[str, Sequence[Any]] | None = None,
                rows: range | None = None) -> tuple[list[torch.Tensor], pd.DataFrame]:
    """Initial weights [W1, …, WL] (each (B, out, in)) for the Cartesian product of the batch axes (``init.lam``,
    ``init.scale``, ``lrs``, the training ``options`` of :func:`option_axes`, ``seeds``; lists, as
    :func:`lazyrich.config.run.resolve_run` leaves them), and one metadata row per network (lam, scale, lr, its
    options, seed). ``rows``: only those networks of the product (a contiguous slice, in its order), each
    built as in the whole batch."""
    kind, depth = init.kind, model.depth
    widths = [n_in] + [model.hidden or min(n_in, n_out)] * (depth - 1) + [n_out]
    align = align_to if init.align else None
    names = list(options or {})
    combos = list(itertools.product(*(options or {}).values()))
    if kind == "balanced" and depth == 2 and not init.perturb:
        weights, meta = _balanced_pairs(widths, init.lam, init.scale, lrs, seeds, align, device, names, combos, rows)
        return _with_balance(_in_rates(weights, meta, kind), meta)
    layers: list[list[torch.Tensor]] = [[] for _ in range(depth)]
    rows_meta = []
    product = itertools.product(init.lam, init.scale, lrs, combos, seeds)
    for lam, scale, lr, combo, seed in product if rows is None else itertools.islice(product, rows.start, rows.stop):
        gen = torch.Generator().manual_seed(seed)
        if kind == "balanced" and depth == 2:
            ws = list(inits.lambda_balanced(n_in, widths[1], n_out, lam, scale=scale, generator=gen,
                                            align_to=align))
        elif kind == "balanced":
            ws = inits.deep_balanced(widths, lam, scale=scale, generator=gen, align_to=align)
        else:
            scales = scale if init.gains is None else [scale * gain for gain in init.gains]
            ws = inits.gaussian(widths, scales, lecun=init.lecun, variance=init.variance, generator=gen)
        ws = inits.perturb(ws, init.perturb, generator=gen)
        for l, w in enumerate(ws):
            layers[l].append(w)
        rows_meta.append({"lam": lam if kind == "balanced" else math.nan, "scale": scale, "lr": lr,
                          **_option_row(names, combo), "seed": seed})
    meta = pd.DataFrame(rows_meta)
    weights = [torch.stack(ws).to(device=device, dtype=DTYPE) for ws in layers]
    return _with_balance(_in_rates(weights, meta, kind), meta)


def _in_rates(weights: list[torch.Tensor], meta: pd.DataFrame, kind: str) -> list[torch.Tensor]:
    """A balanced init built as V, the weights in the units of each network's layer rates, turned into
    W_l = ρ_l·V_l (:class:`lazyrich.train.TrainOptions`); other inits and runs without layer rates unchanged."""
    rates = options_of(meta)["layer_lr"]
    if kind != "balanced" or rates is None:
        return weights
    to_v = TrainOptions.of(layer_lr=rates).to_rate_units(len(meta), len(weights)).to(weights[0])
    return [w / to_v[:, l, None, None] for l, w in enumerate(weights)]


def given_batch(weights: Sequence[torch.Tensor], meta: pd.DataFrame, device: torch.device,
                options: Mapping[str, Sequence[Any]] | None = None) -> tuple[list[torch.Tensor], pd.DataFrame]:
    """A batch whose initial weights are given rather than built from an init config (e.g. a re-factorised
    pretrained product): float64 copies on ``device`` and the metadata, one row per network with at least its
    ``lr``, completed with the training ``options`` (:func:`option_axes`, one value each) and the measured λ̂
    like :func:`build_batch`."""
    weights = [torch.as_tensor(w).detach().to(device=device, dtype=DTYPE).clone() for w in weights]
    meta = pd.DataFrame(meta).reset_index(drop=True)
    if len(meta) != weights[0].shape[0]:
        raise ValueError(f"the initial weights hold {weights[0].shape[0]} networks but their meta has {len(meta)} "
                         f"rows; give one row per network.")
    if "lr" not in meta:
        raise ValueError("the meta of given initial weights needs an `lr` column (each network's step).")
    checks.floats("lr", meta["lr"].tolist(), positive=True)
    for name, values in (options or {}).items():
        if len(values) != 1:
            raise ValueError(f"trainer.{name} has {len(values)} values, but given initial weights are one batch "
                             f"already: give one value, or one {name} column per network in their meta.")
        for column, value in _option_row([name], values).items():
            if column not in meta:
                meta[column] = value
    return _with_balance(weights, meta)


def _balanced_pairs(widths: list[int], lams: list[float], scales: list[float], lrs: list[float], seeds: list[int],
                    align: torch.Tensor | None, device: torch.device, names: Sequence[str] = (),
                    combos: Sequence[tuple] = ((),),
                    rows: range | None = None) -> tuple[list[torch.Tensor], pd.DataFrame]:
    """The λ-balanced two-layer batch of :func:`build_batch`, one factorisation per (scale, seed) for all λ.

    ``inits.lambda_balanced(…, generator=seeded)`` draws the product and then the hidden rotation, neither of
    which depends on λ: drawing them once per (scale, seed) and re-factorising the product at every λ gives each
    network the weights it gets alone (the same to rounding, 1e-16), in one batched SVD instead of one per
    network (14 s of a 65 536-network run). Only the (scale, seed) pairs and λ values of ``rows`` are factorised
    (each matrix of a batched SVD and product on its own: the same bits as in the whole batch).
    """
    n_in, n_hidden, n_out = widths
    cpu = torch.device("cpu")
    for scale in scales:
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}.")
    index = list(itertools.product(range(len(lams)), scales, lrs, combos, seeds))
    index = index if rows is None else index[rows.start:rows.stop]
    at = {i: k for k, i in enumerate(sorted({i for i, *_ in index}))}  # the λ values needed, by index
    lam_t = torch.tensor([lams[i] for i in at], dtype=DTYPE)
    needed = {(scale, seed) for _, scale, _, _, seed in index}
    pairs = {}
    for scale, seed in (pair for pair in itertools.product(scales, seeds) if pair in needed):
        gen = torch.Generator().manual_seed(seed)
        product = inits._initial_product((n_out, n_in), scale, align, gen, DTYPE, cpu)  # as lambda_balanced
        w1, w2 = inits.refactorise(product.expand(len(at), n_out, n_in), lam_t, n_hidden=n_hidden, rotate=False)
        r = inits.random_orthogonal(n_hidden, generator=gen, dtype=DTYPE)
        pairs[scale, seed] = (r @ w1, w2 @ r.mT)
    weights = [torch.stack([pairs[scale, seed][layer][at[i]] for i, scale, _, _, seed in index]).to(device=device)
               for layer in (0, 1)]
    meta = pd.DataFrame([{"lam": lams[i], "scale": scale, "lr": lr, **_option_row(names, combo), "seed": seed}
                         for i, scale, lr, combo, seed in index])
    return weights, meta


def _with_balance(weights: list[torch.Tensor], meta: pd.DataFrame) -> tuple[list[torch.Tensor], pd.DataFrame]:
    """The weights and their metadata with the measured λ̂ and balance deviation of each network, measured in the
    units of its layer rates (V_l = W_l/ρ_l, :class:`lazyrich.train.TrainOptions`; W itself without rates)."""
    rates = options_of(meta)["layer_lr"]
    measured = weights
    if rates is not None:
        to_v = TrainOptions.of(layer_lr=rates).to_rate_units(len(meta), len(weights)).to(weights[0])
        measured = [w * to_v[:, l, None, None] for l, w in enumerate(weights)]
    lam_hat, dev = inits.balance(measured)
    meta["lam_hat"] = lam_hat[:, 0].cpu().numpy()
    meta["balance_dev0"] = dev[:, 0].cpu().numpy()
    return weights, meta
