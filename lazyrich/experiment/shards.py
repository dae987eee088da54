"""One run split into shards (``lazyrich run shards=N``): contiguous slices of the batch, each trained by a process
of its own into ``shards/<k>/`` of the one run folder, then sealed into one finished run.

:func:`run_shards` plans the slices (:func:`lazyrich.store.shards.plan`: in the batch's order, so shard k holds the
networks a one-process run numbers ``start`` … ``stop − 1``), runs those not yet finished where the launch says
(:mod:`~lazyrich.experiment.cluster`: SLURM array tasks, submitit local processes, or here one after another) and
waits for them. Each shard is :func:`lazyrich.experiment.run.run_slice`: a unit of its own, written chunk by chunk
under its own lock, with the batch-wide network numbers. When every shard verifies, the command writes the run's
config, theory notes, curves figure and identity, and seals it (:func:`lazyrich.store.write_sharded`: the manifest
pins every shard's); then the W&B mirror, once, from the sealed folder. Readers see one finished run.

Each network's numbers depend only on its own (λ, scale, lr, options, seed), so the sealed folder holds what a
one-process run writes, up to the last bit that a batched product of another batch size may round differently
(ODE-based theories agree to their tolerance across chunkings; docs: Performance, Chunks).

Re-running the same command into the same folder recomputes only the shards that are missing, unfinished,
damaged or of another split, and names them in one line; a finished, intact run is left as it is. A failed shard
is reported with its log (``.submitit/<job id>/`` in the run folder) and the others are kept.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import resource
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lazyrich import store
from lazyrich.config.run import RunConfig, resolve_run
from lazyrich.device import torch_threads
from lazyrich.experiment.batch import META_COLUMNS, batch_size, option_columns
from lazyrich.experiment.cluster import LOGS, Launch, Outcome, run_all
from lazyrich.experiment.run import ExperimentResult, run_experiment, run_slice
from lazyrich.experiment.sink import log_wandb, plot_curves
from lazyrich.results.notes import read_notes
from lazyrich.store import identity, integrity, locking, watchdog
from lazyrich.store import shards as sharding
from lazyrich.store.shards import Shard

log = logging.getLogger(__name__)

__all__ = ["ShardsFailed", "run_shards"]


class ShardsFailed(RuntimeError):
    """Some shards of a run failed (the others finished); the message names each with its error and log."""


def run_shards(cfg: Mapping[str, Any] | RunConfig, run_dir: str | Path,
               launch: Launch | None = None) -> ExperimentResult:
    """Write ``cfg``'s batch into ``run_dir`` as ``cfg.shards`` shards run where ``launch`` says (None: here, one
    after another), or as one process when ``shards`` is 1 (:func:`~lazyrich.experiment.run.run_experiment`); see
    the module docstring. Returns the run's summary, notes and figures (``frame`` None: read the folder with
    :func:`lazyrich.results.load`). Raises :class:`ShardsFailed` if a shard failed, after the others finished."""
    config = resolve_run(cfg)
    launch = launch or Launch()
    if config.shards == 1:
        if launch.where != "here":
            log.info("shards=1: the batch trains in this process; set shards=N to run it as N %s pieces",
                     launch.where)
        return run_experiment(config, run_dir)
    run_dir = Path(run_dir)
    started = time.perf_counter()
    with locking.FolderLock(run_dir):
        identity.check_run(run_dir, config.record())
        shards = sharding.plan(batch_size(config.init, config.trainer, config.seed), config.shards)
        if _sealed(run_dir, shards):
            log.info("%s holds this run, finished and intact (%d shards): nothing to compute", run_dir, len(shards))
            return _result(run_dir, shards, read_notes(run_dir), [run_dir / "curves.png"])
        todo = _todo(run_dir, shards)
        store.start_sharded(run_dir, shards)
        for shard, _ in todo:
            shutil.rmtree(run_dir / shard.folder, ignore_errors=True)
        _announce(shards, todo, launch)
        record = dataclasses.replace(config, logger=None, shards=1).record()  # the run mirrors to W&B once
        pieces = [functools.partial(_shard, record, str(run_dir / shard.folder), shard, config.threads)
                  for shard, _ in todo]
        outcomes = run_all(pieces, launch, run_dir / LOGS, name=f"lazyrich:{run_dir.name}")
        _check(run_dir, [shard for shard, _ in todo], outcomes, len(shards))
        return _finish(config, run_dir, shards, started)


def _shard(record: Mapping[str, Any], folder: str, shard: Shard, threads: int | None) -> dict[str, float]:
    """One shard, in the process that runs it: its range recorded, its slice trained and written. Returns its
    seconds and this process's peak resident memory (MiB)."""
    started = time.perf_counter()
    watchdog.start()  # a piece on this host stops with the command that launched it
    Path(folder).mkdir(parents=True, exist_ok=True)
    sharding.write_record(folder, shard)
    with torch_threads(threads):
        run_slice(record, folder, range(shard.start, shard.stop))
    return {"seconds": time.perf_counter() - started,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _sealed(run_dir: Path, shards: Sequence[Shard]) -> bool:
    """Whether ``run_dir`` is this split of the run, finished and intact."""
    try:
        held = sharding.read_index(run_dir)
    except ValueError:
        return False
    same = held is not None and [(s.start, s.stop, s.folder) for s in held] == [(s.start, s.stop, s.folder)
                                                                                  for s in shards]
    return same and integrity.verify_unit(run_dir) is None


def _todo(run_dir: Path, shards: Sequence[Shard]) -> list[tuple[Shard, str]]:
    """The shards to (re)compute, each with why: missing, or not a finished, intact unit of its range."""
    todo = []
    for shard in shards:
        folder = run_dir / shard.folder
        reason = ("missing" if not folder.is_dir() else
                  integrity.verify_unit(folder) or sharding.range_problem(folder, shard))
        if reason is not None:
            todo.append((shard, reason))
    return todo


def _announce(shards: Sequence[Shard], todo: Sequence[tuple[Shard, str]], launch: Launch) -> None:
    """One line: what runs, where; on a resume, which shards are recomputed and why."""
    where = launch.describe()
    if all(reason == "missing" for _, reason in todo):
        if len(todo) == len(shards):
            log.info("computing %d shards of %d–%d networks, %s", len(shards), min(s.stop - s.start for s in shards),
                     max(s.stop - s.start for s in shards), where)
            return
    named = "; ".join(f"shard {s.index} ({s.folder}, {s.networks}): {reason}" for s, reason in todo)
    log.warning("recomputing %d of %d shards (the others are finished), %s: %s", len(todo), len(shards), where,
                named or "none")


def _check(run_dir: Path, shards: Sequence[Shard], outcomes: Sequence[Outcome], total: int) -> None:
    """Raise :class:`ShardsFailed` naming every shard that failed, or that reported success but does not verify;
    log each finished shard's seconds and peak memory."""
    failed = []
    for shard, outcome in zip(shards, outcomes, strict=True):
        reason = outcome.error if not outcome.ok else integrity.verify_unit(run_dir / shard.folder)
        if reason is None:
            log.info("shard %d (%s): %.1f s, peak RSS %.0f MiB", shard.index, shard.networks,
                     outcome.value["seconds"], outcome.value["peak_mib"])
        else:
            where = f", log {outcome.log}" if outcome.log is not None else ""
            failed.append(f"shard {shard.index} ({shard.folder}, {shard.networks}): {reason}{where}")
    if failed:
        raise ShardsFailed(f"{len(failed)} of {total} shards failed, the others finished: {'; '.join(failed)}; "
                           f"re-run the same command into the same folder to recompute them.")


def _finish(config: RunConfig, run_dir: Path, shards: Sequence[Shard], started: float) -> ExperimentResult:
    """Seal the run whose every shard is finished: its identity, curves figure, config and notes, the manifest
    and DONE; then the W&B mirror."""
    parts = [run_dir / s.folder for s in shards]
    notes = list(dict.fromkeys(note for part in parts for note in read_notes(part)))
    summary = _summary(parts)
    record = config.record()
    identity.record(run_dir, record, identity.OPERATIONAL)
    figures = [plot_curves(run_dir, summary, str(config.task.get("name", "")))]
    store.write_sharded(run_dir, config=record, notes=notes)
    logger = config.logger
    if logger is not None and logger.wandb.enabled:
        log_wandb(run_dir, logger.wandb, record, None, summary, notes, time.perf_counter() - started)
    log.info("%s: %d shards sealed into one run in %.1f s", run_dir, len(shards), time.perf_counter() - started)
    return _result(run_dir, shards, notes, figures, summary)


def _summary(parts: Sequence[Path]) -> pd.DataFrame:
    """The per-network summary of the run: its shards' summaries, in network order (each shard verified)."""
    return pd.concat([pd.read_csv(part / store.SUMMARY_FILE) for part in parts], ignore_index=True)


def _result(run_dir: Path, shards: Sequence[Shard], notes: list[str], figures: list[Path],
            summary: pd.DataFrame | None = None) -> ExperimentResult:
    summary = _summary([run_dir / s.folder for s in shards]) if summary is None else summary
    meta = summary[[c for c in (*META_COLUMNS, *option_columns(summary), "lam_hat") if c in summary]]
    return ExperimentResult(None, summary, run_dir, [], [], notes, meta,
                            figures=[f for f in figures if f.is_file()])
