"""One experiment, end to end: task → init → trainer → theory → results (tables, npz, PNG, W&B).

The config is a plain mapping (Hydra composes it; Python users can pass a dict). The batch axes ``init.lam``,
``init.scale``, ``trainer.lr`` and ``seed`` may each be a list: their Cartesian product is trained as ONE batch.
Each network's initial weights depend only on its own (seed, lam, scale), so a network's numbers are the same
whatever else shares its batch.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import checks, identity, locking, metrics, results
from lazyrich import init as inits
from lazyrich.chunking import chunk_size, release_memory
from lazyrich.config_schema import fill_group, fill_run
from lazyrich.curves import Curves, predicted, simulated
from lazyrich.device import DTYPE, resolve_device
from lazyrich.tasks import Task, TaskSequence, make
from lazyrich.train import Trajectory, log_grid, plan_steps, train

log = logging.getLogger(__name__)

__all__ = ["BATCH_KEYS", "ExperimentResult", "as_list", "build_batch", "build_task", "choose_theory",
           "predict_theory",
           "run_experiment"]

BATCH_KEYS = ("init.lam", "init.scale", "trainer.lr", "seed", "suite.lams")
"""Config keys whose lists become the batch axis of one training run (not separate processes); for
``lazyrich bench``, ``suite.lams`` is the λ sweep of one suite run."""

META_COLUMNS = ("lam", "scale", "lr", "seed")

"""A run folder keeps the matrices of the first ``trainer.matrix_seeds`` seeds of each configuration."""


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` produced: the long table, one summary row per network, and the raw objects.

    A batch run in several chunks keeps neither ``trajectories`` nor ``predictions`` (empty lists), and its
    ``frame`` is None when it was written to a run folder: read it with :func:`lazyrich.results.load`.
    """

    frame: pd.DataFrame | None
    summary: pd.DataFrame
    run_dir: Path | None
    trajectories: list[Trajectory]
    predictions: list[Any]
    theory_notes: list[str]
    meta: pd.DataFrame
    loss_matrix: np.ndarray | None = None
    figures: list[Path] = field(default_factory=list)

    def curves(self) -> tuple[list[Curves], list[Curves | None]]:
        """(simulation, theory) curves of each phase in one shape (:mod:`lazyrich.curves`); the theory's
        matrices at the simulation's log points, None for a phase no theory predicted."""
        if not self.trajectories:
            raise ValueError("this batch ran in several chunks and kept no curves: read its run folder with "
                             "lazyrich.results.load, or run it with trainer.batch_chunk=null.")
        sim = [simulated(traj, self.meta) for traj in self.trajectories]
        theory = [None if pred is None else predicted(pred, self.meta, traj.matrix_index)
                  for traj, pred in zip(self.trajectories, self.predictions, strict=True)]
        return sim, theory


