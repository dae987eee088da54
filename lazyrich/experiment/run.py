"""One experiment, end to end: the config resolved once into objects, then task → init → trainer → theory →
results, written chunk by chunk by a sink.

:func:`run_experiment` resolves the config (:func:`lazyrich.config.run.resolve_run`) into a :class:`Plan` — the
task, the batch of initial weights with one metadata row per network, how each phase is trained
(:class:`Training`) and which theory predicts it — and nothing below it reads the config. The batch axes
``init.lam``, ``init.scale``, ``trainer.lr`` and ``seed`` form the Cartesian product trained as ONE batch; each
network's initial weights depend only on its own (seed, lam, scale), so a network's numbers are the same whatever
else shares its batch. This module is the loop over chunks of the batch and phases of a task sequence; the batch
is built in :mod:`~lazyrich.experiment.batch`, the theory in :mod:`~lazyrich.experiment.predict`, and the run
folder, curves PNG and W&B in :mod:`~lazyrich.experiment.sink`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import metrics, results
from lazyrich.config.checks import ConfigError
from lazyrich.config.run import RunConfig, TrainerConfig, resolve_run
from lazyrich.device import DTYPE, resolve_device
from lazyrich.experiment.batch import (
    META_COLUMNS,
    build_batch,
    build_task,
    given_batch,
    option_axes,
    option_columns,
    options_of,
)
from lazyrich.experiment.chunking import (
    available_memory,
    per_network_bytes,
    release_memory,
    run_chunk,
    training_blocks,
    trajectory_bytes,
)
from lazyrich.experiment.overlap import ChunkQueue, spare_core
from lazyrich.experiment.predict import (
    add_balance_law,
    add_saddle_columns,
    batch_theories,
    derived_agreement,
    predict_theory,
    rebalanced,
)
from lazyrich.experiment.sink import RunSink, matrices
from lazyrich.results.curves import Curves, predicted, simulated
from lazyrich.store import identity, locking
from lazyrich.tasks import Phase, Task, TaskSequence
from lazyrich.train import Trajectory, log_grid, plan_steps, renumbered, train

log = logging.getLogger(__name__)

__all__ = ["ExperimentResult", "Plan", "Training", "plan_work", "run_experiment", "run_slice"]


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` produced: the long table, one summary row per network, and the raw objects.

    A batch run in several chunks keeps neither ``trajectories`` nor ``predictions`` (empty lists), and its
    ``frame`` is None when it was written to a run folder: read it with :func:`lazyrich.results.load`. ``task`` is
    the task (or task sequence) the batch trained on.
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
    task: Task | TaskSequence | None = None

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


@dataclass(frozen=True)
class Training:
    """How every phase of a run is trained: the resolved trainer settings (all that :func:`lazyrich.train.train`
    takes besides the task, the weights, and each network's step and training options, which its metadata row
    holds: :func:`~lazyrich.experiment.batch.options_of`)."""

    t_max: float
    n_log: int
    spacing: str
    n_matrix: int
    activation: str
    batch_size: int | None
    sgd_seed: int
    check_every: int
    progress: bool
    max_steps: int | None
    dtype: torch.dtype

    @classmethod
    def of(cls, config: RunConfig) -> Training:
        tr = config.trainer
        return cls(tr.t_max, tr.n_log, tr.spacing, tr.n_matrix, config.model.activation, tr.batch_size,
                   config.seed[0], tr.check_every, tr.progress, tr.max_steps, getattr(torch, tr.dtype))

    @property
    def unmodelled(self) -> str:
        """What this training does that no theory models (empty: full-batch GD, which the theories follow)."""
        return f"minibatch SGD (trainer.batch_size={self.batch_size})" if self.batch_size is not None else ""

    def train(self, task: Task, weights: list[torch.Tensor], meta: pd.DataFrame, budget: float | None) -> Trajectory:
        """Train ``weights`` on ``task`` for ``budget`` (None: ``t_max``), each network at its own ``lr`` and
        training options (the columns of its ``meta`` row, :func:`~lazyrich.experiment.batch.options_of`). A
        network that diverges is in the trajectory's ``messages``; :func:`_warn_diverged` reports it."""
        return train(task.to(weights[0].device), weights, meta["lr"].to_numpy(),
                     t_max=float(self.t_max if budget is None else budget), n_log=self.n_log, spacing=self.spacing,
                     n_matrix=self.n_matrix, activation=self.activation, batch_size=self.batch_size,
                     seed=self.sgd_seed, check_every=self.check_every, progress=self.progress,
                     max_steps=self.max_steps, warn=False, **options_of(meta))


