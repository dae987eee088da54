"""Verified units: a manifest of a finished folder's files, written before ``DONE`` and checked when read.

A unit (one run folder, or one ``runs/<id>/`` of a suite) is *finished* only when ``DONE`` exists and every
file listed in ``MANIFEST.json`` still has its recorded size and sha256 (which covers a table's rows too). The
manifest lists whatever regular files the folder holds at the time (CSV, Parquet, NPZ, PNG, …), so it stays
right whatever format the metrics are stored in. Files that change after a unit is finished by design (logs,
the lock, the folder identity, hidden folders such as ``.hydra`` and W&B's ``wandb/``) are left out.

:func:`verify_unit` returns ``None`` for a good unit, else one line saying what is wrong; resume recomputes
such a unit, and :func:`lazyrich.results.load` skips it with a warning naming it. :func:`verify_file` asks the
same of one file, which must also be one its unit's manifest lists (a file written beside a finished unit is not
part of it).

A sharded run (:mod:`lazyrich.store.shards`) is one unit made of parts: its manifest lists its index, the index
pins the sha256 of each part's ``MANIFEST.json`` (filled in by :func:`write_manifest`), and :func:`verify_unit`
verifies every part as well, so a shard damaged after the run finished fails the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lazyrich.store import shards as sharding
from lazyrich.store.storage import full_disk_guard

__all__ = ["DONE", "MANIFEST", "verify_file", "verify_unit", "write_manifest"]

DONE = "DONE"
MANIFEST = "MANIFEST.json"
SKIPPED_NAMES = frozenset({DONE, MANIFEST, "FAILED", "identity.json", ".lazyrich.lock"})
SKIPPED_SUFFIXES = (".log", ".tmp")


def _listed(run_dir: Path) -> list[Path]:
    """The files a manifest covers: regular top-level files, minus the markers and the by-design mutable."""
    return sorted(
        p for p in run_dir.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in SKIPPED_NAMES
        and not p.name.endswith(SKIPPED_SUFFIXES)
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def write_manifest(run_dir: str | Path) -> Path:
    """Record every file of ``run_dir`` (size and sha256) in ``MANIFEST.json``, atomically.

    Call it after the last result file is written and before ``DONE``. In a sharded run, every part must be
    finished: the index records the sha256 of each part's manifest first.
    """
    run_dir = Path(run_dir)
    _pin_parts(run_dir)
    manifest = {"version": 1, "files": {p.name: _entry(p) for p in _listed(run_dir)}}
    tmp = run_dir / (MANIFEST + ".tmp")
    with full_disk_guard(run_dir / MANIFEST, tmp):
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, run_dir / MANIFEST)
    return run_dir / MANIFEST


def _pin_parts(run_dir: Path) -> None:
    """Record in a sharded run's index the sha256 of each part's MANIFEST.json (nothing to do unsharded)."""
    shards = sharding.read_index(run_dir)
    if shards is not None:
        sharding.write_index(run_dir, [dataclasses.replace(s, manifest=_sha256(run_dir / s.folder / MANIFEST))
                                       for s in shards])


def _parts_problem(run_dir: Path) -> str | None:
    """None if every part of a sharded run is a finished, intact unit with the manifest the index pins."""
    try:
        shards = sharding.read_index(run_dir) or []
    except ValueError as err:
        return str(err)
    for shard in shards:
        part = run_dir / shard.folder
        problem = verify_unit(part)
        if problem is None and _sha256(part / MANIFEST) != shard.manifest:
            problem = f"its {MANIFEST} is not the one the run recorded (changed after the run finished)"
        if problem is not None:
            return f"shard {shard.index} ({shard.folder}, {shard.networks}): {problem}"
    return None


def _read_manifest(run_dir: Path) -> dict[str, Any] | str:
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text())
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not a mapping")
        return files
    except FileNotFoundError:
        return f"{MANIFEST} is missing (written by an older lazyrich, or the unit was never finished)"
    except (ValueError, KeyError, TypeError) as err:
        return f"{MANIFEST} is unreadable ({type(err).__name__}: {err})"


def _check_file(path: Path, want: dict[str, Any]) -> str | None:
    if not path.is_file():
        return f"{path.name} is missing"
    size = path.stat().st_size
    if size != want.get("bytes"):
        return f"{path.name} has {size} bytes where the manifest recorded {want.get('bytes')}"
    if _sha256(path) != want.get("sha256"):
        return f"{path.name} does not match its recorded checksum (changed after the unit finished)"
    return None


def verify_unit(run_dir: str | Path) -> str | None:
    """``None`` if ``run_dir`` is a finished, intact unit; else one line saying what is wrong with it."""
    run_dir = Path(run_dir)
    if not (run_dir / DONE).is_file():
        return f"unfinished: no {DONE} marker (the run was killed, failed, or is still being written)"
    files = _read_manifest(run_dir)
    if isinstance(files, str):
        return files
    for name, want in sorted(files.items()):
        problem = _check_file(run_dir / name, want)
        if problem is not None:
            return problem
    return _parts_problem(run_dir) if sharding.INDEX in files else None


def verify_file(path: str | Path, unit: Callable[[Path], str | None] | None = None) -> str | None:
    """``None`` if ``path`` is a file of a finished, intact unit (``unit``, default :func:`verify_unit`, judges its
    folder) that the unit's manifest lists; else one line saying what is wrong."""
    path = Path(path)
    reason = (unit or verify_unit)(path.parent)
    if reason is not None:
        return reason
    files = _read_manifest(path.parent)
    if isinstance(files, str):
        return files
    if path.name not in files:
        return (f"{path.name} is not a file of the unit: its {MANIFEST} does not list it (written beside it after "
                f"the unit finished)")
    return None
