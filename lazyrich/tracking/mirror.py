"""The W&B mirror of one unit on disk: whether it is complete, and which offline run of a W&B id is the one to keep.

A unit (a ``lazyrich run`` folder, or a suite's ``runs/<id>/``) is mirrored by its W&B runs, written under
``<unit>/wandb/`` after the unit's results are finished. Only when every one of them has finished does
:func:`mark_mirrored` write ``wandb/`` :data:`MIRROR_FILE`, naming the runs and the sha256 of the unit's
``MANIFEST.json``; it sits below ``wandb/``, which the manifest never covers, so marking a mirror never
changes a verified unit. :func:`mirror_state` says whether a unit's mirror is complete: a unit killed while
logging has no marker, and resuming it logs it again.

A re-log of a W&B id writes a new offline run beside the earlier one; once it has finished, :func:`supersede`
deletes the earlier ones, and :func:`newest_offline_runs` keeps only the newest offline run of each id wherever
older ones remain (W&B names the folder ``offline-run-<time>-<id>``, with ``-1``, ``-2``… on a clash, so the id
is read from the ``run-<id>.wandb`` file inside).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from lazyrich.store import integrity

__all__ = ["MIRROR_FILE", "mark_mirrored", "mirror_state", "newest_offline_runs", "offline_run_id", "supersede"]

MIRROR_FILE = "lazyrich-mirror.json"
"""The marker of a complete mirror, in the unit's ``wandb/`` folder."""


def _results_digest(unit_dir: Path) -> str | None:
    """sha256 of the unit's manifest (which pins every result file), or None where there is none."""
    try:
        return hashlib.sha256((unit_dir / integrity.MANIFEST).read_bytes()).hexdigest()
    except OSError:
        return None


def mark_mirrored(unit_dir: str | Path, run_dirs: Sequence[str | Path], layout: str) -> Path:
    """Record that the W&B runs in ``run_dirs`` (all finished) mirror the unit in ``unit_dir`` completely."""
    unit_dir = Path(unit_dir)
    marker = unit_dir / "wandb" / MIRROR_FILE
    marker.parent.mkdir(parents=True, exist_ok=True)
    record = {"layout": layout, "results_sha256": _results_digest(unit_dir),
              "runs": sorted(os.path.relpath(Path(p), marker.parent) for p in run_dirs)}
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, marker)
    return marker


def mirror_state(unit_dir: str | Path) -> str | None:
    """None if the unit in ``unit_dir`` has a complete W&B mirror of its current results, else why not."""
    marker = Path(unit_dir) / "wandb" / MIRROR_FILE
    try:
        record = json.loads(marker.read_text())
        runs, digest = list(record["runs"]), record["results_sha256"]
    except FileNotFoundError:
        return "no complete W&B mirror (its logging was cut short, or never ran)"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"{MIRROR_FILE} is unreadable ({type(err).__name__}: {err})"
    if digest != _results_digest(Path(unit_dir)):
        return "the results changed after they were mirrored"
    missing = [r for r in runs if not (marker.parent / r).is_dir()]
    if missing:
        return f"W&B run folder {missing[0]} is missing"
    return None


def offline_run_id(run_dir: str | Path) -> str | None:
    """The W&B id of the offline run in ``run_dir`` (from its ``run-<id>.wandb`` file), or None if it has none."""
    names = sorted(p.name for p in Path(run_dir).glob("run-*.wandb"))
    return names[0][len("run-"):-len(".wandb")] if names else None


def _age_key(run_dir: Path) -> tuple[str, int]:
    """Sorts offline runs oldest first: the time in the folder's name, then the ``.wandb`` file's mtime."""
    stamp = run_dir.name[len("offline-run-"):].split("-", 1)[0]
    files = list(run_dir.glob("run-*.wandb"))
    return stamp, max((f.stat().st_mtime_ns for f in files), default=0)


def newest_offline_runs(runs: Iterable[str | Path]) -> tuple[list[Path], dict[Path, Path]]:
    """(the newest offline run of each W&B id, sorted; {older run: the newer one that supersedes it})."""
    by_id: dict[str, list[Path]] = {}
    for run in map(Path, runs):
        by_id.setdefault(offline_run_id(run) or str(run), []).append(run)
    newest, older = [], {}
    for same in by_id.values():
        same.sort(key=_age_key)
        newest.append(same[-1])
        older.update({run: same[-1] for run in same[:-1]})
    return sorted(newest), older


def supersede(run_dir: str | Path) -> list[Path]:
    """Delete the earlier offline runs of the W&B id of the offline run ``run_dir`` that sit beside it (a re-log
    of the same id replaces them); returns what was deleted. Call it once ``run_dir``'s run has finished."""
    run_dir = Path(run_dir)
    rid = offline_run_id(run_dir)
    if rid is None or not run_dir.name.startswith("offline-run-"):
        return []
    earlier = [p for p in run_dir.parent.glob("offline-run-*")
               if p.is_dir() and p != run_dir and offline_run_id(p) == rid and _age_key(p) <= _age_key(run_dir)]
    for path in earlier:
        shutil.rmtree(path, ignore_errors=True)
    return earlier
