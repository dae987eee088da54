"""Where the pieces of one command run: here, one after another; as submitit's local processes; or as one SLURM
job array through submitit. The command waits for them, reports each piece that failed with where its log is, and
takes its pieces with it when it stops early.

The place comes from Hydra's launcher config (``hydra/launcher=slurm`` or ``submitit_local``; anything else, e.g.
the default joblib launcher, runs the pieces here), read by :meth:`Launch.of`; its keys (partition, timeout_min,
cpus_per_task, mem_gb, array_parallelism, setup, additional_parameters, …) become submitit's parameters as Hydra's
submitit launcher passes them. Each piece is one process: ``nodes`` and ``tasks_per_node`` are 1 whatever the
launcher says. The job imports the lazyrich this command runs (its folder is put first on the job's PYTHONPATH).

Logs go to ``<folder>/<job id>/`` (submitit's ``<job id>_0_log.out`` and ``_log.err``; a SLURM array task's job id
is ``<array id>_<index>``). The wait polls ``squeue`` (not ``sacct``: a cluster without accounting works too); a
piece that left the queue without a result (cancelled, out of time or memory, its node lost) is a failure with
its SLURM state where ``scontrol`` still knows it. Ctrl-C, SIGTERM or SIGHUP of the command, or any error while it
waits, cancels what is still queued or running (``scancel`` of the array; SIGINT to local processes) and waits
until none of it is left before the command ends. A SIGKILL cannot be caught: ``scancel`` the array by hand
(its id is logged when it is submitted).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["LAUNCHERS", "LOGS", "Launch", "Outcome", "run_all"]

LOGS = ".submitit"
"""The subfolder of a run (or bench) folder that receives its pieces' submitit files and logs."""

LAUNCHERS = {
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher": "slurm",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher": "local",
}
"""Hydra launcher targets that place pieces elsewhere, by where; any other launcher runs them here."""
BASE_KEYS = ("timeout_min", "cpus_per_task", "gpus_per_node", "mem_gb", "stderr_to_stdout")
"""Launcher keys that submitit takes as they are; the others get the executor's prefix (``slurm_…``)."""
LEFT_OUT = ("_target_", "submitit_folder", "name", "nodes", "tasks_per_node", "max_num_timeout",
            "array_parallelism")
"""Launcher keys this module sets itself (the log folder, the job name, one process per piece, the throttle)."""
GRACE_SECONDS = 10.0
"""How long a piece that left the queue may take to show its result file (a shared file system's delay)."""
CANCEL_SECONDS = 60.0
ENDED_WITHOUT_RESULT = frozenset({"CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
                                  "DEADLINE", "PREEMPTED"})
"""SLURM states of a task that ended without writing its result: no grace to wait for it."""


