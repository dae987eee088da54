"""A finished unit on disk: ``config.yaml`` (resolved), the metrics (``metrics.parquet`` written chunk by chunk by
:class:`~lazyrich.store.storage.RunWriter`, or ``metrics.csv``), ``summary.csv`` and ``summary.json`` (one record per
network), optional matrices, ``MANIFEST.json`` (size and sha256 of every file) and ``DONE``, written last, so a
killed run is never 'done'.
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

__all__ = ["DONE", "METRICS_FILE", "SUMMARY_FILE", "THEORY_FILE", "write_run"]

METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.csv"
THEORY_FILE = "theory.txt"


def write_run(run_dir: str | Path, frame: pd.DataFrame | None, summary: pd.DataFrame, *,
              matrices: Mapping[str, np.ndarray] | None = None, config: Any = None,
              notes: Sequence[str] | None = None) -> Path:
    """Write a unit's folder (see module docstring); ``DONE`` is written last, so a killed run is never 'done'.

    ``frame`` None: the metrics were written already (``metrics.parquet``, by
    :class:`~lazyrich.store.storage.RunWriter`). ``notes``: the theory's notes, one line each, for
    ``theory.txt``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE).unlink(missing_ok=True)  # rewriting a folder: unfinished until the new manifest is in
    if config is not None:
        from omegaconf import OmegaConf

        text = OmegaConf.to_yaml(config) if not isinstance(config, str) else config
        (run_dir / "config.yaml").write_text(text)
    if notes is not None:
        (run_dir / THEORY_FILE).write_text("\n".join(notes) + "\n")
    if frame is not None:
        frame.to_csv(run_dir / METRICS_FILE, index=False)
    summary.to_csv(run_dir / SUMMARY_FILE, index=False)
    records = json.loads(summary.to_json(orient="records"))
    (run_dir / "summary.json").write_text(json.dumps(records, indent=1))
    if matrices:
        np.savez_compressed(run_dir / "matrices.npz", **{k: np.asarray(v) for k, v in matrices.items()})
    integrity.write_manifest(run_dir)
    (run_dir / DONE).write_text("")
    return run_dir


