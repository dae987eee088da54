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
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import init as inits
from lazyrich import metrics, results
from lazyrich.chunking import chunk_size, release_memory
from lazyrich.device import DTYPE, resolve_device
from lazyrich.tasks import Task, TaskSequence, make
from lazyrich.train import Trajectory, train

log = logging.getLogger(__name__)

__all__ = ["BATCH_KEYS", "ExperimentResult", "as_list", "build_batch", "build_task", "choose_theory",
           "predict_theory", "run_experiment"]

BATCH_KEYS = ("init.lam", "init.scale", "trainer.lr", "seed", "suite.lams")
"""Config keys whose lists become the batch axis of one training run (not separate processes); for
``lazyrich bench``, ``suite.lams`` is the λ sweep of one suite run."""

META_COLUMNS = ("lam", "scale", "lr", "seed")


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
    init_cfg, model_cfg = cfg.get("init", {}), cfg.get("model", {})
    kind = init_cfg.get("kind", "balanced")
    depth = int(model_cfg.get("depth", 2))
    if depth < 2:
        raise ValueError(f"model.depth must be at least 2 (a deep linear network), got {depth}.")
    hidden = model_cfg.get("hidden") or min(n_in, n_out)
    widths = [n_in] + [int(hidden)] * (depth - 1) + [n_out]
    lams = [float(x) for x in as_list(init_cfg.get("lam", 0.0))]
    scales = [float(x) for x in as_list(init_cfg.get("scale", 1.0))]
    lrs = [float(x) for x in as_list(_get(cfg, "trainer.lr", 1e-2))]
    seeds = [int(x) for x in as_list(cfg.get("seed", 0))]
    align = align_to if init_cfg.get("align", False) else None
    if kind == "gaussian" and len(lams) > 1:
        raise ValueError("init.lam is not an input of the gaussian init (its λ is measured, column lam_hat); "
                         "sweep init.scale instead, or use init=balanced.")
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
            ws = inits.gaussian(widths, scale, lecun=bool(init_cfg.get("lecun", True)), generator=gen)
        else:
            raise ValueError(f"init.kind={kind!r} is unknown; choose 'balanced' or 'gaussian'.")
        for l, w in enumerate(ws):
            layers[l].append(w)
        rows.append({"lam": lam if kind == "balanced" else float("nan"), "scale": scale, "lr": lr, "seed": seed})
    weights = [torch.stack(ws).to(device=device, dtype=DTYPE) for ws in layers]
    meta = pd.DataFrame(rows)
    lam_hat, dev = inits.balance(weights)
    meta["lam_hat"] = lam_hat[:, 0].cpu().numpy()
    meta["balance_dev0"] = dev[:, 0].cpu().numpy()
    return weights, meta


def choose_theory(name: str | None, task: Task, weights: list[torch.Tensor]) -> tuple[Any, list[str]]:
    """(Theory or None, notes): theory ``name`` if it applies to ``weights`` on ``task`` (``auto`` picks the
    most exact that applies; ``none`` skips); the notes say which theory was chosen, or why none was."""
    if name in (None, "none", "null"):
        return None, ["theory=none"]
    from lazyrich import theory as th

    stats = th.TaskStats.from_task(task)
    if name == "auto":
        chosen, why = th.select_theory(stats, weights)
        return chosen, [f"theory=auto chose {chosen.name}: {why}"]
    chosen = th.get_theory(name)
    reason = chosen.check(stats, weights)
    if reason is not None:
        return None, [f"theory {name} skipped: {reason}"]
    return chosen, [f"theory={name}"]


def predict_theory(name: Any, task: Task, weights: list[torch.Tensor],
                   t: torch.Tensor) -> tuple[Any, list[str]]:
    """(Prediction or None, notes) of theory ``name`` (``auto`` picks the most exact that applies; ``none``
    skips; a Theory object is used as it is) for ``weights`` on the grid ``t`` (B, T); the notes say which
    theory ran, or why none did."""
    if isinstance(name, str) or name is None:
        chosen, notes = choose_theory(name, task, weights)
    else:
        chosen, notes = name, []
    if chosen is None:
        return None, notes
    from lazyrich import theory as th

    try:
        prediction = chosen.predict(th.TaskStats.from_task(task), weights, t)
    except ValueError as err:
        return None, [*notes, f"theory {chosen.name} skipped: {err}"]
    return prediction, notes + list(getattr(prediction, "notes", []))


