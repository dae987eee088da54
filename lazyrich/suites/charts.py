"""Figure declarations shared by the suites: the loss and kernel-distance curves, and a measure against λ.

Each factory returns a :data:`~lazyrich.suites.spec.Figure` callable, ``(finished rows, long metrics, suite
folder) → PNG path or None``, that draws with :mod:`lazyrich.plots` (simulation solid, theory dotted).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lazyrich import plots
from lazyrich.suites.spec import Figure

__all__ = ["curves", "sweep"]


def curves(title: str, file: str = "curves.png") -> Figure:
    """Loss and kernel distance of every network against t, coloured by λ (needs the units' metrics)."""

    def draw(ok: pd.DataFrame, frames: pd.DataFrame, folder: Path) -> Path | None:
        if not len(frames):
            return None
        return plots.save(plots.curves(frames, ("loss", "kernel_distance"), hue="lam", title=title), folder / file)

    return draw


def sweep(columns: Sequence[str], title: str, file: str = "sweep.png", **options: Any) -> Figure:
    """The seed-mean of ``columns`` against λ beside their theory columns (``options`` go to
    :func:`lazyrich.plots.sweep`: ``hue``, ``log_y``, ``theory_prefix``)."""

    def draw(ok: pd.DataFrame, frames: pd.DataFrame, folder: Path) -> Path | None:
        if not len(ok):
            return None
        return plots.save(plots.sweep(ok, "lam", list(columns), title=title, **options), folder / file)

    return draw