def as_list(value: Any) -> list[Any]:
    """A config value as a list: a scalar becomes [value], a list or ListConfig a plain list."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _get(cfg: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def build_task(task_cfg: Mapping[str, Any]) -> Task | TaskSequence:
    """The task of ``task_cfg`` = {name, whiten, **params}; ``whiten`` true (ZCA) or ``"pca"`` whitens inputs."""
    params = {k: v for k, v in dict(task_cfg).items() if k not in ("name", "whiten")}
    task = make(str(task_cfg["name"]), **params)
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


def choose_theory(name: str | None, task: Task, weights: list[torch.Tensor],
                  options: Mapping[str, Any] | None = None) -> tuple[Any, list[str]]:
    """(Theory or None, notes): theory ``name`` if it applies to ``weights`` on ``task`` (``auto`` picks the
    most exact that applies; ``none`` skips); the notes say which theory was chosen, or why none was.
    ``options`` (e.g. the trainer's ``lr`` and ``dtype``) go to the theories that take them (aligned_gd, gd_flow,
    escape)."""
    if name in (None, "none", "null"):
        return None, ["theory=none"]
    from lazyrich import theory as th
    from lazyrich.theory.registry import filter_options

    stats = th.TaskStats.from_task(task)
    if name == "auto":
        chosen, why = th.select_theory(stats, weights)
        return chosen, [f"theory=auto chose {chosen.name}: {why}"]
    chosen = th.get_theory(name, **filter_options(name, dict(options or {})))
    reason = chosen.check(stats, weights)
    if reason is not None:
        return None, [f"theory {name} skipped: {reason}"]
    return chosen, [f"theory={name}"]


def predict_theory(name: str | None, task: Task, weights: list[torch.Tensor],
                   t: torch.Tensor, options: Mapping[str, Any] | None = None) -> tuple[Any, list[str]]:
    """(Prediction or None, notes) of theory ``name`` (``auto`` picks the most exact that applies; ``none``
    skips) for ``weights`` on the grid ``t`` (B, T); the notes say which theory ran, or why none did.
    ``options`` go to the theories that take them (see :func:`choose_theory`)."""
    chosen, notes = choose_theory(name, task, weights, options)
    if chosen is None:
        return None, notes
    from lazyrich import theory as th

    try:
        prediction = chosen.predict(th.TaskStats.from_task(task), weights, t)
    except (ValueError, ArithmeticError, torch.linalg.LinAlgError) as err:  # the simulation is still written
        return None, [*notes, f"theory {chosen.name} skipped: {type(err).__name__}: {err}"]
    return prediction, notes + list(getattr(prediction, "notes", []))


def _rebalanced(weights: list[torch.Tensor]) -> tuple[list[torch.Tensor], str]:
    """The theory's restart point after a phase switch: the simulated product re-factorised at its measured λ̂.

    GD drifts W2ᵀW2 − W1W1ᵀ by O(η·t) (docs/theory.md §8) while the closed form needs it exact; re-factorising keeps
    the network function and λ̂ and moves the Gram blocks by the size of that drift, which the note reports.
    """
    if len(weights) != 2:
        return weights, "theory restarts from the simulated weights"
    lam, dev = inits.balance(weights)
    scale = sum(torch.linalg.matrix_norm(w) ** 2 for w in weights)
    rel = float((dev[:, 0] / scale.clamp_min(1e-300)).max())
    try:
        w1, w2 = inits.refactorise(metrics.product(weights), lam[:, 0], n_hidden=weights[0].shape[1], rotate=False)
    except ValueError as err:
        return weights, f"theory restarts from the simulated weights (cannot re-balance them: {err})"
    return [w1, w2], (f"theory restarts from the simulated W2W1 re-factorised at its measured λ̂ (GD left a "
                      f"relative balance deviation of up to {rel:.2g})")


def plan_work(budgets: Sequence[float | None], lrs: np.ndarray, trainer_cfg: Mapping[str, Any]) -> str:
    """Check every phase's step count before any training (see :func:`lazyrich.train.plan_steps`) and say how
    much work the run is: networks × GD steps. ``budgets`` holds each phase's t budget (None: trainer.t_max)."""
    trainer_cfg = fill_group("trainer", trainer_cfg)
    lr = torch.tensor(np.array(lrs, dtype=np.float64))
    steps = 0
    for budget in budgets:
        t_max = checks.floats("trainer.t_max", trainer_cfg["t_max"] if budget is None else budget, positive=True)[0]
        grid = log_grid(t_max, int(trainer_cfg["n_log"]), trainer_cfg["spacing"])
        steps += int(plan_steps(grid, lr, trainer_cfg["max_steps"])[:, -1].max())
    return (f"work: {len(lr)} networks × {steps:,} GD steps ({len(budgets)} phase(s)); budget "
            f"trainer.max_steps={trainer_cfg['max_steps'] or 'default'} per phase")


def run_experiment(cfg: Mapping[str, Any], run_dir: str | Path | None = None, *, log_wandb: bool = True,
                   plot: bool = True) -> ExperimentResult:
    """Train the batch of ``cfg`` on its task (or task sequence), predict it with the chosen theory, and write
    the run folder (if ``run_dir``). Returns an :class:`ExperimentResult`.

    A ``run_dir`` is written by one process at a time (:class:`~lazyrich.locking.FolderLock`) and holds one
    configuration: a config other than the one it records (batch axes aside) is refused before training.

    A batch larger than ``trainer.batch_chunk`` (``auto``: sized from memory, see :mod:`lazyrich.chunking`,
    and only when writing a run folder) runs chunk by chunk, each chunk's metrics and matrices written as soon
    as it is done; each network's numbers are the same whatever the chunking. Then the result keeps the
    summary, not the trajectories, nor the long table when it was written (``frame`` is None: read it with
    ``results.load(run_dir, columns=…, filters=…)``).
    """
    cfg = fill_run(cfg)
    if run_dir is None:
        return _run_experiment(cfg, None, log_wandb=log_wandb, plot=plot)
    with locking.FolderLock(run_dir):
        identity.check(run_dir, cfg, identity.RUN_IGNORED)  # recorded with the results, by _write
        return _run_experiment(cfg, run_dir, log_wandb=log_wandb, plot=plot)


