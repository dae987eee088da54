"""Figures as views of suite outputs: read a suite's table, running the suite through its runner if absent.

A figure that shows a benchmark suite's result states the suite and the overrides of its constants
(``lazyrich bench`` overrides, e.g. ``suite.architecture.t_max=8``); :func:`suite_table` composes that bench
config, runs it into a cache folder named after it under the figures' output folder (only when that folder holds
no finished table of intact units for exactly this config), and returns the suite's ``suite.csv``; a unit's files
are read verified (:mod:`lazyrich.results.io`). The cache is an ordinary suite folder: ``lazyrich bench
suite=<name> <overrides> hydra.run.dir=<folder>`` resumes or rebuilds it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lazyrich import results
from lazyrich.results.io import load_matrices
from lazyrich.store import integrity

__all__ = ["CACHE", "suite_folder", "suite_table", "unit_frame", "unit_matrices"]

CACHE = "suites"
"""Sub-folder of a figures output folder that holds the suite runs the figures read."""


def suite_folder(out_dir: str | Path, suite: str, overrides: Sequence[str]) -> Path:
    """The cache folder of ``suite`` run with ``overrides``: ``out_dir/suites/<suite>-<hash>``, the hash of the
    resolved bench config, so that a changed default gets a folder of its own instead of the old results."""
    digest = hashlib.sha256(_resolved(suite, tuple(overrides)).encode()).hexdigest()[:10]
    return Path(out_dir) / CACHE / f"{suite}-{digest}"


def _compose(suite: str, overrides: Sequence[str]):
    from lazyrich.config.compose import compose

    return compose("bench", [f"suite={suite}", "logger=none", "progress=false", *overrides])


@functools.lru_cache(maxsize=64)
def _resolved(suite: str, overrides: tuple[str, ...]) -> str:
    """The bench config of ``suite`` with ``overrides``, resolved, as YAML text (composed once per process)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(_compose(suite, overrides), resolve=True)


def _finished(folder: Path) -> bool:
    """Whether ``folder`` holds a finished table of ok rows whose every unit is intact (else the suite runs, and
    its runner redoes what is missing or damaged)."""
    if not (folder / "suite.csv").is_file():
        return False
    table = pd.read_csv(folder / "suite.csv")
    return (len(table) > 0 and bool((table["status"] == "ok").all())
            and all(integrity.verify_unit(folder / "runs" / str(unit)) is None for unit in table["unit"]))


def suite_table(out_dir: str | Path, suite: str, overrides: Sequence[str] = ()) -> pd.DataFrame:
    """The ``suite.csv`` of ``suite`` run with bench ``overrides`` (its rows with status ``ok``), read from
    the cache under ``out_dir`` or produced there by :func:`lazyrich.suites.run_suites` first.

    Raises ``RuntimeError`` naming the folder when a unit of the suite failed (its traceback is in
    ``runs/<id>/FAILED`` there).
    """
    from contextlib import redirect_stdout
    from io import StringIO

    from lazyrich.suites import run_suites

    folder = suite_folder(out_dir, suite, overrides)
    if not _finished(folder):
        with redirect_stdout(StringIO()):  # the suite's printed table belongs in its folder, not the figure log
            run_suites(_compose(suite, overrides), folder)
    table = pd.read_csv(folder / "suite.csv")
    if not (table["status"] == "ok").all():
        raise RuntimeError(f"suite {suite} failed for some units in {folder}; see runs/<id>/FAILED there.")
    return table


def unit_frame(out_dir: str | Path, suite: str, overrides: Sequence[str], unit: str) -> pd.DataFrame:
    """The long table (sim/ and theory/ columns against t, one row per network per log point and phase) of
    unit ``unit`` (the ``unit`` column of :func:`suite_table`'s rows) of that cached suite run, verified."""
    return results.load(suite_folder(out_dir, suite, overrides) / "runs" / unit)


def unit_matrices(out_dir: str | Path, suite: str, overrides: Sequence[str], unit: str,
                  names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The matrices (batch first, e.g. ``phase<k>_t``, ``phase<k>_sim_product``) that unit ``unit`` of that
    cached suite run stored, only ``names`` if given, verified (:func:`lazyrich.results.io.load_matrices`)."""
    return load_matrices(suite_folder(out_dir, suite, overrides) / "runs" / unit, names)
