"""Reading results back: the long table, the summaries, the curves and the matrices of a unit — a run folder or a
suite's ``runs/<id>/`` — or of every unit under a sweep or bench folder, from finished units whose files match their
manifest only (:mod:`lazyrich.store.integrity`). Every reader here verifies; the raw readers of
:mod:`lazyrich.store.storage` do not.

What a path reads:

- a folder: every unit below it that is finished and intact; the others are left out, each named in a
  :class:`ResultsWarning` (FileNotFoundError when none is left). Under a bench (suite) folder — ``runs/<id>/``
  beside ``suite.csv`` — only the units its current ``suite.csv`` lists (its ``unit`` column): a re-run with
  other settings into the same folder leaves the units of the earlier configuration under ``runs/``, finished and
  intact but not results of this one; they are left out, counted and named in one ResultsWarning per bench. A
  bench whose ``suite.csv`` cannot be read gives none of its units (re-run it into the same folder to rewrite the
  table; finished units are skipped). A bench folder without ``suite.csv`` (killed before its first table) gives
  its finished units;
- a unit folder, or one file of a unit (``…/metrics.parquet``, ``…/summary.csv``): that unit, the file only if
  the unit is finished and intact and its manifest lists the file; else a FileNotFoundError saying why. A file
  is one unit, so it is refused where a folder read would leave that unit out and, with nothing left, raise.

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
from lazyrich.store import SUMMARY_FILE, integrity
from lazyrich.store.storage import read_matrices, read_metrics

__all__ = ["ResultsWarning", "load", "load_curves", "load_matrices", "load_summary"]


class ResultsWarning(UserWarning):
    """A unit left out of a loaded table (unfinished, or failing verification); the message names it."""


REQUIRED_COLUMNS = {SUMMARY_FILE: ("status",)}
SUITE_TABLE = "suite.csv"
NAMED_MAX = 10
"""A warning names at most this many units, and counts the rest."""


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
    """The files to read under ``path`` (see the module docstring): of the units a bench's ``suite.csv`` lists (or
    of no bench), finished and intact by ``verify`` (default :func:`~lazyrich.store.integrity.verify_unit`), and
    listed by their manifest; the others are named in ResultsWarnings. A file passed as ``path`` that fails
    raises FileNotFoundError saying why."""
    if path.is_file():
        reason = integrity.verify_file(path, verify)
        if reason is not None:
            raise FileNotFoundError(f"{path} is not read: {reason}; re-run the unit that wrote it, or read a finished "
                                    f"unit.")
        return files
    kept = []
    for f in _current(files, path):
        reason = integrity.verify_file(f, verify)
        if reason is None:
            kept.append(f)
        else:
            warnings.warn(f"skipped {f.parent}: {reason}", ResultsWarning, stacklevel=4)
    if files and not kept:
        raise FileNotFoundError(f"no finished, intact run under {path}: every one was left out (see the warnings); "
                                f"re-run them.")
    return kept


def _bench_of(unit: Path) -> Path | None:
    """The bench (suite) folder that ``unit`` is a unit of (``<bench>/runs/<id>/`` beside ``<bench>/suite.csv``)."""
    bench = unit.parent.parent
    return bench if unit.parent.name == "runs" and (bench / SUITE_TABLE).is_file() else None


def _current_units(bench: str | Path) -> set[str] | str:
    """The ids of the units that ``bench``'s ``suite.csv`` lists (its ``unit`` column), or why it cannot say."""
    table = Path(bench) / SUITE_TABLE
    try:
        units = pd.read_csv(table, usecols=lambda c: c == "unit", dtype=str)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        return f"{table} is not a readable table ({type(err).__name__}: {err})"
    if "unit" not in units:
        return f"{table} has no unit column (not written by lazyrich bench)"
    return set(units["unit"].dropna())


def _current(files: list[Path], path: Path) -> list[Path]:
    """``files`` less those of bench units that their bench's suite.csv does not list, one warning per bench."""
    listed: dict[Path, set[str] | str] = {}
    left: dict[Path, list[str]] = {}
    kept = []
    for f in files:
        bench = _bench_of(f.parent)
        if bench is None or f.parent == path:
            kept.append(f)
            continue
        if bench not in listed:
            listed[bench] = _current_units(bench)
        if isinstance(listed[bench], set) and f.parent.name in listed[bench]:
            kept.append(f)
        else:
            left.setdefault(bench, []).append(f.parent.name)
    for bench, units in left.items():
        named = ", ".join(units[:NAMED_MAX]) + (f" and {len(units) - NAMED_MAX} more" if len(units) > NAMED_MAX else "")
        why = (f"{bench / SUITE_TABLE} does not list them (units of an earlier configuration of this folder)"
               if isinstance(listed[bench], set) else
               f"{listed[bench]}; re-run the bench into the same folder to rewrite it (finished units are skipped)")
        warnings.warn(f"left out {len(units)} unit(s) under {bench / 'runs'}: {why}: {named}", ResultsWarning,
                      stacklevel=5)
    return kept


def _collect(path: str | Path, filename: str, verify: Callable[[Path], str | None] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {filename} at {path}: it does not exist; pass a run or sweep folder, or a file.")
    files = _verified([path] if path.is_file() else sorted(path.rglob(filename)), path, verify)
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
    """The long metrics table of one run folder, or of every run under a sweep or bench folder (adds a ``run``
    column), or of one unit's metrics file.

    Reads ``metrics.parquet`` (``metrics.csv`` in folders of older versions) lazily: only ``columns``
    (default all), and only the rows that satisfy every ``filters`` entry (column, op, value), e.g.
    ``[("lam", "==", 0.5)]``; see :func:`lazyrich.store.storage.read_metrics` (a filter of the wrong shape or
    type raises a one-line ValueError saying the fix). Only finished units whose files match their manifest are
    read (:func:`lazyrich.store.integrity.verify_file`), and of a bench folder only the units its ``suite.csv``
    lists; the others are left out with a :class:`ResultsWarning` naming them, and a file path that fails raises
    FileNotFoundError saying why (see the module docstring). ``verify`` replaces the check of a unit folder (e.g.
    one that remembers its verdicts). A file that is not a table raises a ValueError naming it.
    """
    return read_metrics(path, columns=columns, filters=filters, select=functools.partial(_verified, verify=verify))


def load_matrices(run_dir: str | Path, names: Sequence[str] | None = None,
                  nets: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The matrix arrays of one finished, intact unit (a run folder or a suite's ``runs/<id>/``), verified, batch
    first (``net``: which network each row is): only ``names`` (default all) and, if given, only the networks
    ``nets`` (:func:`lazyrich.store.storage.read_matrices`, which reads without verifying). A unit that fails
    verification raises FileNotFoundError saying why; so does a file path (pass its unit folder)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise FileNotFoundError(f"{run_dir} is a file; pass the unit folder that holds it ({run_dir.parent}).")
    reason = integrity.verify_unit(run_dir)
    if reason is not None:
        raise FileNotFoundError(f"{run_dir} is not a finished, intact unit ({reason}); re-run it.")
    return read_matrices(run_dir, names, nets)


def load_summary(path: str | Path, verify: Callable[[Path], str | None] | None = None) -> pd.DataFrame:
    """The per-network summaries of one run or of every run under a folder (adds a ``run`` column), or of one
    unit's summary file: read like :func:`load` (verified units only, a bench's current units only)."""
    return _collect(path, SUMMARY_FILE, verify)


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
