"""Figures from result tables: simulation solid, theory dotted, one colour per configuration.

Every function takes the long table of :func:`lazyrich.results.to_frame` (or :func:`lazyrich.results.load`),
draws on matplotlib axes and returns the figure; ``save`` writes a PNG. Matplotlib uses the Agg backend, so
figures render without a display (matplotlib falls back to Agg when there is none).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["BAND", "MAX_LEGEND", "curves", "save", "SIM_STYLE", "THEORY_STYLE"]

SIM_STYLE = {"linestyle": "-", "linewidth": 1.8}
THEORY_STYLE = {"linestyle": ":", "linewidth": 2.4}
LOG_METRICS = {"loss"}
LOG_FLOOR = 1e-12


BAND = (0.1, 0.9)
"""Seed bands span these quantiles of the networks that share a configuration (10th to 90th percentile)."""
MAX_LEGEND = 12
"""With more hue values than this, a colour bar replaces the legend entries."""


def _stats(frame: pd.DataFrame, hue: str | None, column: str, band: tuple[float, float] | None) -> pd.DataFrame:
    """Mean of ``column`` per (hue value, t), and the ``band`` quantiles (columns low, high) where several
    networks share a (hue value, t); one grouping for every hue value."""
    grouped = frame.groupby([hue, "t"] if hue is not None else ["t"], sort=True)[column]
    stats = pd.DataFrame({"mean": grouped.mean()})
    if band is not None:
        several = grouped.count() > 1
        stats["low"] = grouped.quantile(band[0]).where(several)
        stats["high"] = grouped.quantile(band[1]).where(several)
    return stats


def _colours(values: list, cmap) -> tuple[list, object | None]:
    """One colour per hue value (spread by rank) and, for many numeric values, a colour bar's mappable spread
    by value instead."""
    numeric = all(isinstance(v, int | float | np.number) for v in values)
    if len(values) <= MAX_LEGEND or not numeric:
        return [cmap(i / max(len(values) - 1, 1)) for i in range(len(values))], None
    norm = plt.Normalize(float(min(values)), float(max(values)))
    return [cmap(norm(v)) for v in values], plt.cm.ScalarMappable(norm=norm, cmap=cmap)


def curves(frame: pd.DataFrame, metrics: Sequence[str] = ("loss", "kernel_distance"), hue: str = "lam",
           *, title: str | None = None, axes=None, log_t: bool = False, band: tuple[float, float] | None = BAND):
    """One panel per metric against t; one colour per value of ``hue``: the mean over the networks that share
    it (seeds, …), and a shaded seed band (the ``band`` quantiles, 10th–90th percentile) where there are several.

    Simulation (``sim/<metric>``) is solid; the theory (``theory/<metric>``), where present, is dotted on top
    in the same colour, so agreement reads as a dotted line lying on a solid one. With more than
    :data:`MAX_LEGEND` numeric hue values (a large sweep) a colour bar names them instead of the legend.
    """
    metrics = list(metrics)
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    values = sorted(frame[hue].dropna().unique()) if hue in frame else [None]
    colours, mappable = _colours(values, plt.get_cmap("viridis"))
    for ax, metric in zip(axes, metrics, strict=True):
        for column, style in ((f"sim/{metric}", SIM_STYLE), (f"theory/{metric}", THEORY_STYLE)):
            if column not in frame or not frame[column].notna().any():
                continue
            stats = _stats(frame, hue if hue in frame else None, column, band if style is SIM_STYLE else None)
            for value, colour in zip(values, colours, strict=True):
                label = (None if value is None or mappable is not None or style is THEORY_STYLE
                         else f"{hue}={value:g}" if isinstance(value, int | float) else f"{hue}={value}")
                _draw(ax, stats if value is None else stats.loc[value], colour, label, style)
    _decorate(axes, metrics, log_t)
    if mappable is not None:
        fig.tight_layout(rect=(0, 0, 0.9, 0.95 if title else 1))
        fig.colorbar(mappable, cax=fig.add_axes((0.91, 0.18, 0.015, 0.66)), label=hue)
    elif len(values) > 1 or (values and values[0] is not None):
        axes[-1].legend(fontsize=7, frameon=False, title="solid: sim\ndotted: theory", title_fontsize=7,
                        loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
        fig.suptitle(title)
    if mappable is None:
        fig.tight_layout()
    return fig


def _draw(ax, stats: pd.DataFrame, colour, label: str | None, style: dict) -> None:
    """One hue value's mean curve (stats indexed by t) in ``style``, over its seed band where it has one."""
    stats = stats.dropna(subset=["mean"])
    if stats.empty:
        return
    t = stats.index.to_numpy()
    ax.plot(t, stats["mean"].to_numpy(), color=colour, label=label, **style)
    if "low" in stats and stats["low"].notna().any():
        ax.fill_between(t, stats["low"].to_numpy(), stats["high"].to_numpy(), color=colour, alpha=0.18,
                        linewidth=0)