def _run_experiment(cfg: Mapping[str, Any], run_dir: str | Path | None, *, log_wandb: bool,
                    plot: bool) -> ExperimentResult:
    started = time.perf_counter()
    device = resolve_device(cfg.get("device", "auto"))
    task = build_task(cfg["task"])
    phases = list(task) if isinstance(task, TaskSequence) else None
    first = phases[0].task if phases else task
    trainer_cfg = dict(cfg.get("trainer", {}))
    weights, meta = build_batch(cfg, first.n_in, first.n_out, first.sigma_yx, device)
    work = plan_work([p.t_budget for p in phases] if phases else [None], meta["lr"].to_numpy(), trainer_cfg)
    (log.info if run_dir is not None else log.debug)(work)
    theories, notes = _theories(cfg, task, weights)
    dtype = _train_dtype(trainer_cfg, theories[1], notes)
    n_log, chunk = int(trainer_cfg["n_log"]), trainer_cfg["batch_chunk"]
    # In memory (no run folder: suites, figures, the Python API) everything is kept, so `auto` is one chunk.
    size = len(meta) if run_dir is None and chunk in (None, "auto") else chunk_size(
        chunk, len(meta), n_in=first.n_in, n_out=first.n_out, n_log=n_log,
        n_matrix=min(int(trainer_cfg["n_matrix"]), n_log), n_phases=len(phases or [None]))
    single = size >= len(meta)
    sink = _RunSink(Path(run_dir), meta, trainer_cfg["matrix_seeds"]) if run_dir is not None else None
    chunks = []
    for start in range(0, len(meta), size):
        rows = slice(start, start + size)
        chunk = _train_chunk(cfg, task, [w[rows] for w in weights], meta.iloc[rows].reset_index(drop=True),
                             theories, start, dtype)
        if sink is not None:
            sink.append(chunk)
        if not single:  # keep only what is small: the summary and the notes (and the table if not written)
            chunk.trajectories, chunk.predictions = [], []
            chunk.frame = chunk.frame if sink is None else None
        chunks.append(chunk)
        release_memory()
    notes = list(dict.fromkeys(notes + [n for c in chunks for n in c.notes]))
    for note in notes:
        log.debug(note)
    result = _combine(chunks, meta, notes, single=single, keep_frame=single or sink is None)
    if sink is not None:
        _write(result, sink, cfg, log_wandb=log_wandb, plot=plot, started=started)
    return result


def _theories(cfg: Mapping[str, Any], task: Task | TaskSequence,
              weights: list[torch.Tensor]) -> tuple[tuple[str | None, str | None], list[str]]:
    """((theory of the first phase, theory of later phases), notes): names, None for no theory. ``auto`` is
    resolved here, once for the whole batch, so that every chunk runs the same theory."""
    name = cfg["theory"]["name"]  # filled by config_schema.fill_run
    if name in ("none", None, "null"):
        return (None, None), ["theory=none"]
    if cfg["model"]["activation"] not in ("none", "linear"):
        return (None, None), ["theory skipped: the theories describe linear networks; model.activation is set."]
    if name != "auto":
        return (name, name), []
    sequence = isinstance(task, TaskSequence)
    chosen, notes = choose_theory(name, list(task)[0].task if sequence else task, weights)
    return (chosen.name, name), [("phase 0: " if sequence else "") + n for n in notes]


@dataclass
class _Chunk:
    """What one chunk of the batch produced (networks ``start`` … ``start + len(meta) − 1``)."""

    start: int
    frame: pd.DataFrame | None
    summary: pd.DataFrame
    trajectories: list[Trajectory]
    predictions: list[Any]
    notes: list[str]
    loss_matrix: np.ndarray | None


