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
from lazyrich.store import shards as sharding
from lazyrich.store.storage import MATRICES_PREFIX, MatrixStore, read_matrices, read_metrics

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


Verdict = Callable[[Path], str | None]


def _judge(verify: Verdict | None) -> Verdict:
    """``verify`` (default :func:`~lazyrich.store.integrity.verify_unit`) asked once per unit: a sharded run's
    files are read shard by shard, and the run is verified once for all of them."""
    return functools.cache(lambda unit: (verify or integrity.verify_unit)(unit))


def _verified(files: list[Path], path: Path, verify: Verdict | None = None,
              stacklevel: int = 4) -> list[tuple[str, list[Path]]]:
    """(run name, its files in network order) of each unit under ``path`` whose files are ``files`` (see the
    module docstring): a file's unit is its folder, or the sharded run its shard belongs to
    (:func:`lazyrich.store.shards.owner`); only the units a bench's ``suite.csv`` lists (or of no bench), finished
    and intact by ``verify``, and only files their manifests list; the others are named in ResultsWarnings. A file
    passed as ``path`` that fails raises FileNotFoundError saying why. ``stacklevel``: the warnings' frame, the
    caller of the public read."""
    judge = _judge(verify)

    def reason(f: Path) -> str | None:
        return integrity.verify_file(f, lambda part: judge(sharding.owner(part)))

    if path.is_file():
        problem = reason(path)
        if problem is not None:
            raise FileNotFoundError(f"{path} is not read: {problem}; re-run the unit that wrote it, or read a "
                                    f"finished unit.")
        return [(sharding.owner(path.parent).name, files)]
    units: dict[Path, list[Path]] = {}
    for f in files:
        units.setdefault(sharding.owner(f.parent), []).append(f)
    kept = []
    for unit in _current(list(units), path, stacklevel + 1):
        problem = judge(unit)
        ordered = [] if problem else [f for part in sharding.parts(unit) for f in units[unit] if f.parent == part]
        problem = problem or next((p for p in map(reason, ordered) if p is not None), None)
        if problem is None and not ordered:
            problem = f"none of {', '.join(f.name for f in units[unit])} is in its parts ({sharding.INDEX})"
        if problem is None:
            kept.append((_name(unit, path), ordered))
        else:
            warnings.warn(f"skipped {unit}: {problem}", ResultsWarning, stacklevel=stacklevel)
    if files and not kept:
        raise FileNotFoundError(f"no finished, intact run under {path}: every one was left out (see the warnings); "
                                f"re-run them.")
    return kept


def _name(unit: Path, path: Path) -> str:
    """A unit's ``run`` column: its path under the folder read, or its own name (the folder itself, or the run
    that a shard folder read belongs to)."""
    rel = unit.relative_to(path) if unit.is_relative_to(path) else Path(".")
    return str(rel) if str(rel) != "." else unit.name


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


def _current(units: list[Path], path: Path, stacklevel: int) -> list[Path]:
    """``units`` less the bench units that their bench's suite.csv does not list, one warning per bench."""
    listed: dict[Path, set[str] | str] = {}
    left: dict[Path, list[str]] = {}
    kept = []
    for unit in units:
        bench = _bench_of(unit)
        if bench is None or unit == path:
            kept.append(unit)
            continue
        if bench not in listed:
            listed[bench] = _current_units(bench)
        if isinstance(listed[bench], set) and unit.name in listed[bench]:
            kept.append(unit)
        else:
            left.setdefault(bench, []).append(unit.name)
    for bench, units in left.items():
        named = ", ".join(units[:NAMED_MAX]) + (f" and {len(units) - NAMED_MAX} more" if len(units) > NAMED_MAX else "")
        why = (f"{bench / SUITE_TABLE} does not list them (units of an earlier configuration of this folder)"
               if isinstance(listed[bench], set) else
               f"{listed[bench]}; re-run the bench into the same folder to rewrite it (finished units are skipped)")
        warnings.warn(f"left out {len(units)} unit(s) under {bench / 'runs'}: {why}: {named}", ResultsWarning,
                      stacklevel=stacklevel)
    return kept


def _collect(path: str | Path, filename: str, verify: Verdict | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {filename} at {path}: it does not exist; pass a run or sweep folder, or a file.")
    units = _verified([path] if path.is_file() else sorted(path.rglob(filename)), path, verify)
    if not units:
        raise FileNotFoundError(f"no {filename} under {path}: pass a run folder or a sweep folder that holds runs.")
    frames = []
    for name, files in units:
        for f in files:
            df = _read_table(f, filename)
            df.insert(0, "run", name)
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _named(files: list[Path], path: Path, verify: Verdict | None) -> list[tuple[Path, str]]:
    """The files :func:`_verified` keeps, each with its run's name (the ``select`` of
    :func:`~lazyrich.store.storage.read_metrics`)."""
    return [(f, name) for name, unit_files in _verified(files, path, verify, stacklevel=5) for f in unit_files]


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
    return read_metrics(path, columns=columns, filters=filters, select=functools.partial(_named, verify=verify))


def load_matrices(run_dir: str | Path, names: Sequence[str] | None = None,
                  nets: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The matrix arrays of one finished, intact unit (a run folder or a suite's ``runs/<id>/``), verified, batch
    first (``net``: which network each row is): only ``names`` (default all) and, if given, only the networks
    ``nets`` (:func:`lazyrich.store.storage.read_matrices`, which reads without verifying). A sharded run reads
    its shards in network order (a shard folder: that shard, once its run verifies). A unit that fails
    verification raises FileNotFoundError saying why; so does a file path (pass its unit folder)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise FileNotFoundError(f"{run_dir} is a file; pass the unit folder that holds it ({run_dir.parent}).")
    unit = sharding.owner(run_dir)
    reason = integrity.verify_unit(unit)
    if reason is not None:
        raise FileNotFoundError(f"{unit} is not a finished, intact unit ({reason}); re-run it.")
    parts = sharding.parts(unit) if unit == run_dir else [run_dir]  # a shard folder: that part of its run
    if len(parts) == 1:
        return read_matrices(parts[0], names, nets)
    pieces = [read_matrices(part, names, nets) for part in parts if MatrixStore(part).chunks()]
    if not pieces:
        raise FileNotFoundError(f"no matrices under {run_dir}: none of its {len(parts)} shards holds "
                                f"{MATRICES_PREFIX}*.npz.")
    keys = dict.fromkeys(k for piece in pieces for k in piece)
    return {k: np.concatenate([piece[k] for piece in pieces if k in piece]) for k in keys}


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