@dataclass
class Plan:
    """A run resolved into objects: what every step below the top of :func:`run_experiment` reads.

    ``weights`` are the float64 initial weights [W1 (B, Nh, Ni), …], ``meta`` one row per network (lam, scale,
    lr, the training options a run sets, seed, lam_hat, balance_dev0), ``theories`` the theory of the first phase
    and of later ones (None: none) and ``notes`` what was decided on the way (which theory, why none).
    """

    task: Task | TaskSequence
    weights: list[torch.Tensor]
    meta: pd.DataFrame
    training: Training
    theories: tuple[str | None, str | None]
    notes: list[str]

    @property
    def phases(self) -> list[Phase] | None:
        """The phases of a task sequence, None for a single task."""
        return list(self.task) if isinstance(self.task, TaskSequence) else None

    @property
    def first_task(self) -> Task:
        phases = self.phases
        return phases[0].task if phases else self.task

    @property
    def lr(self) -> np.ndarray:
        return self.meta["lr"].to_numpy()


def make_plan(config: RunConfig, initial: tuple[Sequence[torch.Tensor], pd.DataFrame] | None = None,
              rows: range | None = None) -> Plan:
    """The :class:`Plan` of a resolved ``config``: its task, its batch (or the ``initial`` weights and meta; or
    only the networks ``rows`` of its batch), how it trains and which theory predicts it."""
    device = resolve_device(config.device)
    task = build_task(config.task)
    first = list(task)[0].task if isinstance(task, TaskSequence) else task
    options = option_axes(config.trainer)
    weights, meta = (build_batch(config.init, config.model, config.trainer.lr, config.seed, first.n_in,
                                 first.n_out, first.sigma_yx, device, options, rows)
                     if initial is None else given_batch(*initial, device, options))
    training = Training.of(config)
    theories, notes = batch_theories(config.theory.name, config.model.activation, task, weights,
                                     training.unmodelled, options_of(meta))
    notes += _dtype_note(training.dtype, theories[1])
    return Plan(task, weights, meta, training, theories, notes)


def plan_work(budgets: Sequence[float | None], lrs: np.ndarray, trainer: TrainerConfig) -> str:
    """Check every phase's step count before any training (see :func:`lazyrich.train.plan_steps`) and say how
    much work the run is: networks × GD steps. ``budgets`` holds each phase's t budget (None: ``trainer.t_max``)."""
    lr = torch.tensor(np.array(lrs, dtype=np.float64))
    steps = 0
    for budget in budgets:
        grid = log_grid(float(trainer.t_max if budget is None else budget), trainer.n_log, trainer.spacing)
        steps += int(plan_steps(grid, lr, trainer.max_steps)[:, -1].max())
    return (f"work: {len(lr)} networks × {steps:,} GD steps ({len(budgets)} phase(s)); budget "
            f"trainer.max_steps={trainer.max_steps or 'default'} per phase")