@contextlib.contextmanager
def _global_network_numbers(start: int) -> Iterator[None]:
    """Re-issue the trainer's "network <b> diverged" warnings of a chunk with the batch-wide index start + b."""
    if start == 0:
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = re.sub(r"^network (\d+)", lambda m: f"network {int(m[1]) + start}", str(w.message))
        warnings.warn_explicit(text, w.category, w.filename, w.lineno)


def _train_phases(cfg: Mapping[str, Any], task: Task | TaskSequence, init64: list[torch.Tensor],
                  meta: pd.DataFrame, theories: tuple[str | None, str | None], start: int,
                  dtype: torch.dtype) -> tuple[list[pd.DataFrame], list[Trajectory], list[Any], list[list], list[str]]:
    """Train one chunk phase after phase and predict each phase: (frames, trajectories, predictions, the
    weights after each phase (the init first), notes)."""
    phases = list(task) if isinstance(task, TaskSequence) else None
    trainer_cfg, model_cfg = dict(cfg.get("trainer", {})), dict(cfg.get("model", {}))
    weights = [w.to(dtype) for w in init64]
    frames, trajectories, predictions, phase_weights, notes = [], [], [], [weights], []
    t_offset = torch.zeros(len(meta), dtype=torch.float64)
    options = {"lr": meta["lr"].to_numpy(), "dtype": dtype}
    for index, phase in enumerate(phases or [None]):
        phase_task = phase.task if phase is not None else task
        budget = phase.t_budget if phase is not None and phase.t_budget is not None else trainer_cfg["t_max"]
        with _global_network_numbers(start):
            traj = train(phase_task.to(weights[0].device), weights, meta["lr"].to_numpy(), t_max=float(budget),
                         n_log=int(trainer_cfg["n_log"]), spacing=trainer_cfg["spacing"],
                         n_matrix=int(trainer_cfg["n_matrix"]), activation=model_cfg["activation"],
                         batch_size=trainer_cfg["batch_size"], seed=int(as_list(cfg.get("seed", 0))[0]),
                         check_every=int(trainer_cfg["check_every"]),
                         progress=bool(trainer_cfg["progress"]), max_steps=trainer_cfg["max_steps"])
        prefix = f"phase {index}: " if phases else ""
        # Phase 0: the float64 init (its rounding to a lower trainer dtype is inside theory_rtol); later phases
        # restart from the trainer's weights, promoted here so that the theory does not warn again.
        theory_weights, name = (init64, theories[0]) if index == 0 else ([w.to(DTYPE) for w in weights], theories[1])
        if index > 0 and name is not None:
            theory_weights, note = _rebalanced(theory_weights)
            notes.append(prefix + note)
        prediction, theory_notes = (predict_theory(name, phase_task, theory_weights, traj.t, options)
                                    if name is not None else (None, []))
        notes += [prefix + n for n in theory_notes]
        frame = results.to_frame(traj, meta, prediction, phase=index if phases else None, t_offset=t_offset)
        frame["net"] += start
        if phases:
            frame.insert(frame.columns.get_loc("phase") + 1, "task", phase_task.name)
        frames.append(frame)
        trajectories.append(traj)
        predictions.append(prediction)
        t_offset = t_offset + traj.t[:, -1].cpu()
        weights = traj.final_weights
        phase_weights.append(weights)
    return frames, trajectories, predictions, phase_weights, notes


def _train_chunk(cfg: Mapping[str, Any], task: Task | TaskSequence, init64: list[torch.Tensor],
                 meta: pd.DataFrame, theories: tuple[str | None, str | None], start: int,
                 dtype: torch.dtype) -> _Chunk:
    """Train, predict and tabulate the networks ``start`` … of one chunk (see :func:`_train_phases`)."""
    frames, trajectories, predictions, phase_weights, notes = _train_phases(cfg, task, init64, meta, theories,
                                                                            start, dtype)
    phases = list(task) if isinstance(task, TaskSequence) else None
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    loss_matrix = (metrics.loss_matrix(phase_weights[1:], [p.task for p in phases]).cpu().numpy()
                   if phases else None)
    last = predictions[-1]
    summary = results.summary_of(simulated(trajectories[-1], meta), None if last is None else predicted(last),
                                 [*META_COLUMNS, "lam_hat"], first_net=start)
    summary = _add_saddle_columns(summary, predictions[-1])
    if not phases and cfg["trainer"]["batch_size"] is None:
        summary = _derived_agreement(summary, predictions[-1], task, meta["lr"].to_numpy(), dtype,
                                     two_layer=len(init64) == 2)
    return _Chunk(start, frame, summary, trajectories, predictions, notes, loss_matrix)


