"""What an atlas says in a few numbers: how often each theory agrees inside its domain, where lazy turns rich in
the simulation and in the theory, and where along each axis the theory breaks.

- ``agreement``: per theory, the fraction of its in-domain cells with final kernel distances within
  :data:`~lazyrich.atlas.summary.KERNEL_TOL` and times to learn within :data:`~lazyrich.atlas.summary.TIME_TOL`
  (relative) of the simulation's;
- ``boundary``: a cell is rich when its final kernel distance is at least the level (the atlas's ``boundary``, or
  halfway across the reference theory's map); the boundary offset is the largest distance, in grid cells
  (Chebyshev), from a cell that the simulation and the theory classify differently to the theory's own boundary
  (0 where they agree everywhere): within one cell means offset ≤ 1;
- ``breaks``: per theory and axis, for each value of the other axis, the first value along the axis at which the
  deviation ``max(gap_loss, gap_kernel)`` passes the atlas's ``break_level`` (default
  :data:`~lazyrich.atlas.summary.BREAK_LEVEL`, recorded as ``break_level``; None: never on the grid).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BREAK_LEVEL", "KERNEL_TOL", "TIME_TOL", "boundary", "deviation", "grid", "key", "summarise"]

KERNEL_TOL = 2e-3
TIME_TOL = 0.02
BREAK_LEVEL = 0.05
"""The deviation from a theory that counts as breaking it, unless an atlas sets its own ``break_level``."""


def key(value: Any) -> Any:
    """A cell's axis value as a dictionary key: numbers by value (1 and 1.0 alike), anything else by its text."""
    if isinstance(value, bool | np.bool_) or value is None:
        return str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def grid(cells: pd.DataFrame, column: str, x: str, y: str, xs: list, ys: list) -> np.ndarray:
    """The cell table's ``column`` as a (len(ys), len(xs)) array (NaN for a missing cell or column)."""
    out = np.full((len(ys), len(xs)), np.nan)
    if column not in cells:
        return out
    where = {(key(a), key(b)): v for a, b, v in zip(cells[x], cells[y], cells[column], strict=True)}
    for i, b in enumerate(ys):
        for j, a in enumerate(xs):
            value = where.get((key(a), key(b)), np.nan)
            out[i, j] = np.nan if value is None else float(value)
    return out


def deviation(cells: pd.DataFrame, theory: str) -> pd.Series:
    """max(gap_loss, gap_kernel) of ``theory`` per cell: the largest deviation from it (loss, kernel distance)."""
    return np.fmax(cells.get(f"{theory}/gap_loss", np.nan), cells.get(f"{theory}/gap_kernel", np.nan))


def _distance_to_edge(rich: np.ndarray) -> np.ndarray:
    """Chebyshev distance (in cells) of every cell to the nearest cell on the other side (∞ if there is none)."""
    from scipy.ndimage import distance_transform_cdt

    out = np.full(rich.shape, np.inf)
    for side in (rich, ~rich):
        if side.any() and not side.all():
            out = np.where(side, distance_transform_cdt(side, metric="chessboard"), out)
    return out


def boundary(sim: np.ndarray, theory: np.ndarray, level: float | None) -> dict[str, Any]:
    """The lazy/rich boundary of the simulation's and the theory's maps of final kernel distance (module
    docstring): the level used, the cells classified differently and the offset in cells."""
    known = ~(np.isnan(sim) | np.isnan(theory))
    if not known.any():
        return {"level": None, "differ": 0, "offset": None}
    level = float((np.nanmin(theory[known]) + np.nanmax(theory[known])) / 2) if level is None else float(level)
    rich_sim, rich_th = sim >= level, theory >= level
    differ = known & (rich_sim != rich_th)
    offset = float(_distance_to_edge(rich_th)[differ].max()) if differ.any() else 0.0
    return {"level": level, "differ": int(differ.sum()), "offset": offset}


def _first_breaks(cells: pd.DataFrame, theory: str, along: str, other: str, values: list,
                  other_values: list, level: float) -> dict[str, Any]:
    """Per value of ``other``, the first of ``values`` along ``along`` where the deviation passes ``level``."""
    dev = grid(cells.assign(_deviation=deviation(cells, theory)), "_deviation", along, other, values, other_values)
    row_of = {key(v): i for i, v in enumerate(other_values)}
    out = {}
    for o in dict.fromkeys(cells[other].tolist()):
        row = dev[row_of[key(o)]] if key(o) in row_of else np.full(len(values), np.nan)
        hit = np.flatnonzero(row > level)
        out[str(o)] = values[hit[0]] if hit.size else None
    return out


def _agreement(cells: pd.DataFrame, theory: str) -> dict[str, Any]:
    inside = cells.get(f"{theory}/in_domain", pd.Series(False, index=cells.index)).astype(bool)
    kernel = cells.get(f"{theory}/gap_kernel_final", np.nan)
    time = cells.get(f"{theory}/gap_time", np.nan)
    good = inside & (kernel <= KERNEL_TOL) & (time <= TIME_TOL)
    n = int(inside.sum())
    return {"cells_in_domain": n, "cells_agree": int(good.sum()), "fraction": float(good.sum() / n) if n else None,
            "tolerances": {"gap_kernel_final": KERNEL_TOL, "gap_time": TIME_TOL},
            "max_gap_kernel_final": float(np.nanmax(kernel[inside])) if n else None,
            "max_gap_time": float(np.nanmax(time[inside])) if n else None}


def summarise(cells: pd.DataFrame, networks: pd.DataFrame, config: Any) -> dict[str, Any]:
    """The summary recorded in ``atlas.json`` (module docstring) of a cell table."""
    x, y = config.x.column, config.y.column
    xs, ys = list(config.x.values), list(config.y.values)
    level = config.break_level
    out: dict[str, Any] = {"cells": len(cells), "networks": len(networks), "agreement": {}, "break_level": level,
                           "breaks": {}}
    for theory in config.theories:
        out["agreement"][theory] = _agreement(cells, theory)
        out["breaks"][theory] = {x: _first_breaks(cells, theory, x, y, xs, ys, level),
                                 y: _first_breaks(cells, theory, y, x, ys, xs, level)}
    out["ranges"] = {c: [float(np.nanmin(cells[c])), float(np.nanmax(cells[c]))]
                     for c in ("lam_law_gap", "sharpness", "lr_S_over_2", "lam_drift") if c in cells}
    reference = next((t for t in config.theories if np.nanmax(grid(cells, f"{t}/kernel_distance_final", x, y, xs,
                                                                       ys), initial=0) > 0), None)
    if reference is not None:
        out["boundary"] = {"theory": reference, **boundary(grid(cells, "kernel_distance_final", x, y, xs, ys),
                                                           grid(cells, f"{reference}/kernel_distance_final", x, y,
                                                                xs, ys), config.boundary)}
    return out