def run_experiment(cfg: Mapping[str, Any] | RunConfig, run_dir: str | Path | None = None, *, plot: bool = True,
                   initial: tuple[Sequence[torch.Tensor], pd.DataFrame] | None = None,
                   plan: Plan | None = None) -> ExperimentResult:
    """Train the batch of ``cfg`` on its task (or task sequence), predict it with the chosen theory, and write
    the run folder (if ``run_dir``: metrics, matrices, summary, config, ``curves.png`` if ``plot``, and the W&B
    mirror if ``cfg`` has an enabled ``logger``). Returns an :class:`ExperimentResult`.

    ``cfg`` is a mapping, a Hydra config or a :class:`~lazyrich.config.run.RunConfig`; it is completed from the
    schema defaults and checked first (:func:`~lazyrich.config.run.resolve_run`).

    A ``run_dir`` is written by one process at a time (:class:`~lazyrich.store.locking.FolderLock`) and holds one
    configuration: a config other than the one it records (batch axes aside) is refused before training.

    A batch larger than ``trainer.batch_chunk`` (``auto``: sized from memory, see
    :mod:`~lazyrich.experiment.chunking`, and only when writing a run folder) runs chunk by chunk, each chunk's
    metrics and matrices written as soon as it is done. Then the result keeps the summary, not the trajectories,
    nor the long table when it was written (``frame`` is None: read it with ``results.load(run_dir, …)``).

    ``initial`` = (weights [W1 (B, Nh, Ni), …], meta with one row per network and at least its ``lr``) starts
    the batch from those weights instead of ``cfg``'s init (e.g. a re-factorised pretrained product); the
    ``init`` and batch axes of ``cfg`` are then unused. Such a run is kept in memory: a run folder records the
    config it came from, and given weights are not part of it.

    ``plan``: the :func:`make_plan` of this ``cfg`` when the caller has made it already (it needs the batch too),
    so that it is not built twice; None: made here.
    """
    config = resolve_run(cfg)
    if config.shards > 1:
        raise ConfigError(f"shards={config.shards} splits a run folder among processes: call "
                          f"lazyrich.experiment.run_shards(cfg, run_dir) (as `lazyrich run shards=…` does), or set "
                          f"shards=1 to train in this process.")
    if initial is not None and run_dir is not None:
        raise ValueError("a run folder records the config that built its batch; a batch started from given weights "
                         "(initial=…) runs in memory only: drop run_dir.")
    if plan is not None and initial is not None:
        raise ValueError("a plan already holds its batch: pass plan=… or initial=…, not both.")
    if run_dir is None:
        return _run(config, plan or make_plan(config, initial), None, plot=False)
    with locking.FolderLock(run_dir):
        identity.check_run(run_dir, config.record())  # recorded with the results by the sink
        return _run(config, plan or make_plan(config), Path(run_dir), plot=plot)


def run_slice(cfg: Mapping[str, Any] | RunConfig, run_dir: str | Path, rows: range) -> ExperimentResult:
    """The networks ``rows`` (a contiguous slice, e.g. one shard: :mod:`lazyrich.experiment.shards`) of ``cfg``'s
    batch, trained and written into ``run_dir`` as a unit of its own, chunk by chunk and under its own lock, every
    file numbering the networks as the whole batch does (``net``, the matrices' indices), so the slices of a batch
    hold what one run of it holds. No curves figure; ``cfg``'s logger is its caller's to drop or keep."""
    config = resolve_run(cfg)
    with locking.FolderLock(run_dir):
        identity.check_run(run_dir, config.record())
        return _run(config, make_plan(config, rows=rows), Path(run_dir), plot=False, first=rows.start)


def _run(config: RunConfig, plan: Plan, run_dir: Path | None, *, plot: bool, first: int = 0) -> ExperimentResult:
    """The chunk loop; ``first``: the batch-wide index of the plan's first network (a slice's start)."""
    started = time.perf_counter()
    budgets = [p.t_budget for p in plan.phases] if plan.phases else [None]
    (log.info if run_dir is not None else log.debug)(plan_work(budgets, plan.lr, config.trainer))
    size = _chunk_size(config.trainer, plan, in_memory=run_dir is None)
    single = size >= len(plan.meta)
    blocks = _training_blocks(config.trainer, plan, size)
    sink = RunSink(run_dir, plan.meta, config, plot=plot, first=first) if run_dir is not None else None

    def finish_chunk(init64: list[torch.Tensor], meta: pd.DataFrame, start: int,
                     trajectories: list[Trajectory]) -> _Chunk:
        chunk = _tabulate_chunk(plan, init64, meta, start, trajectories)
        if sink is not None:
            sink.append(start, start + len(chunk.summary), chunk.frame,
                        matrices(chunk.trajectories, chunk.predictions, chunk.loss_matrix))
        if not single:  # keep only what is small: the summary and the notes (and the table if not written)
            chunk.trajectories, chunk.predictions = [], []
            chunk.frame = chunk.frame if sink is None else None
        release_memory()
        return chunk

    def finish_block(init64: list[torch.Tensor], meta: pd.DataFrame, start: int,
                     trajectories: list[Trajectory]) -> list[_Chunk]:
        if len(meta) <= size:
            return [finish_chunk(init64, meta, start, trajectories)]
        return [finish_chunk([w[lo:lo + size] for w in init64], meta.iloc[lo:lo + size].reset_index(drop=True),
                             start + lo, [t.rows(lo, lo + size) for t in trajectories])
                for lo in range(0, len(meta), size)]

    # Block k is predicted and written while k + 1 trains; a second finished block may wait (the worker's pace varies).
    with ChunkQueue(threaded=not single and spare_core(), backlog=2) as queue:
        if sink is not None and plot:
            queue.warm(functools.partial(importlib.import_module, "lazyrich.plots"))  # matplotlib: about 1 s
        for block in blocks:
            rows = slice(block.start, block.stop)
            init64, meta = [w[rows] for w in plan.weights], plan.meta.iloc[rows].reset_index(drop=True)
            queue.submit(finish_block, init64, meta, first + block.start,
                         _train_phases(plan, init64, meta, first + block.start))
        chunks = [chunk for finished in queue.drain() for chunk in finished]
    notes = list(dict.fromkeys(plan.notes + [n for c in chunks for n in c.notes]))
    for note in notes:
        log.debug(note)
    result = _combine(chunks, plan, notes, single=single, keep_frame=single or sink is None)
    if sink is not None:
        result.figures += sink.finish(result.frame, result.summary, result.theory_notes, started=started)
        result.run_dir = sink.run_dir
    return result