def _combine(chunks: list[_Chunk], meta: pd.DataFrame, notes: list[str], *, single: bool,
             keep_frame: bool) -> ExperimentResult:
    frame = (chunks[0].frame if single else pd.concat([c.frame for c in chunks], ignore_index=True)
             ) if keep_frame else None
    summary = pd.concat([c.summary for c in chunks], ignore_index=True) if not single else chunks[0].summary
    losses = [c.loss_matrix for c in chunks if c.loss_matrix is not None]
    return ExperimentResult(frame, summary, None, chunks[0].trajectories if single else [],
                            chunks[0].predictions if single else [], notes, meta,
                            np.concatenate(losses) if losses else None)


def _train_dtype(trainer_cfg: Mapping[str, Any], theory_name: str | None, notes: list[str]) -> torch.dtype:
    """The trainer's dtype (``trainer.dtype``, float64 by default); below float64 with a theory, one warning."""
    name = str(trainer_cfg["dtype"] or "float64")
    dtype = getattr(torch, name)  # one of the schema's choices (config_schema), checked by fill_run
    if dtype != DTYPE and theory_name not in ("none", None):
        msg = (f"trainer.dtype={name}: the {name} run is compared with a float64 theory from the float64 init; "
               f"the agreement tolerance adds 1000·u = {1000 * torch.finfo(dtype).eps:.1g} for its rounding "
               f"(theory_rtol in the summary).")
        log.warning(msg)
        notes.append(msg)
    return dtype


def _derived_agreement(summary: pd.DataFrame, prediction, task: Task, lr: np.ndarray, dtype: torch.dtype, *,
                       two_layer: bool) -> pd.DataFrame:
    """theory_rtol: the GD–flow tolerance derived from the leading O(lr) correction (lazyrich.theory.gd_flow) for
    two-layer flow theories, rounding only for the GD theories; theory_agrees is then judged against it."""
    if prediction is None or "theory_max_rel_err" not in summary or not two_layer:
        return summary
    from lazyrich.theory import TaskStats
    from lazyrich.theory.gd_flow import DTYPE_FLOOR, gd_flow_rtol

    eps = torch.finfo(dtype).eps
    if prediction.theory == "aligned_gd":
        rtol = np.full(len(summary), DTYPE_FLOOR * eps)
    elif prediction.theory in ("exact", "aligned", "ode"):  # gradient-flow theories
        rtol = gd_flow_rtol(prediction, TaskStats.from_task(task), torch.tensor(np.array(lr)), dtype).cpu().numpy()
    else:
        return summary
    summary = summary.copy()
    summary["theory_rtol"] = rtol
    summary["theory_agrees"] = summary["theory_max_rel_err"].to_numpy() <= rtol
    return summary


def _add_saddle_columns(summary: pd.DataFrame, prediction) -> pd.DataFrame:
    """The theory's verdict per network: does the flow converge to a saddle, and to what loss as t → ∞."""
    if prediction is None or getattr(prediction, "converges_to_saddle", None) is None:
        return summary
    summary = summary.copy()
    summary["theory_saddle"] = prediction.converges_to_saddle.cpu().numpy().astype(bool)
    summary["theory_limit_loss"] = prediction.final_loss.cpu().numpy()
    if getattr(prediction, "ode_fallback", None) is not None:  # the closed form handed these to the ode theory
        summary["theory_ode_fallback"] = prediction.ode_fallback.cpu().numpy().astype(bool)
    return summary


def _matrices(chunk: _Chunk) -> dict[str, np.ndarray]:
    """The matrix arrays of one chunk, batch first: ``[phase<i>_]t``, ``sim_<name>``, ``theory_<name>``."""
    matrices: dict[str, np.ndarray] = {}
    for i, (traj, pred) in enumerate(zip(chunk.trajectories, chunk.predictions, strict=True)):
        key = f"phase{i}_" if len(chunk.trajectories) > 1 else ""
        matrices[f"{key}t"] = traj.t[:, traj.matrix_index].cpu().numpy()
        for name, value in traj.matrices.items():
            matrices[f"{key}sim_{name}"] = value.cpu().numpy()
        if pred is not None:
            for name in ("product", "w1tw1", "wwt_out"):
                value = getattr(pred, name, None)
                if value is not None:
                    matrices[f"{key}theory_{name}"] = value[:, traj.matrix_index.to(value.device)].cpu().numpy()
    if chunk.loss_matrix is not None:
        matrices["loss_matrix"] = chunk.loss_matrix
    return matrices


