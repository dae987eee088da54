"""The atlas's figures, from its cell table: a heat map of a measure with the theory's contours and both lazy/rich
boundaries over it, and one agreement map per theory with the cells outside its domain hatched.

Cells are drawn as tiles centred on their axis values: a log-spaced axis (:func:`~lazyrich.atlas.spec.
is_log_spaced`) is drawn on a log scale, a numeric one on a linear scale, any other (an activation) as categories.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from lazyrich.atlas.spec import BATCH_AXES, AtlasConfig, Axis
from lazyrich.atlas.summary import boundary, grid
from lazyrich.plots import label, save

__all__ = ["OUTSIDE", "agreement_map", "draw_atlas", "measure_map"]

OUTSIDE = "outside domain"
HATCH = {"hatch": "///", "facecolor": "0.88", "edgecolor": "0.45", "linewidth": 0.0}


def _numeric(axis: Axis) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in axis.values)


def _centres(axis: Axis) -> np.ndarray:
    return np.asarray(axis.values, dtype=float) if _numeric(axis) else np.arange(len(axis.values), dtype=float)


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
    elif not _numeric(axis):
        getattr(ax, f"set_{which}ticks")(_centres(axis), [str(v) for v in axis.values])


def _tiles(ax, config: AtlasConfig, values: np.ndarray, cmap: str, norm: mcolors.Normalize, title: str):
    mesh = ax.pcolormesh(_edges(config.x), _edges(config.y), np.ma.masked_invalid(values), cmap=cmap, norm=norm)
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
        levels = np.geomspace(finite.min(), finite.max(), 6)[1:-1] if positive else np.linspace(
            finite.min(), finite.max(), 6)[1:-1]
        cs = _contour(ax, config, th, list(levels), colors="0.85", linestyles="dotted", linewidths=1.4)
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
    if handles:
        fig.legend(handles=handles, loc="outside lower center", fontsize=7, frameon=False, ncols=1)
    return fig if path is None else save(fig, path)


def _hatch_outside(ax, config: AtlasConfig, outside: np.ndarray) -> bool:
    ex, ey = _edges(config.x), _edges(config.y)
    for i, j in np.argwhere(outside):
        ax.add_patch(Rectangle((ex[j], ey[i]), ex[j + 1] - ex[j], ey[i + 1] - ey[i], **HATCH))
    return bool(outside.any())


def agreement_map(cells: pd.DataFrame, config: AtlasConfig, theory: str, gap: str = "gap_loss",
                  path: str | Path | None = None):
    """Map of ``theory``'s relative gap to the simulation (``<theory>/<gap>``, log colour scale), its cells outside
    the theory's domain hatched and named in the legend (never blank, never zero). Saved to ``path`` if given."""
    x, y, xs, ys = config.x.column, config.y.column, list(config.x.values), list(config.y.values)
    values = grid(cells, f"{theory}/{gap}", x, y, xs, ys)
    inside = grid(cells, f"{theory}/in_domain", x, y, xs, ys)
    outside = ~(inside == 1)
    shown = np.where(outside, np.nan, values)
    finite = shown[np.isfinite(shown) & (shown > 0)]
    low, high = (finite.min(), finite.max()) if finite.size else (1e-6, 1.0)
    fig, ax = plt.subplots(figsize=(5.6, 4.2), layout="constrained")
    mesh = _tiles(ax, config, np.where(shown > 0, shown, low), "viridis",
                  mcolors.LogNorm(vmin=low, vmax=max(high, low * 10)), f"agreement with theory {theory}")
    fig.colorbar(mesh, ax=ax).set_label(f"relative gap ({gap.removeprefix('gap_').replace('_', ' ')})")
    handles = []
    if _hatch_outside(ax, config, outside):
        handles.append(Patch(label=OUTSIDE, **HATCH))
    diverged = np.isinf(values) & ~outside
    for i, j in np.argwhere(diverged):
        ax.plot(_centres(config.x)[j], _centres(config.y)[i], marker="^", color="#c0392b", linestyle="none")
    if diverged.any():
        handles.append(Line2D([], [], marker="^", color="#c0392b", linestyle="none", label="infinite gap"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", fontsize=7, frameon=False)
    return fig if path is None else save(fig, path)


def draw_atlas(cells: pd.DataFrame, config: AtlasConfig, folder: str | Path) -> list[Path]:
    """Every figure of an atlas into ``folder``: ``map_<measure>.png`` for the final kernel distance and the time
    to learn, and ``agreement_<theory>.png`` for each theory. Returns the PNG paths."""
    folder = Path(folder)
    theory = config.theories[0] if config.theories else None
    out = [measure_map(cells, config, m, theory, folder / f"map_{m}.png")
           for m in ("kernel_distance_final", "time_to_learn")]
    out += [agreement_map(cells, config, t, path=folder / f"agreement_{t}.png") for t in config.theories]
    return out
