"""One experiment, end to end: task → init → trainer → theory → results (tables, npz, PNG, W&B).

The config is a plain mapping (Hydra composes it; Python users can pass a dict). The batch axes ``init.lam``,
``init.scale``, ``trainer.lr`` and ``seed`` may each be a list: their Cartesian product is trained as ONE batch.
Each network's initial weights depend only on its own (seed, lam, scale), so a network's numbers are the same
whatever else shares its batch.

This module is the loop: chunks of the batch, phases of a task sequence. The config → task and initial weights
is :mod:`lazyrich.experiment.batch`, the theory beside the trainer :mod:`lazyrich.experiment.predict`, and the run folder, curves PNG
and W&B :mod:`lazyrich.experiment.sink`; their public names are importable from here too.
"""

from __future__ import annotations

import contextlib
import logging
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

from lazyrich import metrics, results
from lazyrich.config import checks
from lazyrich.config.run import fill_group, fill_run
from lazyrich.device import DTYPE, resolve_device
from lazyrich.experiment.batch import META_COLUMNS, as_list, build_batch, build_task, given_batch
from lazyrich.experiment.chunking import release_memory, run_chunk
from lazyrich.experiment.predict import (
    add_saddle_columns,
    batch_theories,
    derived_agreement,
    predict_theory,
    rebalanced,
)
from lazyrich.experiment.sink import RunSink, matrices
from lazyrich.results.curves import Curves, predicted, simulated
from lazyrich.store import identity, locking
from lazyrich.tasks import Task, TaskSequence
from lazyrich.train import Trajectory, log_grid, plan_steps, train

log = logging.getLogger(__name__)

__all__ = ["ExperimentResult", "plan_work", "run_experiment"]


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
        """(simulation, theory) curves of each phase in one shape (:mod:`lazyrich.results.curves`); the theory's
        matrices at the simulation's log points, None for a phase no theory predicted."""
        if not self.trajectories:
            raise ValueError("this batch ran in several chunks and kept no curves: read its run folder with "
                             "lazyrich.results.load, or run it with trainer.batch_chunk=null.")
        sim = [simulated(traj, self.meta) for traj in self.trajectories]
        theory = [None if pred is None else predicted(pred, self.meta, traj.matrix_index)
                  for traj, pred in zip(self.trajectories, self.predictions, strict=True)]
        return sim, theory


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
                   plot: bool = True,
                   initial: tuple[Sequence[torch.Tensor], pd.DataFrame] | None = None) -> ExperimentResult:
    """Train the batch of ``cfg`` on its task (or task sequence), predict it with the chosen theory, and write
    the run folder (if ``run_dir``). Returns an :class:`ExperimentResult`.

    A ``run_dir`` is written by one process at a time (:class:`~lazyrich.store.locking.FolderLock`) and holds one
    configuration: a config other than the one it records (batch axes aside) is refused before training.

    A batch larger than ``trainer.batch_chunk`` (``auto``: sized from memory, see :mod:`lazyrich.experiment.chunking`,
    and only when writing a run folder) runs chunk by chunk, each chunk's metrics and matrices written as soon
    as it is done; each network's numbers are the same whatever the chunking. Then the result keeps the
    summary, not the trajectories, nor the long table when it was written (``frame`` is None: read it with
    ``results.load(run_dir, columns=…, filters=…)``).

    ``initial`` = (weights [W1 (B, Nh, Ni), …], meta with one row per network and at least its ``lr``) starts
    the batch from those weights instead of ``cfg``'s init (e.g. a re-factorised pretrained product); the
    ``init`` and batch axes of ``cfg`` are then unused. Such a run is kept in memory: a run folder records the
    config it came from, and given weights are not part of it.
    """
    cfg = fill_run(cfg)
    if initial is not None and run_dir is not None:
        raise ValueError("a run folder records the config that built its batch; a batch started from given weights "
                         "(initial=…) runs in memory only: drop run_dir.")
    if run_dir is None:
        return _run_experiment(cfg, None, log_wandb=log_wandb, plot=plot, initial=initial)
    with locking.FolderLock(run_dir):
        identity.check(run_dir, cfg, identity.RUN_IGNORED)  # recorded with the results, by RunSink.finish
        return _run_experiment(cfg, run_dir, log_wandb=log_wandb, plot=plot)


def _run_experiment(cfg: Mapping[str, Any], run_dir: str | Path | None, *, log_wandb: bool, plot: bool,
                    initial: tuple[Sequence[torch.Tensor], pd.DataFrame] | None = None) -> ExperimentResult:
    started = time.perf_counter()
    device = resolve_device(cfg.get("device", "auto"))
    task = build_task(cfg["task"])
    phases = list(task) if isinstance(task, TaskSequence) else None
    first = phases[0].task if phases else task
    trainer_cfg = dict(cfg.get("trainer", {}))
    weights, meta = (build_batch(cfg, first.n_in, first.n_out, first.sigma_yx, device) if initial is None
                     else given_batch(*initial, device))
    work = plan_work([p.t_budget for p in phases] if phases else [None], meta["lr"].to_numpy(), trainer_cfg)
    (log.info if run_dir is not None else log.debug)(work)
    theories, notes = batch_theories(cfg, task, weights)
    dtype = _train_dtype(trainer_cfg, theories[1], notes)
    # In memory (no run folder: suites, figures, the Python API) everything is kept, so `auto` is one chunk.
    size = len(meta) if run_dir is None and trainer_cfg["batch_chunk"] in (None, "auto") else run_chunk(
        trainer_cfg, len(meta), n_in=first.n_in, n_out=first.n_out, n_phases=len(phases or [None]))
    single = size >= len(meta)
    sink = RunSink(Path(run_dir), meta, trainer_cfg["matrix_seeds"]) if run_dir is not None else None
    chunks = []
    for start in range(0, len(meta), size):
        rows = slice(start, start + size)
        chunk = _train_chunk(cfg, task, [w[rows] for w in weights], meta.iloc[rows].reset_index(drop=True),
                             theories, start, dtype)
        if sink is not None:
            sink.append(start, start + len(chunk.summary), chunk.frame,
                        matrices(chunk.trajectories, chunk.predictions, chunk.loss_matrix))
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
        result.figures += sink.finish(cfg, result.frame, result.summary, result.meta, result.theory_notes,
                                      log_wandb=log_wandb, plot=plot, started=started)
        result.run_dir = sink.run_dir
    return result


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
            theory_weights, note = rebalanced(theory_weights)
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
    summary = add_saddle_columns(summary, last)
    if not phases and cfg["trainer"]["batch_size"] is None:
        summary = derived_agreement(summary, predictions[-1], task, meta["lr"].to_numpy(), dtype,
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


