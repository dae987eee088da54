"""Figure declarations shared by the suites: the loss and kernel-distance curves, and measures against λ.

Each factory returns a :data:`~lazyrich.suites.spec.Figure` callable, ``(finished rows, long metrics, suite
folder) → PNG path or None``, that draws with :mod:`lazyrich.plots` (simulation broad and solid, theory dotted
on top) and saves the PNG with a PDF beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lazyrich import plots
from lazyrich.suites.spec import Figure

__all__ = ["curves", "failed_rows", "sweep"]


def curves(title: str, file: str = "curves.png", **options: Any) -> Figure:
    """Loss and kernel distance of every network against t, coloured by λ (needs the units' metrics);
    ``options`` go to :func:`lazyrich.plots.curves` (``labels``, ``log_t``, …)."""

    def draw(ok: pd.DataFrame, frames: pd.DataFrame, folder: Path) -> Path | None:
        if not len(frames):
            return None
        fig = plots.curves(frames, ("loss", "kernel_distance"), hue="lam", title=title, **options)
        return plots.save(fig, folder / file)

    return draw


def sweep(columns: Sequence[str], title: str, file: str = "sweep.png", **options: Any) -> Figure:
    """The seed-mean of ``columns`` against λ beside their theory columns, the suite's failed units marked
    (``options`` go to :func:`lazyrich.plots.sweep`: ``hue``, ``log_y``, ``theory_prefix``, ``theory_label``,
    ``labels``)."""

    def draw(ok: pd.DataFrame, frames: pd.DataFrame, folder: Path) -> Path | None:
        if not len(ok):
            return None
        fig = plots.sweep(ok, "lam", list(columns), title=title, failed=failed_rows(folder), **options)
        return plots.save(fig, folder / file)

    return draw


def failed_rows(folder: Path) -> pd.DataFrame:
    """The rows of the suite's ``suite.csv`` (written before its figures) whose unit failed; none if absent."""
    path = Path(folder) / "suite.csv"
    if not path.is_file():
        return pd.DataFrame()
    table = pd.read_csv(path)
    return table[table["status"] == "failed"] if "status" in table else table.iloc[:0]
