"""Figures from result tables: curves against t (a run's long table) and measures against a sweep parameter (a
suite table), in the styles of :mod:`lazyrich.plots.style` with the words of :mod:`lazyrich.plots.labels`.

Both mark what did not give a value instead of dropping it (a configuration that never reached a level, a
failed unit, a diverged network), note curves that coincide, and start linear y axes at zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.collections import PolyCollection

from lazyrich.plots.labels import SYMBOLS, axis_label, label, number, pi_text, value_text
from lazyrich.plots.style import (
    DIVERGED_STYLE,
    SIM_STYLE,
    THEORY_STYLE,
    coinciding,
    from_zero,
    legend_sim_theory,
    mark_missing,
    palette,
    panel_grid,
    theory_colour,
)

__all__ = ["BAND", "MAX_LEGEND", "curves", "sweep"]

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


def _colours(values: list) -> tuple[list, object | None]:
    """One colour per hue value (spread by rank) and, for many numeric values, a colour bar's mappable spread
    by value instead."""
    numeric = all(isinstance(v, int | float | np.number) for v in values)
    if len(values) <= MAX_LEGEND or not numeric:
        return palette(len(values)), None
    cmap = mcolors.ListedColormap(plt.get_cmap("viridis")(np.linspace(0, 0.85, 256)))
    norm = plt.Normalize(float(min(values)), float(max(values)))
    return [cmap(norm(v)) for v in values], plt.cm.ScalarMappable(norm=norm, cmap=cmap)


def _split_diverged(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of networks that finished, rows of those that diverged): a diverged network is marked, not
    averaged in (its non-finite values would take the mean with them)."""
    if "status" not in frame:
        return frame, frame.iloc[:0]
    bad = frame["status"].astype(str) != "ok"
    return frame[~bad], frame[bad]


def curves(frame: pd.DataFrame, metrics: Sequence[str] = ("loss", "kernel_distance"), hue: str = "lam",
           *, title: str | None = None, axes=None, log_t: bool = False, band: tuple[float, float] | None = BAND,
           labels: Mapping[str, str] | None = None):
    """One panel per metric against t; one hue per value of ``hue``: the mean over the networks that share it
    (seeds, …), over a shaded seed band (the ``band`` quantiles, 10th–90th percentile) where there are several.

    The simulation (``sim/<metric>``) is broad, pale and solid; the theory (``theory/<metric>``), where present,
    thin, dotted and darker on top, so agreement reads as dots along the middle of a solid line. The legend
    opens with "simulation" and "theory" proxies; curves that coincide share an entry; a diverged network is a
    red triangle at its last finite value. With more than :data:`MAX_LEGEND` numeric hue values a colour bar
    names them and a line under the panels says which coincide. ``labels`` names columns (:func:`label`).
    """
    metrics = list(metrics)
    if axes is None:
        fig, axes, _ = panel_grid(len(metrics), spare_legend=False)
    fig = axes[0].figure
    frame, diverged = _split_diverged(frame)
    key = hue if hue in frame else None
    values = sorted(frame[hue].dropna().unique()) if key else [None]
    colours, mappable = _colours(values)
    names = [value_text(hue, v) if v is not None else "all" for v in values]
    drawn: dict[str, list] = {}
    for ax, metric in zip(axes, metrics, strict=True):
        bands: list[tuple[np.ndarray, object]] = []
        for column, is_sim in ((f"sim/{metric}", True), (f"theory/{metric}", False)):
            if column not in frame or not frame[column].notna().any():
                continue
            stats = _stats(frame, key, column, band if is_sim else None)
            for value, colour, name in zip(values, colours, names, strict=True):
                part = stats if value is None else stats.loc[value] if value in stats.index else None
                line = _draw(ax, part, colour, name if mappable is None and key else None, is_sim, bands)
                if is_sim and line is not None:
                    drawn.setdefault(name, []).append(line)
        _shade(ax, bands)
        _mark_diverged(ax, diverged, f"sim/{metric}")
    _decorate(axes, metrics, log_t, labels)
    if title:
        fig.suptitle(title)
    _legend(fig, axes, drawn, mappable, hue, labels)
    return fig


def _draw(ax, stats: pd.DataFrame | None, colour, label: str | None, is_sim: bool,
          bands: list[tuple[np.ndarray, object]]):
    """One hue value's mean curve (stats indexed by t); its seed band, where it has one, is added to ``bands`` as
    (polygon, colour) for :func:`_shade`. Returns the line."""
    if stats is None:
        return None
    mean = stats["mean"].to_numpy(dtype=float)
    kept = ~np.isnan(mean)  # the points with a mean (numpy masks: a hue value per call, many per figure)
    if not kept.any():
        return None
    t, mean = stats.index.to_numpy()[kept], mean[kept]
    if not is_sim:
        return ax.plot(t, mean, color=theory_colour(colour), **THEORY_STYLE)[0]
    (line,) = ax.plot(t, mean, color=colour, label=label or "_nolegend_", **SIM_STYLE)
    if "low" in stats:
        low, high = (stats[c].to_numpy(dtype=float)[kept] for c in ("low", "high"))
        bands += [(polygon, colour) for polygon in _band_polygons(t, low, high)]
    return line