def _chunk_size(trainer: TrainerConfig, plan: Plan, *, in_memory: bool) -> int:
    """Networks per chunk; in memory (no run folder: suites, figures, the Python API) everything is kept, so
    ``auto`` is one chunk — refused, before any training, when its estimated peak exceeds the available memory."""
    first = plan.first_task
    if in_memory and trainer.batch_chunk in (None, "auto"):
        need = len(plan.meta) * per_network_bytes(first.n_in, first.n_out, trainer.n_log,
                                                  min(trainer.n_matrix, trainer.n_log), len(plan.phases or [None]))
        if need > available_memory():
            raise ConfigError(f"run_experiment without a run folder keeps all {len(plan.meta):,} networks in memory "
                              f"(≈ {need / 2**30:.1f} GiB at its peak, {available_memory() / 2**30:.1f} GiB "
                              f"available); pass a run_dir (written chunk by chunk, read back with results.load) "
                              f"or set trainer.batch_chunk.")
        return len(plan.meta)
    return run_chunk(trainer, len(plan.meta), n_in=first.n_in, n_out=first.n_out, n_phases=len(plan.phases or [None]))


def _training_blocks(trainer: TrainerConfig, plan: Plan, size: int) -> list[range]:
    """The networks trained at once, chunks of ``size`` grouped under ``auto`` (:func:`training_blocks`)."""
    first, n_phases = plan.first_task, len(plan.phases or [None])
    per_network = trajectory_bytes(first.n_in, first.n_out, trainer.n_log, min(trainer.n_matrix, trainer.n_log),
                                   n_phases)
    return training_blocks(len(plan.meta), size, auto=trainer.batch_chunk in (None, "auto"),
                           per_network=per_network)


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


def _warn_diverged(trajectory: Trajectory, start: int) -> None:
    """The trainer's "network <b> diverged" messages of a block as warnings, numbered batch-wide (start + b)."""
    for message in trajectory.messages:
        warnings.warn(renumbered(message, start), RuntimeWarning, stacklevel=4)


def _train_phases(plan: Plan, init64: list[torch.Tensor], meta: pd.DataFrame, start: int) -> list[Trajectory]:
    """Train one chunk phase after phase, each phase from the weights the last one ended with."""
    weights = [w.to(plan.training.dtype) for w in init64]
    trajectories = []
    for phase in plan.phases or [None]:
        traj = plan.training.train(phase.task if phase is not None else plan.task, weights, meta,
                                   phase.t_budget if phase is not None else None)
        _warn_diverged(traj, start)
        trajectories.append(traj)
        weights = traj.final_weights
    return trajectories


