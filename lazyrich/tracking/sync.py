"""``lazyrich sync DIR [--dry-run]``: upload every offline W&B run below DIR with ``wandb sync``.

lazyrich writes each run's W&B files beside its results (``<run folder>/wandb/offline-run-*``, one per unit of a
suite under ``runs/<id>/wandb/``), and ``wandb sync`` is not recursive, so this finds them all and passes them on
in one call. ``--dry-run`` lists them and uploads nothing.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Sequence
from pathlib import Path

from lazyrich.tracking.read import wandb_exe

__all__ = ["find_offline_runs", "main", "sync_command"]


def find_offline_runs(root: str | Path) -> list[Path]:
    """Every offline W&B run directory (``offline-run-*`` holding a ``.wandb`` file) below ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise SystemExit(f"lazyrich: {root} is not a folder; pass the output folder of a run, sweep or bench.")
    return sorted(p for p in root.rglob("offline-run-*") if p.is_dir() and any(p.glob("*.wandb")))


def sync_command(runs: Sequence[Path], extra: Sequence[str] = ()) -> list[str]:
    """The ``wandb sync`` command line that uploads ``runs`` (the wandb executable beside this Python first)."""
    return [wandb_exe(), "sync", *extra, *[str(r) for r in runs]]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lazyrich sync``; returns the exit status of ``wandb sync`` (0 for a dry run)."""
    parser = argparse.ArgumentParser(prog="lazyrich sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="a run, sweep or bench output folder")
    parser.add_argument("--dry-run", action="store_true", help="list the offline runs, upload nothing")
    parser.add_argument("--project", help="upload into this W&B project instead of the one recorded")
    parser.add_argument("--entity", help="upload under this W&B entity")
    args = parser.parse_args(argv)
    runs = find_offline_runs(args.dir)
    if not runs:
        print(f"lazyrich sync: no offline W&B runs below {args.dir}.")
        return 0
    extra = [*(["--project", args.project] if args.project else []),
             *(["--entity", args.entity] if args.entity else [])]
    if args.dry_run:
        print("\n".join(str(r) for r in runs))
        print(f"{len(runs)} offline W&B run(s); upload them with: lazyrich sync {args.dir}")
        return 0
    print(f"uploading {len(runs)} offline W&B run(s) below {args.dir}")
    return subprocess.run(sync_command(runs, extra), check=False).returncode