def _band_polygons(t: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[np.ndarray]:
    """The region between ``low`` and ``high`` over ``t`` as polygons (n, 2), one per run of points where both
    are finite (a gap stays a gap)."""
    finite = np.isfinite(low) & np.isfinite(high)
    edges = np.flatnonzero(np.diff(np.r_[0, finite.astype(np.int8), 0]))
    return [np.column_stack([np.r_[t[a:b], t[a:b][::-1]], np.r_[low[a:b], high[a:b][::-1]]])
            for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _shade(ax, bands: list[tuple[np.ndarray, object]]) -> None:
    """A panel's seed bands, pale and under the lines, as one collection: one artist to draw, not one per hue
    value (a 64-λ run draws 128 bands)."""
    if bands:
        polygons, colours = zip(*bands, strict=True)
        ax.add_collection(PolyCollection(polygons, facecolors=colours, alpha=0.15, linewidths=0, zorder=1))


def _mark_diverged(ax, diverged: pd.DataFrame, column: str) -> None:
    """A red triangle at the last finite value of each diverged network (by ``net``)."""
    if diverged.empty or column not in diverged:
        return
    rows = diverged[np.isfinite(diverged[column].to_numpy(dtype=float))].sort_values("t")
    last = rows.groupby("net", sort=False).tail(1)
    if len(last):
        ax.plot(last["t"].to_numpy(), last[column].to_numpy(), zorder=4, gid="mark:diverged", **DIVERGED_STYLE)


def _decorate(axes, metrics: Sequence[str], log_t: bool, labels: Mapping[str, str] | None) -> None:
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set_xlabel(axis_label("t", labels))
        ax.set_ylabel(axis_label(metric, labels))
        if metric in LOG_METRICS:
            ax.set_yscale("log")
            top = max((np.nanmax(line.get_ydata()) for line in ax.get_lines() if len(line.get_ydata())),
                      default=1.0)
            ax.set_ylim(bottom=max(ax.get_ylim()[0], LOG_FLOOR * top))  # below it is rounding, not learning
        if log_t:
            ax.set_xscale("symlog", linthresh=1e-2)
            ax.set_xlim(left=0)  # symlog autoscaling pads into t < 0, which does not exist
        from_zero(ax)
        ax.grid(alpha=0.3)


def _legend(fig, axes, drawn: dict[str, list], mappable, hue: str, labels: Mapping[str, str] | None) -> None:
    """The legend beside the panels; with a colour bar, the style proxies under them and which curves
    coincide."""
    if mappable is None:
        legend_sim_theory(axes[-1], axes=axes, outside=True, title=_hue_title(hue, drawn, labels))
        fig.tight_layout()
        return
    note = _coincidence_note(hue, coinciding(drawn))
    fig.tight_layout(rect=(0, 0.13 if note else 0.08, 0.9, 1))
    fig.colorbar(mappable, cax=fig.add_axes((0.91, 0.25, 0.015, 0.6)), label=label(hue, labels))
    legend_sim_theory(axes[0], axes=axes, loc="lower center", bbox_to_anchor=(0.5, 0.0),
                      bbox_transform=fig.transFigure, ncol=6, title=note)


def _hue_title(hue: str | None, names: Sequence[str], labels: Mapping[str, str] | None) -> str | None:
    """The legend's title: the hue's name when its entries are bare values (``funnel``), none when each entry
    names it (``λ = −2``)."""
    if hue is None or len(names) < 2 or all(" = " in str(n) for n in names):
        return None
    return label(hue, labels)


def _coincidence_note(hue: str, groups: list[list[str]]) -> str | None:
    """One line saying which curves coincide (drawn over one another), or None."""
    if not groups:
        return None
    symbol = SYMBOLS.get(hue, label(hue))
    values = [[float(n.split(" = ")[-1].replace("−", "-")) for n in g] for g in groups
              if all(" = " in n for n in g)]
    if len(values) == len(groups) and all(len(v) == 2 and v[0] == -v[1] for v in values):
        mags = sorted(abs(v[0]) for v in values)
        which = (", ".join(number(m) for m in mags) if len(mags) <= 6
                 else f"{len(mags)} values from {number(mags[0])} to {number(mags[-1])}")
        return (f"curves of {symbol} and −{symbol} coincide for |{symbol}| = {which}: those of {symbol} < 0 lie "
                f"under those of {symbol} > 0")
    shown = "; ".join(", ".join(g) for g in groups[:3])
    return f"{len(groups)} groups of coinciding curves (drawn over one another): {shown}" + \
        (" …" if len(groups) > 3 else "")


def sweep(table: pd.DataFrame, x: str, metrics: Sequence[str], hue: str | None = None, *,
          title: str | None = None, log_y: Sequence[str] = (), theory_prefix: str = "theory_",
          labels: Mapping[str, str] | None = None, theory_label: str = "theory",
          failed: pd.DataFrame | None = None):
    """One panel per metric against a sweep parameter ``x`` (e.g. ``lam``); one hue per value of ``hue``;
    one row for one or two metrics, else two columns (2 × 2 for three or four, the legend in a spare cell).

    ``table`` has one row per configuration (a suite.csv); rows sharing (hue, x), e.g. seeds, are averaged
    over their finite values. The measured column ``<metric>`` is broad and solid with markers; its prediction
    ``<theory_prefix><metric>`` (legend: ``theory_label``), where present, dotted and darker on top. A
    configuration without a value is marked at the foot of the panel (× the measurement, + the theory), a
    non-finite one at the top, and each row of ``failed`` (units that failed, e.g. the suite.csv rows of
    status ``failed``) as a red X. ``labels`` names columns (:func:`label`).
    """
    metrics = list(metrics)
    fig, axes, spare = panel_grid(len(metrics))
    groups = [(None, table)] if hue is None or hue not in table else list(table.groupby(hue, sort=True))
    colours = palette(len(groups)) if len(groups) > 1 else ["C0"]
    for (value, part), colour in zip(groups, colours, strict=True):
        name = None if value is None else value_text(hue, value)
        for ax, metric in zip(axes, metrics, strict=True):
            _series(ax, part, x, metric, colour, name)
            _series(ax, part, x, f"{theory_prefix}{metric}", colour, None, theory=True)
    for ax, metric in zip(axes, metrics, strict=True):
        _sweep_axes(ax, table, x, metric, metric in log_y, labels)
        if failed is not None and len(failed) and x in failed:
            mark_missing(ax, pd.to_numeric(failed[x], errors="coerce").dropna(), "failed")
    title_of = _hue_title(hue, [value_text(hue, v) for v, _ in groups if v is not None], labels)
    if spare is not None:
        legend_sim_theory(spare, axes=axes, loc="center", fontsize=8, title=title_of, theory_label=theory_label,
                          sim_marker="o")
    else:
        legend_sim_theory(axes[min(1, len(axes) - 1)], axes=axes, outside=True, title=title_of,
                          theory_label=theory_label, sim_marker="o")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _series(ax, part: pd.DataFrame, x: str, column: str, colour, name: str | None, theory: bool = False) -> None:
    """The mean of ``column`` per ``x`` over the finite values, and a marker where none is finite."""
    if column not in part:
        return
    values = pd.to_numeric(part[column], errors="coerce").astype(float)
    xs = pd.to_numeric(part[x], errors="coerce").astype(float)
    finite = values.where(np.isfinite(values))
    mean = finite.groupby(xs).mean()
    infinite = values.groupby(xs).apply(lambda v: bool(np.isinf(v).any()))
    shown = mean.dropna()
    if len(shown):
        if theory:
            ax.plot(shown.index, shown.to_numpy(), color=theory_colour(colour), **THEORY_STYLE)
        else:
            ax.plot(shown.index, shown.to_numpy(), color=colour, label=name or "_nolegend_",
                    **{**SIM_STYLE, "marker": "o", "markersize": 4})
    none = mean.index[mean.isna() & ~infinite.reindex(mean.index, fill_value=False)]
    mark_missing(ax, none, "theory_missing" if theory else "missing", colour)
    mark_missing(ax, infinite.index[infinite], "diverged")


def _sweep_axes(ax, table: pd.DataFrame, x: str, metric: str, log: bool, labels: Mapping[str, str] | None) -> None:
    """Labels, scale and ticks of one sweep panel (angles ticked as fractions of π)."""
    ax.set_xlabel(axis_label(x, labels))
    ax.set_ylabel(axis_label(metric, labels))
    if log:
        ax.set_yscale("log")
    if x in ("angle",) and x in table:
        ticks = sorted(pd.to_numeric(table[x], errors="coerce").dropna().unique())
        ax.set_xticks(ticks, [pi_text(float(v)) for v in ticks])
    from_zero(ax)
    ax.grid(alpha=0.3)
