"""The atlas's figures, from its cell table: a heat map of a measure with the theory's contours and both lazy/rich
boundaries over it, and one agreement map per theory with the cells outside its domain hatched.

Cells are drawn as tiles centred on their axis values: a log-spaced axis (:func:`~lazyrich.atlas.spec.is_log_spaced`)
on a log scale, an evenly spaced one on a linear scale, any other (uneven values, an activation) as equal tiles
labelled by value.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from lazyrich.atlas.spec import BATCH_AXES, AtlasConfig, Axis
from lazyrich.atlas.summary import boundary, grid, key
from lazyrich.plots import label, percent, save

__all__ = ["OUTSIDE", "agreement_map", "difference_map", "draw_atlas", "measure_map"]

OUTSIDE = "outside domain"
HATCH = {"hatch": "///", "facecolor": "0.88", "edgecolor": "0.45", "linewidth": 0.0}


def _numeric(axis: Axis) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in axis.values)


def _evenly_spaced(axis: Axis) -> bool:
    if not _numeric(axis):
        return False
    steps = np.diff(np.asarray(axis.values, dtype=float))
    return bool(len(steps) and (steps > 0).all() and np.allclose(steps, steps[0], rtol=1e-6))


def _categorical(axis: Axis) -> bool:
    """Drawn as equal tiles labelled by value: anything neither log-spaced nor evenly spaced."""
    return not (axis.log or _evenly_spaced(axis))


def _centres(axis: Axis) -> np.ndarray:
    return np.arange(len(axis.values), dtype=float) if _categorical(axis) else np.asarray(axis.values, dtype=float)


def _edges(axis: Axis) -> np.ndarray:
    c = _centres(axis)
    if axis.log:
        m = np.sqrt(c[1:] * c[:-1])
        return np.concatenate([[c[0] ** 2 / m[0]], m, [c[-1] ** 2 / m[-1]]])
    m = (c[1:] + c[:-1]) / 2
    return np.concatenate([[2 * c[0] - m[0]], m, [2 * c[-1] - m[-1]]])


def _axis_style(ax, axis: Axis, which: str) -> None:
    name = label(BATCH_AXES.get(axis.key, axis.key.rsplit(".", 1)[-1]))
    getattr(ax, f"set_{which}label")(name)
    if axis.log:
        getattr(ax, f"set_{which}scale")("log")
    elif _categorical(axis):
        names = [f"{v:.2g}" if _numeric(axis) else str(v) for v in axis.values]
        getattr(ax, f"set_{which}ticks")(_centres(axis), names, rotation=30 if which == "x" and len(names) > 5 else 0)


def _tiles(ax, config: AtlasConfig, values: np.ndarray, cmap: str, norm: mcolors.Normalize, title: str):
    # Rasterised inside the PDF (text, contours and hatching stay vector): thousands of cells as one image.
    mesh = ax.pcolormesh(_edges(config.x), _edges(config.y), np.ma.masked_invalid(values), cmap=cmap, norm=norm,
                         rasterized=True)
    _axis_style(ax, config.x, "x")
    _axis_style(ax, config.y, "y")
    ax.set_title(title, fontsize=9)
    return mesh


def _contour(ax, config: AtlasConfig, values: np.ndarray, levels: Sequence[float], **style: Any):
    if np.isfinite(values).sum() < 4 or len(config.x.values) < 2 or len(config.y.values) < 2:
        return None
    finite = values[np.isfinite(values)]
    levels = [v for v in levels if finite.min() < v < finite.max()]
    if not levels:
        return None
    return ax.contour(_centres(config.x), _centres(config.y), np.where(np.isfinite(values), values, np.nan),
                      levels=levels, **style)


def measure_map(cells: pd.DataFrame, config: AtlasConfig, measure: str = "kernel_distance_final",
                theory: str | None = None, path: str | Path | None = None):
    """Heat map of the simulation's ``measure`` over the two axes, ``theory``'s map of it as dotted contours on
    top, and the lazy/rich boundary (final kernel distance at the level of :func:`~lazyrich.atlas.summary.boundary`)
    of the simulation (solid white) and of the theory (dashed black). Saved to ``path`` if given; returns the
    figure (or ``path``)."""
    x, y, xs, ys = config.x.column, config.y.column, list(config.x.values), list(config.y.values)
    sim = grid(cells, measure, x, y, xs, ys)
    fig, ax = plt.subplots(figsize=(5.6, 4.2), layout="constrained")
    finite = sim[np.isfinite(sim)]
    positive = finite.size and (finite > 0).all() and finite.max() / finite.min() > 30
    norm = mcolors.LogNorm() if positive else mcolors.Normalize()
    mesh = _tiles(ax, config, sim, "magma", norm, f"{label(measure)}: simulation (colour)")
    fig.colorbar(mesh, ax=ax).set_label(label(measure))
    handles = []
    if theory is not None and f"{theory}/{measure}" in cells:
        th = grid(cells, f"{theory}/{measure}", x, y, xs, ys)
        spread = finite.size > 1 and finite.min() < finite.max()  # no contour levels on an empty or flat map
        levels = [] if not spread else np.geomspace(finite.min(), finite.max(), 6)[1:-1] if positive else \
            np.linspace(finite.min(), finite.max(), 6)[1:-1]
        cs = _contour(ax, config, th, list(levels), colors="0.85", linestyles="dotted", linewidths=1.4) \
            if spread else None
        if cs is not None:
            ax.clabel(cs, fontsize=6, fmt="%.2g")
            handles.append(Line2D([], [], color="0.6", linestyle=":", label=f"theory {theory}: contours"))
        k_sim = grid(cells, "kernel_distance_final", x, y, xs, ys)
        k_th = grid(cells, f"{theory}/kernel_distance_final", x, y, xs, ys)
        level = boundary(k_sim, k_th, config.boundary)["level"]
        if level is not None:
            for values, colour, style, who in ((k_sim, "w", "solid", "simulation"), (k_th, "k", "dashed", theory)):
                if _contour(ax, config, values, [level], colors=colour, linestyles=style, linewidths=2.0) is not None:
                    handles.append(Line2D([], [], color=colour if colour != "w" else "0.7", linestyle=style,
                                          linewidth=2, label=f"lazy/rich boundary, {who} (S = {level:.2g})"))
    _edge_of_stability(ax, cells, config, handles)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", fontsize=7, frameon=False, ncols=1)
    return fig if path is None else save(fig, path)


def _edge_of_stability(ax, cells: pd.DataFrame, config: AtlasConfig, handles: list) -> None:
    """On a map over the step (x = trainer.lr, log-spaced), a red bar at lr = 2/S in each row (S: the top Hessian
    eigenvalue at init, mean of the row's cells)."""
    if config.x.key != "trainer.lr" or not config.x.log or "sharpness" not in cells:
        return
    ys = _centres(config.y)
    for i, value in enumerate(config.y.values):
        s = cells.loc[[key(v) == key(value) for v in cells[config.y.column]], "sharpness"].mean()
        if np.isfinite(s) and s > 0:
            ax.plot([2 / s], [ys[i]], marker="|", markersize=16, markeredgewidth=2.5, color="#c0392b")
    handles.append(Line2D([], [], marker="|", markersize=10, markeredgewidth=2, color="#c0392b", linestyle="none",
                          label="lr = 2/S (S: top Hessian eigenvalue at init)"))


def _cell_border(ax, config: AtlasConfig, values: np.ndarray, level: float, **style: Any) -> bool:
    """Draw the tile edges between neighbouring cells on either side of ``level`` (NaN cells have no side): a
    staircase that follows the cells, on any axis (a contour would interpolate between categories). Returns
    whether any edge was drawn."""
    ex, ey = _edges(config.x), _edges(config.y)
    known = np.isfinite(values)
    above = np.where(known, values > level, False)
    segments = []
    for i, j in np.argwhere(known[:, :-1] & known[:, 1:] & (above[:, :-1] != above[:, 1:])):
        segments.append([(ex[j + 1], ey[i]), (ex[j + 1], ey[i + 1])])  # between columns j and j + 1
    for i, j in np.argwhere(known[:-1, :] & known[1:, :] & (above[:-1, :] != above[1:, :])):
        segments.append([(ex[j], ey[i + 1]), (ex[j + 1], ey[i + 1])])  # between rows i and i + 1
    if segments:
        ax.add_collection(LineCollection(segments, capstyle="projecting", **style))
    return bool(segments)


def _hatch_outside(ax, config: AtlasConfig, outside: np.ndarray, see_through: bool = False) -> bool:
    ex, ey = _edges(config.x), _edges(config.y)
    style = {**HATCH, "facecolor": "none"} if see_through else HATCH
    for i, j in np.argwhere(outside):
        ax.add_patch(Rectangle((ex[j], ey[i]), ex[j + 1] - ex[j], ey[i + 1] - ey[i], **style))
    return bool(outside.any())


def agreement_map(cells: pd.DataFrame, config: AtlasConfig, theory: str, gap: str = "gap_loss",
                  path: str | Path | None = None, *, deviation: bool = False):
    """Map of ``theory``'s relative gap to the simulation (``<theory>/<gap>``, log colour scale), its cells outside
    the theory's domain hatched and named in the legend (never blank, never zero). ``deviation``: also colour the
    outside cells where the theory could still be evaluated (a nonlinear net against the linear theory), under a
    see-through hatch, with the tile edges where the deviation crosses the atlas's ``break_level`` drawn white.
    Saved to ``path`` if given."""
    x, y, xs, ys = config.x.column, config.y.column, list(config.x.values), list(config.y.values)
    values = grid(cells, f"{theory}/{gap}", x, y, xs, ys)
    inside = grid(cells, f"{theory}/in_domain", x, y, xs, ys)
    outside = ~(inside == 1)
    shown = values if deviation else np.where(outside, np.nan, values)
    finite = shown[np.isfinite(shown) & (shown > 0)]
    low, high = (finite.min(), finite.max()) if finite.size else (1e-6, 1.0)
    fig, ax = plt.subplots(figsize=(5.6, 4.2), layout="constrained")
    title = f"deviation from theory {theory}" if deviation else f"agreement with theory {theory}"
    mesh = _tiles(ax, config, np.where(shown > 0, shown, low), "viridis",
                  mcolors.LogNorm(vmin=low, vmax=max(high, low * 10)), title)
    fig.colorbar(mesh, ax=ax).set_label(f"relative gap ({gap.removeprefix('gap_').replace('_', ' ')})")
    handles = []
    if _hatch_outside(ax, config, outside, see_through=deviation):
        handles.append(Patch(label=OUTSIDE, **({**HATCH, "facecolor": "none"} if deviation else HATCH)))
    if deviation and _cell_border(ax, config, values, config.break_level, color="w", linewidth=2.0):
        handles.append(Line2D([], [], color="0.7", linewidth=2,
                              label=f"deviation crosses {percent(config.break_level)} (break_level)"))
    diverged = np.isinf(values) & ~outside
    for i, j in np.argwhere(diverged):
        ax.plot(_centres(config.x)[j], _centres(config.y)[i], marker="^", color="#c0392b", linestyle="none")
    if diverged.any():
        handles.append(Line2D([], [], marker="^", color="#c0392b", linestyle="none", label="infinite gap"))
    _edge_of_stability(ax, cells, config, handles)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", fontsize=7, frameon=False)
    return fig if path is None else save(fig, path)


def difference_map(cells: pd.DataFrame, config: AtlasConfig, column: str, title: str, path: str | Path | None = None):
    """Map of a difference between two atlases (``column`` of their side-by-side cell table, over ``config``'s
    axes) on a diverging scale centred on zero; cells that only one atlas holds are hatched. Saved to ``path`` if
    given; returns the figure (or ``path``)."""
    x, y, xs, ys = config.x.column, config.y.column, list(config.x.values), list(config.y.values)
    values = grid(cells, column, x, y, xs, ys)
    finite = np.abs(values[np.isfinite(values)])
    reach = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    fig, ax = plt.subplots(figsize=(5.6, 4.2), layout="constrained")
    mesh = _tiles(ax, config, values, "RdBu_r", mcolors.Normalize(vmin=-reach, vmax=reach), title)
    fig.colorbar(mesh, ax=ax).set_label("difference")
    if _hatch_outside(ax, config, np.isnan(values)):
        fig.legend(handles=[Patch(label="in one atlas only", **HATCH)], loc="outside lower center", fontsize=7,
                   frameon=False)
    return fig if path is None else save(fig, path)


def draw_atlas(cells: pd.DataFrame, config: AtlasConfig, folder: str | Path) -> list[Path]:
    """Every figure of an atlas into ``folder``: ``map_<measure>.png`` for the final kernel distance, the time to learn
    and, with weight decay, ``lam_law_gap``, ``agreement_<theory>.png`` for each theory, and
    ``deviation_<theory>.png`` where the theory was evaluated outside its domain. Returns the PNG paths."""
    folder = Path(folder)
    theory = config.theories[0] if config.theories else None
    measures = ["kernel_distance_final", "time_to_learn", *(["lam_law_gap"] if "lam_law_gap" in cells else [])]
    out = [measure_map(cells, config, m, theory, folder / f"map_{m}.png") for m in measures]
    out += [agreement_map(cells, config, t, path=folder / f"agreement_{t}.png") for t in config.theories]
    for t in config.theories:  # cells outside the domain that the theory still evaluates: the breaks maps
        if f"{t}/gap_loss" in cells and (cells[f"{t}/gap_loss"].notna() & ~cells[f"{t}/in_domain"]).any():
            out.append(agreement_map(cells, config, t, path=folder / f"deviation_{t}.png", deviation=True))
    return out