def _rebalanced(weights: list[torch.Tensor]) -> tuple[list[torch.Tensor], str]:
    """The theory's restart point after a phase switch: the simulated product re-factorised at its measured λ̂.

    GD drifts W2ᵀW2 − W1W1ᵀ by O(η·t) (THEORY.md §1) while the closed form needs it exact; re-factorising keeps
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


def _train_chunk(cfg: Mapping[str, Any], task: Task | TaskSequence, weights: list[torch.Tensor],
                 meta: pd.DataFrame, theories: tuple[Any, str | None], start: int) -> _Chunk:
    """Train, predict and tabulate one chunk; ``theories`` = (phase-0 Theory or None, later phases' name or
    None), see :func:`_phase0_theory`."""
    phases = list(task) if isinstance(task, TaskSequence) else None
    trainer_cfg, model_cfg = dict(cfg.get("trainer", {})), dict(cfg.get("model", {}))
    frames, trajectories, predictions, phase_weights, notes = [], [], [], [weights], []
    t_offset = torch.zeros(len(meta), dtype=torch.float64)
    for index, phase in enumerate(phases or [None]):
        phase_task = phase.task if phase is not None else task
        budget = phase.t_budget if phase is not None and phase.t_budget is not None else trainer_cfg["t_max"]
        with _global_network_numbers(start):
            traj = train(phase_task.to(weights[0].device), weights, meta["lr"].to_numpy(), t_max=float(budget),
                         n_log=int(trainer_cfg.get("n_log", 101)), spacing=trainer_cfg.get("spacing", "linear"),
                         n_matrix=int(trainer_cfg.get("n_matrix", 21)), activation=model_cfg.get("activation"),
                         batch_size=trainer_cfg.get("batch_size"), seed=int(as_list(cfg.get("seed", 0))[0]),
                         check_every=int(trainer_cfg.get("check_every", 10)),
                         progress=bool(trainer_cfg.get("progress", True)))
        prefix = f"phase {index}: " if phases else ""
        theory_weights, phase_theory = weights, theories[0] if index == 0 else theories[1]
        if index > 0 and phase_theory is not None:
            theory_weights, note = _rebalanced(weights)
            notes.append(prefix + note)
        prediction, theory_notes = (predict_theory(phase_theory, phase_task, theory_weights, traj.t)
                                    if phase_theory is not None else (None, []))
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
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    loss_matrix = (metrics.loss_matrix(phase_weights[1:], [p.task for p in phases]).cpu().numpy()
                   if phases else None)
    summary = results.summarise(frame[frame["phase"] == frame["phase"].max()] if phases else frame,
                                meta_columns=[*META_COLUMNS, "lam_hat"])
    summary = _add_saddle_columns(summary, predictions[-1])
    return _Chunk(start, frame, summary, trajectories, predictions, notes, loss_matrix)


def _phase0_theory(cfg: Mapping[str, Any], task: Task | TaskSequence,
                   weights: list[torch.Tensor]) -> tuple[Any, str | None, list[str]]:
    """(Theory or None for the first phase, theory name for later phases or None, notes). The first phase's
    theory is chosen once for the whole batch, so every chunk runs the same one."""
    name = _get(cfg, "theory.name", "auto")
    if name in ("none", None, "null"):
        return None, None, ["theory=none"]
    if _get(cfg, "model.activation") not in (None, "none", "linear"):
        return None, None, ["theory skipped: the theories describe linear networks; model.activation is set."]
    sequence = isinstance(task, TaskSequence)
    chosen, notes = choose_theory(name, list(task)[0].task if sequence else task, weights)
    return chosen, name, [("phase 0: " if sequence else "") + n for n in notes]


def run_experiment(cfg: Mapping[str, Any], run_dir: str | Path | None = None, *, log_wandb: bool = True,
                   plot: bool = True) -> ExperimentResult:
    """Train the batch of ``cfg`` on its task (or task sequence), predict it with the chosen theory, and write
    the run folder (if ``run_dir``). Returns an :class:`ExperimentResult`.

    A batch larger than ``trainer.batch_chunk`` (``auto``: sized from memory, see :mod:`lazyrich.chunking`,
    and only when writing a run folder) runs chunk by chunk, each chunk's metrics and matrices written as soon
    as it is done; each network's numbers are the same whatever the chunking. Then the result keeps the
    summary, not the trajectories, nor the long table when it was written (``frame`` is None: read it with
    ``results.load(run_dir, columns=…, filters=…)``).
    """
    device = resolve_device(cfg.get("device", "auto"))
    task = build_task(cfg["task"])
    phases = list(task) if isinstance(task, TaskSequence) else None
    first = phases[0].task if phases else task
    weights, meta = build_batch(cfg, first.n_in, first.n_out, first.sigma_yx, device)
    theory, later, notes = _phase0_theory(cfg, task, weights)
    trainer_cfg = dict(cfg.get("trainer", {}))
    n_log, chunk = int(trainer_cfg.get("n_log", 101)), trainer_cfg.get("batch_chunk", "auto")
    # In memory (no run folder: suites, figures, the Python API) everything is kept, so `auto` is one chunk.
    size = len(meta) if run_dir is None and chunk in (None, "auto") else chunk_size(
        chunk, len(meta), n_in=first.n_in, n_out=first.n_out, n_log=n_log,
        n_matrix=min(int(trainer_cfg.get("n_matrix", 21)), n_log), n_phases=len(phases or [None]))
    single = size >= len(meta)
    sink = _RunSink(Path(run_dir)) if run_dir is not None else None
    chunks = []
    for start in range(0, len(meta), size):
        rows = slice(start, start + size)
        chunk = _train_chunk(cfg, task, [w[rows] for w in weights], meta.iloc[rows].reset_index(drop=True),
                             (theory, later), start)
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
        _write(result, sink, cfg, log_wandb=log_wandb, plot=plot)
    return result


def _combine(chunks: list[_Chunk], meta: pd.DataFrame, notes: list[str], *, single: bool,
             keep_frame: bool) -> ExperimentResult:
    frame = (chunks[0].frame if single else pd.concat([c.frame for c in chunks], ignore_index=True)
             ) if keep_frame else None
    summary = pd.concat([c.summary for c in chunks], ignore_index=True) if not single else chunks[0].summary
    losses = [c.loss_matrix for c in chunks if c.loss_matrix is not None]
    return ExperimentResult(frame, summary, None, chunks[0].trajectories if single else [],
                            chunks[0].predictions if single else [], notes, meta,
                            np.concatenate(losses) if losses else None)


def _add_saddle_columns(summary: pd.DataFrame, prediction) -> pd.DataFrame:
    """The theory's verdict per network: does the flow converge to a saddle, and to what loss as t → ∞."""
    if prediction is None or getattr(prediction, "converges_to_saddle", None) is None:
        return summary
    summary = summary.copy()
    summary["theory_saddle"] = prediction.converges_to_saddle.cpu().numpy().astype(bool)
    summary["theory_limit_loss"] = prediction.final_loss.cpu().numpy()
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
    """The run folder being written while the chunks run (see :class:`lazyrich.storage.RunWriter`)."""

    def __init__(self, run_dir: Path) -> None:
        from lazyrich.storage import RunWriter

        self.run_dir = run_dir
        self.writer = RunWriter(run_dir)
        self.columns: list[str] = []

    def append(self, chunk: _Chunk) -> None:
        self.writer.append(chunk.start, chunk.frame, _matrices(chunk))
        self.columns = list(chunk.frame.columns)


