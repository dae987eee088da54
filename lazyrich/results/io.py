"""Reading results back: the long table, the summaries, the curves and the matrices of a unit — a run folder or a
suite's ``runs/<id>/`` — or of every unit under a sweep or bench folder, from finished units whose files match their
manifest only (:mod:`lazyrich.store.integrity`).

Every unit holds ``metrics.parquet`` (the long table), ``matrices-<start>-<stop>.npz`` (matrices, batch first),
``summary.csv``/``summary.json`` (one row per network, or a suite unit's rows of ``suite.csv``), ``config.yaml``,
``theory.txt``, ``MANIFEST.json`` and ``DONE`` (:mod:`lazyrich.store.run_folder`). Folders written by older versions
(``metrics.csv``, ``matrices.npz``) are read the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lazyrich.results.curves import SIM, Curves, from_frame
from lazyrich.results.names import canonical
from lazyrich.store import SUMMARY_FILE, integrity, storage
from lazyrich.store.storage import read_metrics

__all__ = ["ResultsWarning", "load", "load_curves", "load_matrices", "load_summary"]


class ResultsWarning(UserWarning):
    """A unit left out of a loaded table (unfinished, or failing verification); the message names it."""


REQUIRED_COLUMNS = {SUMMARY_FILE: ("status",)}


def _read_table(f: Path, filename: str) -> pd.DataFrame:
    """One table file, or a ValueError naming the file and what is wrong with it."""
    try:
        df = pd.read_csv(f)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{f}: not a readable {filename} table ({type(err).__name__}: {err}); re-run the "
                         f"unit that wrote it.") from None
    missing = [c for c in REQUIRED_COLUMNS.get(filename, ()) if c not in df]
    if missing:
        raise ValueError(f"{f}: not a lazyrich {filename} (no column {', '.join(missing)}); re-run the unit "
                         f"that wrote it.")
    return canonical(df)


def _verified(files: list[Path], path: Path, verify: Callable[[Path], str | None] | None = None) -> list[Path]:
    """The files whose run folder is a finished, intact unit (``verify``, default
    :func:`~lazyrich.store.integrity.verify_unit`, says why not); the others are named in a ResultsWarning."""
    kept = []
    for f in files:
        reason = (verify or integrity.verify_unit)(f.parent)
        if reason is None:
            kept.append(f)
        else:
            warnings.warn(f"skipped {f.parent}: {reason}", ResultsWarning, stacklevel=4)
    if files and not kept:
        raise FileNotFoundError(f"no finished, intact run under {path}: every one failed verification (see the "
                         f"warnings); re-run them.")
    return kept


def _collect(path: str | Path, filename: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {filename} at {path}: it does not exist; pass a run or sweep folder, or a file.")
    files = [path] if path.is_file() else _verified(sorted(path.rglob(filename)), path)
    if not files:
        raise FileNotFoundError(f"no {filename} under {path}: pass a run folder or a sweep folder that holds runs.")
    frames = []
    for f in files:
        df = _read_table(f, filename)
        rel = f.parent.relative_to(path) if path.is_dir() else Path(".")
        df.insert(0, "run", str(rel) if str(rel) != "." else f.parent.name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def load(path: str | Path, columns: Sequence[str] | None = None,
         filters: Sequence[tuple[str, str, Any]] | None = None,
         verify: Callable[[Path], str | None] | None = None) -> pd.DataFrame:
    """The long metrics table of one run folder, or of every run under a sweep folder (adds a ``run`` column).

    Reads ``metrics.parquet`` (``metrics.csv`` in folders of older versions) lazily: only ``columns``
    (default all), and only the rows that satisfy every ``filters`` entry (column, op, value), e.g.
    ``[("lam", "==", 0.5)]``; see :func:`lazyrich.store.storage.read_metrics`. Only finished units whose files match
    their manifest are read (:func:`lazyrich.store.integrity.verify_unit`); the others are skipped with a
    :class:`ResultsWarning` naming them; ``verify`` replaces that check (e.g. one that remembers its verdicts).
    A file that is not a table raises a ValueError naming it.
    """
    return read_metrics(path, columns=columns, filters=filters, select=functools.partial(_verified, verify=verify))


def load_matrices(run_dir: str | Path, names: Sequence[str] | None = None,
                  nets: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The matrix arrays of one finished, intact unit, batch first (``net``: which network each row is): only
    ``names`` (default all) and, if given, only the networks ``nets``
    (:func:`lazyrich.store.storage.load_matrices`). A unit that fails verification raises FileNotFoundError
    saying why."""
    reason = integrity.verify_unit(run_dir)
    if reason is not None:
        raise FileNotFoundError(f"{run_dir} is not a finished, intact unit ({reason}); re-run it.")
    return storage.load_matrices(run_dir, names, nets)


def load_summary(path: str | Path) -> pd.DataFrame:
    """The per-network summaries of one run or of every run under a folder (adds a ``run`` column)."""
    return _collect(path, SUMMARY_FILE)


def load_curves(path: str | Path, phase: int | None = None,
                filters: Sequence[tuple[str, str, Any]] | None = None) -> tuple[Curves, Curves | None]:
    """(simulation, theory or None) curves of one run folder, in the shape the trainer and theories give in
    memory (:class:`lazyrich.results.curves.Curves`; no matrices): read like :func:`load`, ``filters`` selecting
    networks (e.g. ``[("lam", "==", 0.5)]``) and ``phase`` one phase of a task sequence (needed there), with t
    counted from that phase's start."""
    frame = load(path, filters=filters)
    if frame["run"].nunique() > 1:
        raise ValueError(f"{path} holds {frame['run'].nunique()} runs; pass one run folder to load_curves.")
    if "phase" in frame:
        if phase is None:
            raise ValueError(f"{path} is a task sequence of {frame['phase'].nunique()} phases; pass phase=<index>.")
        frame = frame[frame["phase"] == phase]
    if frame.empty:
        raise ValueError(f"no rows in {path} for phase={phase} and filters={filters}.")
    meta = [c for c in frame.columns if c in ("net", "lam", "scale", "lr", "weight_decay", "output_scale", "seed",
                                               "lam_hat", "task", "status") or c.startswith("layer_lr_")]
    simulation = from_frame(frame, SIM, meta)
    start = simulation.t[:, :1]
    simulation = dataclasses.replace(simulation, t=simulation.t - start)
    if "theory/loss" not in frame:
        return simulation, None
    theory = from_frame(frame, "theory", meta)
    return simulation, dataclasses.replace(theory, t=theory.t - start)