def _predict_phases(plan: Plan, init64: list[torch.Tensor], meta: pd.DataFrame, start: int,
                    trajectories: list[Trajectory]) -> tuple[list[pd.DataFrame], list[Any], list[str]]:
    """Predict each trained phase of a chunk and tabulate it: (frames, predictions, notes)."""
    phases = plan.phases
    frames, predictions, notes = [], [], []
    t_offset = torch.zeros(len(meta), dtype=torch.float64)
    options = {"lr": meta["lr"].to_numpy(), "dtype": plan.training.dtype, **options_of(meta)}
    for index, traj in enumerate(trajectories):
        phase_task = phases[index].task if phases else plan.task
        prefix = f"phase {index}: " if phases else ""
        # Phase 0: the float64 init (its rounding to a lower trainer dtype is inside theory_rtol); later phases
        # restart from the trainer's weights, promoted here so that the theory does not warn again.
        theory_weights, name = ((init64, plan.theories[0]) if index == 0 else
                                ([w.to(DTYPE) for w in trajectories[index - 1].final_weights], plan.theories[1]))
        if index > 0 and name is not None:
            theory_weights, note = rebalanced(theory_weights, options_of(meta)["layer_lr"])
            notes.append(prefix + note)
        prediction, theory_notes = (predict_theory(name, phase_task, theory_weights, traj.t, options)
                                    if name is not None else (None, []))
        notes += [prefix + n for n in theory_notes]
        frame = results.to_frame(traj, meta, prediction, phase=index if phases else None, t_offset=t_offset)
        frame["net"] += start
        if phases:
            frame.insert(frame.columns.get_loc("phase") + 1, "task", phase_task.name)
        frames.append(frame)
        predictions.append(prediction)
        t_offset = t_offset + traj.t[:, -1].cpu()
    return frames, predictions, notes


def _tabulate_chunk(plan: Plan, init64: list[torch.Tensor], meta: pd.DataFrame, start: int,
                    trajectories: list[Trajectory]) -> _Chunk:
    """Predict and tabulate a trained chunk (see :func:`_predict_phases`): its table, summary and notes."""
    frames, predictions, notes = _predict_phases(plan, init64, meta, start, trajectories)
    phases = plan.phases
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    loss_matrix = (metrics.loss_matrix([t.final_weights for t in trajectories], [p.task for p in phases])
                   .cpu().numpy() if phases else None)
    last, last_task = predictions[-1], phases[-1].task if phases else plan.task
    floor = metrics.loss_floor(last_task.sigma_xx, last_task.sigma_yx, last_task.sigma_yy,
                               rank=min(min(w.shape[-2:]) for w in init64))
    summary = results.summary_of(simulated(trajectories[-1], meta), None if last is None else predicted(last),
                                 [*META_COLUMNS, *option_columns(meta), "lam_hat"], first_net=start,
                                 floor=float(floor))
    summary = add_saddle_columns(summary, last)
    if last is not None and plan.training.unmodelled:
        summary["theory_mismatch"] = plan.training.unmodelled
    if not phases and plan.training.batch_size is None:
        summary = derived_agreement(summary, predictions[-1], plan.task, meta["lr"].to_numpy(), plan.training.dtype,
                                    two_layer=len(init64) == 2, options=options_of(meta))
    if not phases and (plan.training.batch_size is not None or options_of(meta)["weight_decay"] is not None):
        summary = add_balance_law(summary, trajectories[-1], init64, options_of(meta))
    return _Chunk(start, frame, summary, trajectories, predictions, notes, loss_matrix)


def _combine(chunks: list[_Chunk], plan: Plan, notes: list[str], *, single: bool,
             keep_frame: bool) -> ExperimentResult:
    frame = (chunks[0].frame if single else pd.concat([c.frame for c in chunks], ignore_index=True)
             ) if keep_frame else None
    summary = pd.concat([c.summary for c in chunks], ignore_index=True) if not single else chunks[0].summary
    losses = [c.loss_matrix for c in chunks if c.loss_matrix is not None]
    return ExperimentResult(frame, summary, None, chunks[0].trajectories if single else [],
                            chunks[0].predictions if single else [], notes, plan.meta,
                            np.concatenate(losses) if losses else None, task=plan.task)


def _dtype_note(dtype: torch.dtype, theory_name: str | None) -> list[str]:
    """Below float64 with a theory: one warning, also kept as a note."""
    if dtype == DTYPE or theory_name in ("none", None):
        return []
    name = str(dtype).removeprefix("torch.")
    msg = (f"trainer.dtype={name}: the {name} run is compared with a float64 theory from the float64 init; "
           f"the agreement tolerance adds 1000·u = {1000 * torch.finfo(dtype).eps:.1g} for its rounding "
           f"(theory_rtol in the summary).")
    log.warning(msg)
    return [msg]