def _plot_frame(result: ExperimentResult, sink: _RunSink, hue: str) -> pd.DataFrame:
    """The long table for the curves figure: in memory, or only its plotted columns read back from disk."""
    if result.frame is not None:
        return result.frame
    wanted = [c for c in sink.columns if c in (hue, "t") or c.endswith(("/loss", "/kernel_distance"))]
    return results.load(sink.run_dir, columns=wanted)


def _write(result: ExperimentResult, sink: _RunSink, cfg: Mapping[str, Any], *, log_wandb: bool,
           plot: bool) -> None:
    from omegaconf import OmegaConf

    from lazyrich import plots

    run_dir = sink.run_dir
    cfg_node = OmegaConf.create(dict(cfg)) if not OmegaConf.is_config(cfg) else cfg
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
        from lazyrich.wandb_sink import log_to_wandb

        plain = OmegaConf.to_container(cfg_node, resolve=True)
        frame = result.frame if result.frame is not None else results.load(run_dir).drop(columns="run")
        log_to_wandb(frame, config=plain, group=str(logger_cfg.get("group") or run_dir.name),
                     run_dir=run_dir, config_columns=("lam", "scale", "lr"),
                     project=logger_cfg.get("project", "lazyrich"), entity=logger_cfg.get("entity"),
                     tags=list(logger_cfg.get("tags", []) or []))
