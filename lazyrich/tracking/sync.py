"""``lazyrich sync DIR [--dry-run] [--timeout S]``: upload every offline W&B run below DIR with ``wandb sync``.

lazyrich writes each run's W&B files beside its results (``<run folder>/wandb/offline-run-*``, one per unit of a
suite under ``runs/<id>/wandb/``), and ``wandb sync`` is not recursive, so this finds them all and passes them on.
Only the newest offline run of each W&B id is uploaded (an older one, left by a re-run from before re-logs
replaced them, is named and skipped), and runs W&B has marked synced are skipped. A finished unit whose W&B
mirror is incomplete (:func:`lazyrich.tracking.mirror.mirror_state`: its logging was cut short) is named, with
how to log it again. ``--dry-run`` lists them and uploads nothing.

``wandb sync`` exits 0 even when its uploads fail, so success is W&B's own mark, the ``.wandb.synced`` file it
writes beside a run it uploaded; the exit status is 1 when any run is left without it, and the output says how
many of how many failed and names them. Time is bounded: the server is probed first (one HTTP request, at most
:data:`~lazyrich.tracking.connect.PROBE_TIMEOUT` s; a host that refuses connections fails at once, a silent one
after the probe), then the runs go up in batches of :data:`BATCH_RUNS`, each ``wandb sync`` call stopped after
``--timeout`` seconds (default :data:`SYNC_TIMEOUT`); after a batch that timed out, the rest are not tried.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from lazyrich.tracking.connect import server_reachable, wandb_base_url
from lazyrich.tracking.mirror import mirror_state, newest_offline_runs
from lazyrich.tracking.read import wandb_exe

__all__ = ["BATCH_RUNS", "SYNC_TIMEOUT", "find_offline_runs", "incomplete_mirrors", "is_synced", "main", "sync_command",
           "upload"]

SYNC_TIMEOUT = 300.0
"""Seconds one ``wandb sync`` call (a batch of :data:`BATCH_RUNS` runs) may take before it is stopped."""

BATCH_RUNS = 32
"""Offline runs passed to one ``wandb sync`` call."""

NAMED_MAX = 10
"""Units with an incomplete mirror named one by one; the rest are counted."""


def find_offline_runs(root: str | Path) -> list[Path]:
    """Every offline W&B run directory (``offline-run-*`` holding a ``.wandb`` file) below ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise SystemExit(f"lazyrich: {root} is not a folder; pass the output folder of a run, sweep or bench.")
    return sorted(p for p in root.rglob("offline-run-*") if p.is_dir() and any(p.glob("*.wandb")))


def is_synced(run: Path) -> bool:
    """Whether W&B has uploaded the offline run ``run`` (``wandb sync`` writes ``<file>.wandb.synced``)."""
    files = list(run.glob("*.wandb"))
    return bool(files) and all(f.with_name(f.name + ".synced").exists() for f in files)


def sync_command(runs: Sequence[Path], extra: Sequence[str] = ()) -> list[str]:
    """The ``wandb sync`` command line that uploads ``runs`` (the wandb executable beside this Python first)."""
    return [wandb_exe(), "sync", *extra, *[str(r) for r in runs]]


def run_bounded(command: Sequence[str], timeout: float) -> str | None:
    """Run ``command`` (its output to this terminal) for at most ``timeout`` seconds; None if it ended in time,
    else why not. On timeout its whole process group is killed (``wandb sync`` starts a W&B service)."""
    proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, start_new_session=True)  # never a prompt
    try:
        proc.wait(timeout=timeout)
        return None
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return f"wandb sync did not finish within {timeout:g} s"


def upload(runs: Sequence[Path], extra: Sequence[str] = (), timeout: float = SYNC_TIMEOUT) -> dict[Path, str]:
    """Upload ``runs`` in batches of :data:`BATCH_RUNS`; returns {run: why} for each run left unsynced."""
    failed: dict[Path, str] = {}
    for start in range(0, len(runs), BATCH_RUNS):
        batch = list(runs[start:start + BATCH_RUNS])
        stopped = run_bounded(sync_command(batch, extra), timeout)
        failed.update({r: stopped or "wandb sync did not mark it synced (see W&B's messages above)"
                       for r in batch if not is_synced(r)})
        if stopped:
            rest = runs[start + BATCH_RUNS:]
            failed.update({r: f"not tried: {stopped} on the batch before" for r in rest})
            break
    return failed


def incomplete_mirrors(runs: Sequence[Path]) -> dict[Path, str]:
    """{unit folder: why} for the finished units holding ``runs`` whose W&B mirror is not complete."""
    units = {run.parent.parent for run in runs if (run.parent.parent / "DONE").exists()}
    states = {unit: mirror_state(unit) for unit in sorted(units)}
    return {unit: why for unit, why in states.items() if why is not None}


def _report_failures(failed: dict[Path, str], total: int, why: str = "") -> int:
    print(f"lazyrich sync: {len(failed)} of {total} offline W&B run(s) failed to upload{why}:")
    for run, reason in failed.items():
        print(f"  {run}: {reason}")
    print("Fix the cause (wandb login, the network, WANDB_BASE_URL) and run lazyrich sync again: runs already "
          "uploaded are skipped.")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lazyrich sync``: 0 when every run is uploaded (or for a dry run), else 1."""
    parser = argparse.ArgumentParser(prog="lazyrich sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="a run, sweep or bench output folder")
    parser.add_argument("--dry-run", action="store_true", help="list the offline runs, upload nothing")
    parser.add_argument("--project", help="upload into this W&B project instead of the one recorded")
    parser.add_argument("--entity", help="upload under this W&B entity")
    parser.add_argument("--timeout", type=float, default=SYNC_TIMEOUT,
                        help=f"seconds one wandb sync call of up to {BATCH_RUNS} runs may take (default %(default)g)")
    args = parser.parse_args(argv)
    found = find_offline_runs(args.dir)
    if not found:
        print(f"lazyrich sync: no offline W&B runs below {args.dir}.")
        return 0
    runs, older = newest_offline_runs(found)
    for old, newer in older.items():
        print(f"skipped {old}: an older offline run of the W&B id of {newer.name}, which replaces it")
    incomplete = incomplete_mirrors(runs)
    for unit, why in list(incomplete.items())[:NAMED_MAX]:
        print(f"note: {unit}: {why}; re-run its command into the same folder to log it again")
    if len(incomplete) > NAMED_MAX:
        print(f"note: {len(incomplete) - NAMED_MAX} more finished unit(s) without a complete W&B mirror")
    if args.dry_run:
        print("\n".join(str(r) for r in runs))
        print(f"{len(runs)} offline W&B run(s) ({len(older)} older one(s) skipped); upload them with: lazyrich sync "
              f"{args.dir}")
        return 0
    pending = [r for r in runs if not is_synced(r)]
    print(f"uploading {len(pending)} offline W&B run(s) below {args.dir}"
          + (f" ({len(runs) - len(pending)} already uploaded)" if len(pending) < len(runs) else ""))
    if not pending:
        return 0
    unreachable = server_reachable(wandb_base_url())
    if unreachable is not None:
        return _report_failures({r: "not tried" for r in pending}, len(pending), f" ({unreachable})")
    extra = [*(["--project", args.project] if args.project else []),
             *(["--entity", args.entity] if args.entity else [])]
    failed = upload(pending, extra, args.timeout)
    if failed:
        return _report_failures(failed, len(pending))
    print(f"uploaded {len(pending)} offline W&B run(s).")
    return 0
