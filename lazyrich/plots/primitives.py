"""Drawing primitives for the paper figures (:mod:`lazyrich.figures`): arrays in, lines on a given axes out, in
the styles of :mod:`lazyrich.plots.style` (simulation broad and pale, theory dotted and darker on top)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from lazyrich.plots.style import SIM_STYLE, THEORY_STYLE, theory_colour

__all__ = ["contour_compare", "mark_phases", "matrix_entries", "sim_theory", "split_matrix"]


def sim_theory(ax, x, sim, theory=None, *, x_theory=None, color="C0", label: str | None = None,
               marker: str | None = None) -> list:
    """Simulation (broad, pale, solid) and theory (thin, dotted, a darker shade of ``color``, on top) against
    ``x``; returns the lines drawn.

    ``sim`` is (T,) or (T, k) for k curves (e.g. matrix entries); ``theory`` the same on ``x_theory`` (default
    ``x``). Only the first simulated line carries ``label``. NaN theory values are simply not drawn.
    """
    lines = []
    style = {**SIM_STYLE, **({"marker": marker, "markersize": 3.5} if marker else {})}
    drawn = ax.plot(np.asarray(x), np.asarray(sim), color=color, **style)
    if drawn and label is not None:
        drawn[0].set_label(label)
    lines += drawn
    if theory is not None:
        xt = np.asarray(x if x_theory is None else x_theory)
        lines += ax.plot(xt, np.asarray(theory), color=theory_colour(color), **THEORY_STYLE)
    return lines


def matrix_entries(ax, t, sim, theory=None, *, t_theory=None,
                   entries: Sequence[tuple[int, int]] | None = None, cmap: str = "tab10") -> list:
    """Entries of a matrix trajectory against t: one hue per entry, simulation solid, theory dotted on top.

    ``sim`` is (T, a, b) and ``theory`` (T', a, b) on ``t_theory`` (default ``t``); ``entries`` picks the
    (i, j) to draw (default all, row-major). Returns the lines drawn.
    """
    sim = np.asarray(sim)
    entries = list(entries) if entries is not None else [(i, j) for i in range(sim.shape[1])
                                                          for j in range(sim.shape[2])]
    colours = plt.get_cmap(cmap)
    lines = []
    for k, (i, j) in enumerate(entries):
        th = None if theory is None else np.asarray(theory)[:, i, j]
        lines += sim_theory(ax, t, sim[:, i, j], th, x_theory=t_theory, color=colours(k % colours.N))
    return lines


def split_matrix(ax, sim, theory, *, vmax: float | None = None, cmap: str = "RdBu_r",
                 title: str | None = None):
    """A symmetric matrix as one image: simulation on and above the diagonal, theory below it.

    Agreement reads as a mirror-symmetric image. The colour scale is symmetric about 0 (``vmax`` defaults to
    the largest |entry| of either). Returns the AxesImage.
    """
    sim, theory = np.asarray(sim, dtype=float), np.asarray(theory, dtype=float)
    upper = np.triu(np.ones(sim.shape, dtype=bool))
    shown = np.where(upper, sim, theory)
    vmax = float(np.nanmax(np.abs([sim, theory]))) if vmax is None else vmax
    image = ax.imshow(shown, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return image


def contour_compare(ax, x, y, sim, theory, *, levels: Sequence[float], cmap: str = "magma",
                    colorbar_label: str = ""):
    """Colour map of ``sim`` (len(y), len(x)) over the grid (x, y), with contour lines at ``levels``:
    simulation solid white, theory dotted black. Returns (mesh, sim contours, theory contours)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    mesh = ax.pcolormesh(x, y, np.asarray(sim), cmap=cmap, shading="nearest")
    cbar = ax.figure.colorbar(mesh, ax=ax)
    cbar.set_label(colorbar_label)
    cs_sim = ax.contour(x, y, np.asarray(sim), levels=list(levels), colors="w", linestyles="solid",
                        linewidths=1.6)
    cs_th = ax.contour(x, y, np.asarray(theory), levels=list(levels), colors="k", linestyles="dotted",
                       linewidths=2.0)
    ax.clabel(cs_th, fontsize=6, fmt="%g")
    return mesh, cs_sim, cs_th


def mark_phases(ax, boundaries: Sequence[float]) -> None:
    """Thin grey vertical lines at task switches (their style is neither simulation nor theory)."""
    for b in boundaries:
        ax.axvline(float(b), color="0.6", linewidth=0.8, linestyle="-.")