@dataclass(frozen=True)
class Launch:
    """Where pieces run: ``here`` (in this process, one after another), ``local`` (submitit's local processes,
    ``parallel`` at a time) or ``slurm`` (one job array, ``parallel`` tasks at a time); ``params``: the
    launcher's other keys."""

    where: str = "here"
    params: Mapping[str, Any] = field(default_factory=dict)
    parallel: int = 1

    @classmethod
    def of(cls, launcher: Mapping[str, Any] | None) -> Launch:
        """The place Hydra's launcher config names (``hydra.launcher`` resolved to plain data; None: here)."""
        where = LAUNCHERS.get(str((launcher or {}).get("_target_")), "here")
        if where == "here":
            return cls()
        params = {k: v for k, v in dict(launcher or {}).items() if k not in LEFT_OUT and v is not None}
        cpus = int(params.get("cpus_per_task") or 1)
        default = 256 if where == "slurm" else max(1, (os.cpu_count() or 1) // cpus)
        return cls(where, params, int((launcher or {}).get("array_parallelism") or default))

    def describe(self) -> str:
        """A few words: where the pieces run."""
        if self.where == "here":
            return "in this process, one after another"
        partition = self.params.get("partition")
        return (f"as one SLURM job array ({f'partition {partition}, ' if partition else ''}{self.parallel} at a time)"
                if self.where == "slurm" else f"as submitit local processes ({self.parallel} at a time)")


@dataclass
class Outcome:
    """What piece ``index`` gave: ``value`` if ``ok``, else ``error`` (one line); ``log`` its stderr log and
    ``job`` its job id (None for a piece run here)."""

    index: int
    ok: bool
    value: Any = None
    error: str = ""
    log: Path | None = None
    job: str | None = None


def run_all(pieces: Sequence[Callable[[], Any]], launch: Launch, folder: Path, name: str,
            poll: float = 1.0) -> list[Outcome]:
    """Run every piece (a picklable callable) where ``launch`` says and wait for all of them; one
    :class:`Outcome` each, in order. A piece that raises is a failed outcome (here too); the others go on.
    ``folder`` receives submitit's files and logs, ``name`` is the jobs' name."""
    if launch.where == "here":
        return [_here(i, piece) for i, piece in enumerate(pieces)]
    executor = _executor(launch, folder, name)
    with _stopping_signals():
        if launch.where == "slurm":
            return _slurm(executor, pieces, poll)
        return _local(executor, pieces, launch.parallel, poll)


def _here(index: int, piece: Callable[[], Any]) -> Outcome:
    try:
        return Outcome(index, True, piece())
    except Exception as err:  # noqa: BLE001 — one piece's failure is reported with the others'
        log.debug("piece %d failed:\n%s", index, traceback.format_exc())
        return Outcome(index, False, error=f"{type(err).__name__}: {err}")


def _executor(launch: Launch, folder: Path, name: str):
    import submitit

    prefix = launch.where
    params = {k if k in BASE_KEYS else f"{prefix}_{k}": v for k, v in launch.params.items()}
    root = Path(__file__).resolve().parents[2]  # the folder that holds this lazyrich
    setup = [f'export PYTHONPATH="{root}${{PYTHONPATH:+:$PYTHONPATH}}"', *(params.pop(f"{prefix}_setup", None) or [])]
    if prefix == "slurm":
        params["slurm_array_parallelism"] = launch.parallel
    executor = submitit.AutoExecutor(folder=Path(folder) / "%j", cluster=prefix)
    executor.update_parameters(name=name, nodes=1, tasks_per_node=1, **{f"{prefix}_setup": setup}, **params)
    return executor


@contextlib.contextmanager
def _stopping_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the wait as Ctrl-C does (so the pieces are cancelled), in the main thread."""
    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    try:
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    except ValueError:  # not the main thread: leave the signals alone
        previous = {}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _slurm(executor, pieces: Sequence[Callable[[], Any]], poll: float) -> list[Outcome]:
    with executor.batch():
        jobs = [executor.submit(piece) for piece in pieces]
    array = jobs[0].job_id.split("_")[0]
    log.info("submitted %d piece(s) as SLURM job array %s; logs in %s", len(jobs), array,
             jobs[0].paths.folder.parent)
    try:
        live = {job.job_id for job in jobs}
        while live:
            time.sleep(poll)
            queued = _squeue(array)
            live = live & queued if queued is not None else live
    except BaseException:
        _cancel_array(array)
        raise
    return [_outcome(i, job, lambda job=job: _slurm_state(job.job_id)) for i, job in enumerate(jobs)]


def _squeue(array: str) -> set[str] | None:
    """The ids of the array's tasks still queued or running (None when squeue cannot say just now)."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", array], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return set() if "Invalid job id" in out.stderr else None
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def _cancel_array(array: str) -> None:
    """scancel the array and wait (at most :data:`CANCEL_SECONDS`) until squeue lists none of its tasks."""
    log.warning("cancelling SLURM job array %s", array)
    subprocess.run(["scancel", array], capture_output=True, timeout=60)
    deadline = time.monotonic() + CANCEL_SECONDS
    while time.monotonic() < deadline:
        if _squeue(array) == set():
            return
        time.sleep(0.5)
    log.warning("SLURM job array %s is still listed by squeue %.0f s after scancel", array, CANCEL_SECONDS)


def _slurm_state(job_id: str) -> str:
    """The job's state as slurmctld still remembers it (CANCELLED, TIMEOUT, OUT_OF_MEMORY, …), else ''."""
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    fields = dict(item.split("=", 1) for item in out.stdout.split() if "=" in item)
    return fields.get("JobState", "")


def _local(executor, pieces: Sequence[Callable[[], Any]], parallel: int, poll: float) -> list[Outcome]:
    jobs: list[Any] = []
    try:
        while len(jobs) < len(pieces) or not all(job.done() for job in jobs):
            running = sum(not job.done() for job in jobs)
            for piece in pieces[len(jobs):len(jobs) + max(0, parallel - running)]:
                jobs.append(executor.submit(piece))
            time.sleep(poll)
    except BaseException:
        _cancel_local(jobs)
        raise
    return [_outcome(i, job, lambda job=job: job.state) for i, job in enumerate(jobs)]


def _cancel_local(jobs: Sequence[Any]) -> None:
    live = [job for job in jobs if not job.done()]
    log.warning("stopping %d local piece(s)", len(live))
    for job in live:
        job.cancel()
    deadline = time.monotonic() + CANCEL_SECONDS
    while any(not job.done() for job in live) and time.monotonic() < deadline:
        time.sleep(0.2)


def _outcome(index: int, job, state: Callable[[], str]) -> Outcome:
    """A finished job's outcome, from its result file (a piece that left no result failed: ``state()`` says
    how, if it can)."""
    from submitit.core.utils import pickle_load

    result = job.paths.result_pickle
    how = "" if result.exists() else state()
    if not result.exists() and how not in ENDED_WITHOUT_RESULT:  # it may have finished: its file may be on its way
        deadline = time.monotonic() + GRACE_SECONDS
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    logfile = job.paths.stderr if job.paths.stderr.exists() else None
    if not result.exists():
        how = how or ("cancelled, out of time or memory, or its node failed" if logfile is not None else
                      "it never started: cancelled while queued, or refused; no log")
        return Outcome(index, False, error=f"job {job.job_id} ended without a result ({how})", log=logfile,
                       job=job.job_id)
    kind, value = pickle_load(result)
    if kind == "success":
        return Outcome(index, True, value, log=logfile, job=job.job_id)
    lines = [line for line in str(value).strip().splitlines() if line.strip()]
    return Outcome(index, False, error=lines[-1] if lines else "failed", log=logfile, job=job.job_id)
