"""Where an experiment's results go: the run folder (metrics, matrices, summary, config, theory notes), the
curves PNG and W&B.

The experiment hands each chunk to :meth:`RunSink.append` as soon as it is trained and predicted, then the
whole-batch results to :meth:`RunSink.finish`; the sink never reads back into the experiment.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lazyrich import results, store
from lazyrich.config.run import RunConfig, WandbConfig
from lazyrich.experiment.batch import META_COLUMNS, option_columns
from lazyrich.results.curves import predicted, simulated
from lazyrich.store import identity, shards
from lazyrich.store.storage import full_disk_guard
from lazyrich.train import Trajectory

__all__ = ["RunSink", "log_wandb", "matrices", "plot_curves"]


def matrices(trajectories: Sequence[Trajectory], predictions: Sequence[Any],
             loss_matrix: np.ndarray | None) -> dict[str, np.ndarray]:
    """The matrix arrays of one chunk (one trajectory and prediction per phase), batch first: ``[phase<i>_]t``,
    ``sim_<name>``, ``theory_<name>`` (both read as :class:`~lazyrich.results.curves.Curves`, the theory at the
    simulation's matrix log points), and ``loss_matrix`` for a task sequence."""
    arrays: dict[str, np.ndarray] = {}
    for i, (traj, pred) in enumerate(zip(trajectories, predictions, strict=True)):
        key = f"phase{i}_" if len(trajectories) > 1 else ""
        sim = simulated(traj)
        arrays[f"{key}t"] = sim.matrix_t.cpu().numpy()
        sources = [("sim", sim)] + ([("theory", predicted(pred, matrix_index=traj.matrix_index))] if pred else [])
        for prefix, curves in sources:
            for name, value in curves.matrices.items():
                arrays[f"{key}{prefix}_{name}"] = value.cpu().numpy()
    if loss_matrix is not None:
        arrays["loss_matrix"] = loss_matrix
    return arrays


class RunSink:
    """The run folder being written while the chunks run (see :class:`~lazyrich.store.storage.RunWriter`), then
    closed with its summary, config, curves PNG (if ``plot``) and W&B mirror (if ``config.logger`` enables it).

    Matrices are written for the networks of the first ``trainer.matrix_seeds`` seeds of each configuration
    (None: every network): the curves of every network are kept, and a network's matrices can always be
    recomputed by running its (λ, scale, lr, seed) alone, since its init depends on nothing else. ``meta`` holds
    the networks ``first`` … of the batch (a slice of it: a shard), numbered batch-wide in every file.
    """

    def __init__(self, run_dir: Path, meta: pd.DataFrame, config: RunConfig, *, plot: bool = True,
                 first: int = 0) -> None:
        from lazyrich.store.storage import RunWriter

        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / store.DONE).unlink(missing_ok=True)  # being rewritten: unfinished until the manifest is in
        shards.clear(run_dir)  # a sharded run rewritten as one unit
        self.run_dir, self.meta, self.config, self.plot, self.first = run_dir, meta, config, plot, first
        self.writer = RunWriter(run_dir)
        matrix_seeds = config.trainer.matrix_seeds
        seeds = sorted(set(config.seed))  # the batch's seeds: a slice of it keeps the networks the batch keeps
        self.kept = meta["seed"].isin(seeds[:matrix_seeds] if matrix_seeds else seeds).to_numpy()

    def append(self, start: int, stop: int, frame: pd.DataFrame, arrays: Mapping[str, np.ndarray]) -> None:
        """Write the long table of networks ``start`` … ``stop − 1`` (batch-wide) and the kept networks' rows of
        ``arrays`` (:func:`matrices`)."""
        keep = np.flatnonzero(self.kept[start - self.first:stop - self.first])
        self.writer.append(start, stop, frame, {k: v[keep] for k, v in arrays.items()}, nets=start + keep)

    def finish(self, frame: pd.DataFrame | None, summary: pd.DataFrame, notes: Sequence[str], *,
               started: float) -> list[Path]:
        """Close the folder: its identity, theory.txt, the curves PNG, the summary and config, then the W&B
        mirror. ``frame``: the long table, or None when it was written chunk by chunk (then read back from
        disk). Returns the figures written."""
        run_dir, record = self.run_dir, self.config.record()
        identity.record(run_dir, record, identity.OPERATIONAL)  # checked at the start; the batch too
        self.writer.close()
        figures = [plot_curves(run_dir, self.meta, _title(self.config), frame)] if self.plot else []
        store.write_run(run_dir, None, summary, config=_yaml(record), notes=notes)
        logger = self.config.logger
        if logger is not None and logger.wandb.enabled:
            log_wandb(run_dir, logger.wandb, record, frame, summary, notes, time.perf_counter() - started)
        return figures


def plot_curves(run_dir: Path, meta: pd.DataFrame, title: str, frame: pd.DataFrame | None = None) -> Path:
    """``run_dir``'s curves figure (loss and kernel distance, one line per network, coloured by the axis ``meta``
    sweeps), drawn from ``frame``, the long table, or (None) from the plotted columns of the metrics of the run's
    parts (:func:`lazyrich.store.shards.parts`), read back unverified: the run is being finished."""
    from lazyrich import plots

    hue = "lam" if meta["lam"].nunique() > 1 else "scale" if meta["scale"].nunique() > 1 else "lr"
    frame = frame if frame is not None else pd.concat([_plotted(part, hue) for part in shards.parts(run_dir)],
                                                      ignore_index=True)
    fig = plots.curves(frame, ("loss", "kernel_distance"), hue=hue, title=title)
    png = run_dir / "curves.png"
    with full_disk_guard(png, png, png.with_suffix(".pdf")):
        return plots.save(fig, png)


def _plotted(unit: Path, hue: str) -> pd.DataFrame:
    """The columns the curves figure needs from one unit's metrics (read without verification)."""
    import pyarrow.parquet as pq

    from lazyrich.store.storage import METRICS_PARQUET, read_metrics

    names = pq.read_schema(unit / METRICS_PARQUET).names
    wanted = [c for c in names if c in (hue, "t") or c.endswith(("/loss", "/kernel_distance"))]
    return read_metrics(unit / METRICS_PARQUET, columns=wanted)


def _title(config: RunConfig) -> str:
    return str(config.task.get("name", ""))


def _yaml(record: Mapping[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(dict(record)))


def log_wandb(run_dir: Path, wandb: WandbConfig, record: Mapping[str, Any], frame: pd.DataFrame | None,
              summary: pd.DataFrame, notes: Sequence[str], elapsed: float) -> None:
    """One W&B run per network of the finished run folder (:func:`lazyrich.tracking.sink.log_networks`), its
    config's ``theory`` the theory that ran (from ``notes``); ``elapsed``: the run's seconds, for the log line."""
    from lazyrich.results.notes import theory_that_ran
    from lazyrich.tracking.schema import run_group
    from lazyrich.tracking.sink import Target, log_networks

    target = Target.from_logger(wandb, group=run_group(run_dir), job_type="run", config=dict(record),
                                unit=run_dir.name, run_dir=run_dir, theory=theory_that_ran(notes))
    frame = frame if frame is not None else results.load(run_dir).drop(columns="run")
    log_networks(frame, target, [*META_COLUMNS[:3], *option_columns(frame)], rows=summary, elapsed=elapsed)
