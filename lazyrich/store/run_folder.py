"""A finished unit on disk, a run folder or a suite's ``runs/<id>/``: ``config.yaml`` (resolved), the long metrics
table in ``metrics.parquet`` and the matrices in ``matrices-<start>-<stop>.npz`` (:mod:`lazyrich.store.storage`),
``summary.csv`` and ``summary.json`` (one record per network, or a suite unit's rows of ``suite.csv``),
``theory.txt`` (which theory ran, or why none), ``MANIFEST.json`` (size and sha256 of every file) and ``DONE``,
written last, so a killed run is never 'done'. On a full disk, the file being written is removed and
:class:`~lazyrich.store.storage.NoSpaceLeft` names it (one line, with the fix).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lazyrich.store import integrity
from lazyrich.store import shards as sharding
from lazyrich.store.integrity import DONE
from lazyrich.store.storage import (
    LEGACY_MATRICES,
    METRICS_CSV,
    METRICS_PARQUET,
    MatrixStore,
    RunWriter,
    full_disk_guard,
)

__all__ = ["DONE", "SUMMARY_FILE", "THEORY_FILE", "start_sharded", "write_run", "write_sharded"]

SUMMARY_FILE = "summary.csv"
SUMMARY_JSON = "summary.json"
THEORY_FILE = "theory.txt"


def write_run(run_dir: str | Path, frame: pd.DataFrame | None, summary: pd.DataFrame, *,
              matrices: Mapping[str, np.ndarray] | None = None, config: Any = None,
              notes: Sequence[str] | None = None) -> Path:
    """Write a unit's folder (see module docstring); ``DONE`` is written last, so a killed run is never 'done'.

    ``frame`` (the long table) and ``matrices`` (batch first: one row per network 0 … B − 1) are written as one
    chunk by :class:`~lazyrich.store.storage.RunWriter`, the writer of a run; ``frame`` None: it wrote them
    already, chunk by chunk. ``notes``: the theory's notes, one line each, for ``theory.txt``.
    """
    run_dir = Path(run_dir)
    if matrices and frame is None:
        raise ValueError("write_run writes matrices with their metrics (frame); a run written chunk by chunk "
                         "writes both with its RunWriter.")
    _open(run_dir, config, notes)
    if frame is not None:
        arrays = {name: np.asarray(value) for name, value in (matrices or {}).items()}
        writer = RunWriter(run_dir)
        writer.append(0, len(next(iter(arrays.values()))) if arrays else 0, frame, arrays)
        writer.close()
    with full_disk_guard(run_dir / SUMMARY_FILE):
        summary.to_csv(run_dir / SUMMARY_FILE, index=False)
    # pandas' own writer: ten times faster than a round trip through json at 65,536 rows, and 15 significant
    # digits where that round trip kept pandas' default 10. NaN is written as null.
    _write_text(run_dir / SUMMARY_JSON, summary.to_json(orient="records", indent=1, double_precision=15))
    return _seal(run_dir)


def start_sharded(run_dir: str | Path, shards: Sequence[sharding.Shard]) -> None:
    """Make ``run_dir`` the sharded run of ``shards`` (:mod:`lazyrich.store.shards`): unfinished (no ``DONE``)
    until :func:`write_sharded`, its index written, and nothing left of an earlier layout (a one-process run's
    tables and matrices, shard folders of another split), so that it holds what its index says."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE).unlink(missing_ok=True)
    for name in (METRICS_PARQUET, METRICS_CSV, LEGACY_MATRICES, SUMMARY_FILE, SUMMARY_JSON):
        (run_dir / name).unlink(missing_ok=True)
    for _, _, chunk in MatrixStore(run_dir).chunks():
        chunk.unlink()
    kept = {Path(s.folder).name for s in shards}
    stale = (run_dir / sharding.SHARDS_DIR).iterdir() if (run_dir / sharding.SHARDS_DIR).is_dir() else ()
    for folder in [f for f in stale if f.name not in kept]:
        shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
    sharding.write_index(run_dir, shards)


def write_sharded(run_dir: str | Path, *, config: Any = None, notes: Sequence[str] | None = None) -> Path:
    """Finish a sharded run folder (:mod:`lazyrich.store.shards`) whose every shard is a finished unit: its
    ``config.yaml`` and ``theory.txt``, then its manifest, which pins each shard's, and ``DONE`` last."""
    run_dir = Path(run_dir)
    _open(run_dir, config, notes)
    return _seal(run_dir)


def _open(run_dir: Path, config: Any, notes: Sequence[str] | None) -> None:
    """Start (re)writing a unit: unfinished until its new manifest is in; its config and theory notes."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE).unlink(missing_ok=True)
    if config is not None:
        from omegaconf import OmegaConf

        _write_text(run_dir / "config.yaml", OmegaConf.to_yaml(config) if not isinstance(config, str) else config)
    if notes is not None:
        _write_text(run_dir / THEORY_FILE, "\n".join(notes) + "\n")


def _seal(run_dir: Path) -> Path:
    integrity.write_manifest(run_dir)
    _write_text(run_dir / DONE, "")
    return run_dir


def _write_text(path: Path, text: str) -> None:
    with full_disk_guard(path):
        path.write_text(text)
