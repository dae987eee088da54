"""A finished unit on disk, a run folder or a suite's ``runs/<id>/``: ``config.yaml`` (resolved), the long metrics
table in ``metrics.parquet`` and the matrices in ``matrices-<start>-<stop>.npz`` (:mod:`lazyrich.store.storage`),
``summary.csv`` and ``summary.json`` (one record per network, or a suite unit's rows of ``suite.csv``),
``theory.txt`` (which theory ran, or why none), ``MANIFEST.json`` (size and sha256 of every file) and ``DONE``,
written last, so a killed run is never 'done'. On a full disk, the file being written is removed and
:class:`~lazyrich.store.storage.NoSpaceLeft` names it (one line, with the fix).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lazyrich.store import integrity
from lazyrich.store.integrity import DONE
from lazyrich.store.storage import RunWriter, full_disk_guard

__all__ = ["DONE", "SUMMARY_FILE", "THEORY_FILE", "write_run"]

SUMMARY_FILE = "summary.csv"
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
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE).unlink(missing_ok=True)  # rewriting a folder: unfinished until the new manifest is in
    if config is not None:
        from omegaconf import OmegaConf

        _write_text(run_dir / "config.yaml", OmegaConf.to_yaml(config) if not isinstance(config, str) else config)
    if notes is not None:
        _write_text(run_dir / THEORY_FILE, "\n".join(notes) + "\n")
    if frame is not None:
        arrays = {name: np.asarray(value) for name, value in (matrices or {}).items()}
        writer = RunWriter(run_dir)
        writer.append(0, len(next(iter(arrays.values()))) if arrays else 0, frame, arrays)
        writer.close()
    with full_disk_guard(run_dir / SUMMARY_FILE):
        summary.to_csv(run_dir / SUMMARY_FILE, index=False)
    records = json.loads(summary.to_json(orient="records"))
    _write_text(run_dir / "summary.json", json.dumps(records, indent=1))
    integrity.write_manifest(run_dir)
    _write_text(run_dir / DONE, "")
    return run_dir


def _write_text(path: Path, text: str) -> None:
    with full_disk_guard(path):
        path.write_text(text)