class _RunSink:
    """The run folder being written while the chunks run (see :class:`lazyrich.storage.RunWriter`).

    Matrices are written for the networks of the first ``matrix_seeds`` seeds of each configuration (None:
    every network): the curves of every network are kept, and a network's matrices can always be recomputed
    by running its (λ, scale, lr, seed) alone, since its init depends on nothing else.
    """

    def __init__(self, run_dir: Path, meta: pd.DataFrame, matrix_seeds: int | None) -> None:
        from lazyrich.storage import RunWriter

        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / results.DONE).unlink(missing_ok=True)  # being rewritten: unfinished until the manifest is in
        self.run_dir = run_dir
        self.writer = RunWriter(run_dir)
        self.columns: list[str] = []
        if matrix_seeds is not None and matrix_seeds < 1:  # its type is checked by the schema
            raise ValueError(f"trainer.matrix_seeds must be a positive int or null (every seed), got "
                             f"{matrix_seeds!r}.")
        seeds = sorted(meta["seed"].unique())
        self.kept = meta["seed"].isin(seeds[:matrix_seeds] if matrix_seeds else seeds).to_numpy()

    def append(self, chunk: _Chunk) -> None:
        stop = chunk.start + len(chunk.summary)
        keep = np.flatnonzero(self.kept[chunk.start:stop])
        arrays = {k: v[keep] for k, v in _matrices(chunk).items()}
        self.writer.append(chunk.start, stop, chunk.frame, arrays, nets=chunk.start + keep)
        self.columns = list(chunk.frame.columns)


def _plot_frame(result: ExperimentResult, sink: _RunSink, hue: str) -> pd.DataFrame:
    """The long table for the curves figure: in memory, or only its plotted columns read back from disk."""
    if result.frame is not None:
        return result.frame
    from lazyrich.storage import read_metrics

    wanted = [c for c in sink.columns if c in (hue, "t") or c.endswith(("/loss", "/kernel_distance"))]
    return read_metrics(sink.run_dir, columns=wanted)  # the unit is not finished yet: no verification


def _write(result: ExperimentResult, sink: _RunSink, cfg: Mapping[str, Any], *, log_wandb: bool,
           plot: bool, started: float) -> None:
    from omegaconf import OmegaConf

    from lazyrich import plots

    run_dir = sink.run_dir
    cfg_node = OmegaConf.create(dict(cfg)) if not OmegaConf.is_config(cfg) else cfg
    identity.claim(run_dir, cfg_node, identity.RUN_IGNORED)
    sink.writer.close()
    (run_dir / "theory.txt").write_text("\n".join(result.theory_notes) + "\n")
    if plot:
        hue = "lam" if result.meta["lam"].nunique() > 1 else "scale" if result.meta["scale"].nunique() > 1 else "lr"
        fig = plots.curves(_plot_frame(result, sink, hue), ("loss", "kernel_distance"), hue=hue,
                           title=str(_get(cfg, "task.name", "")))
        result.figures.append(plots.save(fig, run_dir / "curves.png"))
    results.write_run(run_dir, None, result.summary, config=cfg_node)
    result.run_dir = run_dir
    logger_cfg = _get(cfg, "logger.wandb", None)
    if log_wandb and logger_cfg and logger_cfg.get("enabled", True):
        from lazyrich.wandb_schema import run_group
        from lazyrich.wandb_sink import Target, log_networks, process_seconds

        plain = OmegaConf.to_container(cfg_node, resolve=True)
        target = Target.from_logger(logger_cfg, group=run_group(run_dir), job_type="run", config=plain,
                                    unit=run_dir.name, run_dir=run_dir)
        frame = result.frame if result.frame is not None else results.load(run_dir).drop(columns="run")
        log_networks(frame, target, META_COLUMNS[:3], rows=result.summary,
                     elapsed=max(process_seconds() or 0.0, time.perf_counter() - started))