def _decorate(axes, metrics: Sequence[str], log_t: bool) -> None:
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set_xlabel("t = step · lr")
        ax.set_ylabel(metric.replace("_", " "))
        if metric in LOG_METRICS:
            ax.set_yscale("log")
            top = max((line.get_ydata().max() for line in ax.get_lines()), default=1.0)
            ax.set_ylim(bottom=max(ax.get_ylim()[0], LOG_FLOOR * top))  # below it is rounding, not learning
        if log_t:
            ax.set_xscale("symlog", linthresh=1e-2)
            ax.set_xlim(left=0)  # symlog autoscaling pads into t < 0, which does not exist
        ax.grid(alpha=0.3)


def save(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG (creating folders) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


__all__ += ["sweep"]


def sweep(table: pd.DataFrame, x: str, metrics: Sequence[str], hue: str | None = None, *,
          title: str | None = None, log_y: Sequence[str] = (), theory_prefix: str = "theory_"):
    """One panel per metric against a sweep parameter ``x`` (e.g. ``lam``); one colour per value of ``hue``.

    ``table`` has one row per configuration (a suite.csv); rows sharing (hue, x), e.g. seeds, are averaged.
    The measured column ``<metric>`` is solid with markers; its prediction ``theory_<metric>``, where present,
    is dotted on top in the same colour. Non-numeric or missing values are skipped.
    """
    metrics = list(metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    axes = axes[0]
    groups = [(None, table)] if hue is None or hue not in table else list(table.groupby(hue, sort=True))
    cmap = plt.get_cmap("viridis")
    for i, (value, part) in enumerate(groups):
        colour = cmap(i / max(len(groups) - 1, 1)) if hue is not None else "C0"
        label = None if value is None else (f"{hue}={value:g}" if isinstance(value, float)
                                             else f"{hue}={value}")
        for ax, metric in zip(axes, metrics, strict=True):
            for column, style, lab in ((metric, {**SIM_STYLE, "marker": "o", "markersize": 4}, label),
                                       (f"{theory_prefix}{metric}", THEORY_STYLE, None)):
                if column not in part:
                    continue
                values = pd.to_numeric(part[column], errors="coerce").astype(float)
                mean = values.groupby(part[x]).mean().dropna()
                if len(mean):
                    ax.plot(mean.index.to_numpy(dtype=float), mean.to_numpy(), color=colour, label=lab,
                            **style)
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set_xlabel(x)
        ax.set_ylabel(metric.replace("_", " "))
        if metric in log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if any(ax.get_legend_handles_labels()[1] for ax in axes):
        axes[-1].legend(fontsize=7, frameon=False, title="solid: measured\ndotted: theory", title_fontsize=7,
                        loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- Primitives for the paper figures (lazyrich.figures): arrays in, lines on a given axes out. -------------

__all__ += ["LIMIT_STYLE", "legend_sim_theory", "mark_phases", "matrix_entries", "palette", "sim_theory",
            "split_matrix", "contour_compare"]

LIMIT_STYLE = {"linestyle": "--", "linewidth": 1.2, "color": "0.45"}
"""Reference curves that are neither the simulation nor its theory (e.g. the Saxe and lazy limits)."""


def palette(n: int, cmap: str = "viridis") -> list:
    """``n`` colours spread over ``cmap`` (one per configuration, as in :func:`curves`)."""
    colours = plt.get_cmap(cmap)
    return [colours(i / max(n - 1, 1)) for i in range(n)]


def sim_theory(ax, x, sim, theory=None, *, x_theory=None, color="C0", label: str | None = None,
               marker: str | None = None) -> list:
    """Simulation solid and theory dotted against ``x``, in one colour; returns the lines drawn.

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
        lines += ax.plot(xt, np.asarray(theory), color=color, **THEORY_STYLE)
    return lines


def legend_sim_theory(ax, *, extra: Sequence = (), title: str | None = None, outside: bool = False,
                      fontsize: float = 7, **kwargs):
    """Legend that opens with "solid: simulation" and "dotted: theory", then ``ax``'s labelled lines.

    ``extra`` adds (label, style-dict) proxies, e.g. ("Saxe (λ = 0)", LIMIT_STYLE). The proxies are not added
    to the axes, so ``ax.get_lines()`` still holds only the plotted curves.
    """
    handles = [plt.Line2D([], [], color="k", label="solid: simulation", **SIM_STYLE),
               plt.Line2D([], [], color="k", label="dotted: theory", **THEORY_STYLE)]
    handles += [plt.Line2D([], [], label=label, **{"color": "k", **style}) for label, style in extra]
    mine, labels = ax.get_legend_handles_labels()
    handles += [h for h, lab in zip(mine, labels, strict=True) if not lab.startswith("_")]
    place = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0)} if outside else {}
    return ax.legend(handles=handles, fontsize=fontsize, frameon=False, title=title,
                     title_fontsize=fontsize, **{**place, **kwargs})


def matrix_entries(ax, t, sim, theory=None, *, t_theory=None,
                   entries: Sequence[tuple[int, int]] | None = None, cmap: str = "tab10") -> list:
    """Entries of a matrix trajectory against t: one colour per entry, simulation solid, theory dotted.

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
