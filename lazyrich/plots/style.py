"""How every figure looks: the simulation and theory styles, the legend (its style proxies, coinciding curves,
failure markers), panel grids, honest y axes, and saving (PNG at 200 dpi beside a vector PDF).

The simulation is a broad, pale solid line; its theory a thin, darker dotted line of the same hue drawn on top,
so where they agree the dots run along the middle of the solid line and both stay visible.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors as mcolors
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D

__all__ = ["COINCIDE", "DPI", "FAILED_STYLE", "LIMIT_STYLE", "MISSING_STYLE", "SIM_STYLE", "THEORY_STYLE",
           "THEORY_MISSING_STYLE", "DIVERGED_STYLE", "coinciding", "from_zero", "legend_sim_theory",
           "mark_missing", "palette", "panel_grid", "save", "theory_colour"]

SIM_STYLE = {"linestyle": "-", "linewidth": 2.8, "alpha": 0.55, "solid_capstyle": "round", "zorder": 2}
"""The simulation: broad, pale and solid, under its theory."""
THEORY_STYLE = {"linestyle": ":", "linewidth": 1.7, "zorder": 3}
"""The theory: thin, dotted, in a darker shade of the simulation's hue (:func:`theory_colour`), on top."""
LIMIT_STYLE = {"linestyle": "--", "linewidth": 1.2, "color": "0.45"}
"""Reference curves that are neither the simulation nor its theory (e.g. the Saxe and lazy limits)."""
MISSING_STYLE = {"marker": "x", "markersize": 7, "markeredgewidth": 1.8, "linestyle": "none"}
"""A configuration that finished without a value (e.g. λ = 0 never reverses), at the foot of its panel."""
THEORY_MISSING_STYLE = {"marker": "+", "markersize": 8, "markeredgewidth": 1.4, "linestyle": "none"}
"""The same for the theory: it predicts no value (never reached, or no theory applied)."""
FAILED_STYLE = {"marker": "X", "markersize": 8, "linestyle": "none", "color": "#c0392b"}
"""A unit of the sweep that failed (no row at all), at the foot of its panel."""
DIVERGED_STYLE = {"marker": "^", "markersize": 7, "linestyle": "none", "color": "#c0392b"}
"""A network that diverged (a non-finite value): its last finite point, or the top of the panel."""
COINCIDE = 0.01
"""Two curves coincide when they never lie further apart than this fraction of their panel's height."""
DPI = 200
"""Resolution of every PNG (a vector PDF is written beside it)."""
DARKEN = 0.55
_MARKS = {"missing": ("simulation: no value (never reached)", MISSING_STYLE),
          "theory_missing": ("theory: no value", THEORY_MISSING_STYLE),
          "failed": ("run failed (no result)", FAILED_STYLE),
          "diverged": ("diverged (non-finite)", DIVERGED_STYLE)}


def theory_colour(colour) -> tuple[float, float, float, float]:
    """The theory's shade of a simulation ``colour``: the same hue, darker (RGB × 0.55), opaque."""
    r, g, b, _ = mcolors.to_rgba(colour)
    return (r * DARKEN, g * DARKEN, b * DARKEN, 1.0)


def palette(n: int, cmap: str = "viridis") -> list:
    """``n`` colours spread over ``cmap`` (one per configuration); viridis stops short of its pale yellow end,
    which would vanish as a pale simulation line on white."""
    colours = plt.get_cmap(cmap)
    top = 0.85 if cmap == "viridis" else 1.0
    return [colours(top * i / max(n - 1, 1)) for i in range(n)]


def panel_grid(n: int, *, width: float = 4.3, height: float = 3.3, spare_legend: bool = True):
    """A figure of ``n`` panels: one row for one or two, else two columns (2 × 2 for three or four). Returns
    (fig, the n panel axes, the spare axes left over for the legend or None); the spare is hidden."""
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    cells = list(grid.flat)
    spare = cells[n] if len(cells) > n and spare_legend else None
    for ax in cells[n:]:
        ax.set_axis_off()
    return fig, cells[:n], spare


def from_zero(ax) -> None:
    """A linear y axis that includes 0, so a small difference is drawn at its size relative to the values (a
    sweep spanning 13.00 to 13.06 is flat, not a cliff). Log axes are left alone."""
    if ax.get_yscale() != "linear":
        return
    low, high = ax.get_ylim()
    if low > 0:
        ax.set_ylim(0.0, high)
    elif high < 0:
        ax.set_ylim(low, 0.0)


def mark_missing(ax, x: Iterable[float], kind: str, colour=None, *, height: float | None = None) -> list:
    """Markers at the foot of ``ax`` (or at ``height``, a fraction of the panel) at each ``x`` where a point
    has no value: ``kind`` is ``missing`` (the simulation's), ``theory_missing``, ``failed`` or ``diverged``
    (:data:`MISSING_STYLE` …). Returns the lines drawn, labelled ``_mark_<kind>`` for :func:`legend_sim_theory`."""
    x = np.asarray(list(x), dtype=float)
    if not len(x):
        return []
    _, style = _MARKS[kind]
    y = {"missing": 0.04, "theory_missing": 0.10, "failed": 0.04, "diverged": 0.96}[kind] if height is None else height
    style = {**style, **({"color": colour} if colour is not None and kind in ("missing", "theory_missing") else {})}
    lines = ax.plot(x, np.full(len(x), y), transform=ax.get_xaxis_transform(), clip_on=False, zorder=4, **style)
    for line in lines:
        line.set_gid(f"mark:{kind}")
    return lines


def coinciding(curves: Mapping[str, Sequence[Line2D]], tol: float = COINCIDE) -> list[list[str]]:
    """Groups (two or more) of the named ``curves`` that coincide on their panels: every panel holding one
    holds the other, on the same x, and they are never more than ``tol`` of the panel height apart (after the
    panel's scale and limits: values below a log axis's floor are equal). ``curves``: name → its lines, one per
    panel, each on its own axes."""
    shapes = {name: {id(line.axes): _on_panel(line) for line in lines} for name, lines in curves.items()}
    names = list(shapes)
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if root(a) != root(b) and _same(shapes[a], shapes[b], tol):
                parent[root(b)] = root(a)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(root(n), []).append(n)
    return [g for g in groups.values() if len(g) > 1]


def _on_panel(line: Line2D) -> tuple[np.ndarray, np.ndarray]:
    """(x, y in panel-height fractions clipped to the panel) of a line, finite points only."""
    ax = line.axes
    x, y = (np.asarray(v, dtype=float) for v in line.get_data())
    keep = np.isfinite(x) & np.isfinite(y)
    if ax.get_yscale() == "log":
        keep &= y > 0
    x, y = x[keep], y[keep]
    if not len(x):
        return x, y
    low, high = ax.get_ylim()
    scale = ax.yaxis.get_transform()
    lo, hi = scale.transform(np.array([low, high]))
    frac = (scale.transform(np.clip(y, min(low, high), max(low, high))) - lo) / (hi - lo)
    return x, frac


def _same(a: dict, b: dict, tol: float) -> bool:
    if a.keys() != b.keys():
        return False
    for key, (xa, ya) in a.items():
        xb, yb = b[key]
        if len(xa) != len(xb) or not len(xa) or not np.allclose(xa, xb) or np.max(np.abs(ya - yb)) > tol:
            return False
    return True


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def legend_sim_theory(ax, *, extra: Sequence = (), title: str | None = None, outside: bool = False,
                      fontsize: float = 7, axes: Sequence | None = None, theory_label: str = "theory",
                      sim_marker: str | None = None, **kwargs):
    """A legend on ``ax`` that opens with proxies of the two styles, "simulation" and "theory", then the
    labelled simulation curves of ``axes`` (default ``[ax]``), then ``extra`` (label, style-dict) proxies, e.g.
    ("Saxe (λ = 0)", LIMIT_STYLE), then one proxy per kind of failure marker drawn (:func:`mark_missing`).

    Curves whose lines coincide on every panel (:func:`coinciding`) share one entry, "A and B (coincide)", with
    both colours, so no entry names a curve that cannot be seen. Proxies are not added to the axes, so
    ``ax.get_lines()`` still holds only what was plotted.
    """
    axes = list(axes) if axes is not None else [ax]
    sim = {**SIM_STYLE, **({"marker": sim_marker, "markersize": 4} if sim_marker else {})}
    handles = [Line2D([], [], color="0.3", label="simulation", **sim),
               Line2D([], [], color=theory_colour("0.3"), label=theory_label, **THEORY_STYLE)]
    handles += [Line2D([], [], label=label, **{"color": "k", **style}) for label, style in extra]
    named: dict[str, list[Line2D]] = {}
    for panel in axes:
        for line in panel.get_lines():
            if not line.get_label().startswith("_"):
                named.setdefault(line.get_label(), []).append(line)
    merged = {n: g for g in coinciding(named) for n in g}
    done: set[str] = set()
    for name, lines in named.items():
        group = merged.get(name, [name])
        if name in done:
            continue
        done.update(group)
        if len(group) == 1:
            handles.append(lines[0])
        else:
            proxy = tuple(Line2D([], [], color=named[n][0].get_color(), **sim) for n in group)
            handles.append((proxy, f"{_join(group)} (coincide)"))
    drawn = {line.get_gid() for panel in axes for line in panel.get_lines()}
    handles += [Line2D([], [], label=text, **{"color": "k", **style}) for kind, (text, style) in _MARKS.items()
                if f"mark:{kind}" in drawn]
    place = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0)} if outside else {}
    return ax.legend(handles=[h[0] if isinstance(h, tuple) else h for h in handles],
                     labels=[h[1] if isinstance(h, tuple) else h.get_label() for h in handles],
                     handler_map={tuple: HandlerTuple(ndivide=None, pad=0)}, fontsize=fontsize, frameon=False,
                     title=title, title_fontsize=fontsize, **{**place, **kwargs})


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Within the block, the logger ``name`` passes on warnings and errors only (not its INFO chatter)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def save(fig, path: str | Path, dpi: int = DPI, *, vector: str | None = "pdf") -> Path:
    """Write ``fig`` as ``path`` (a PNG, at ``dpi``, 200 by default) and a vector copy beside it
    (``path`` with suffix ``.pdf``; ``vector=None``: none), creating folders; close the figure and return
    ``path``, the PNG, which is what summaries, W&B and reports show.

    PDF rather than SVG: a paper's LaTeX includes a PDF as it is; the fonts are embedded as TrueType (not Type 3,
    which some journals refuse) and the file carries no creation date, so the same figure gives the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=dpi)
        if vector is not None and path.suffix.lower() == ".png":
            with plt.rc_context({"pdf.fonttype": 42}), _quiet("fontTools"):  # its font subsetting logs at INFO
                fig.savefig(path.with_suffix(f".{vector}"), metadata={"CreationDate": None}
                            if vector == "pdf" else None)
    finally:
        plt.close(fig)
    return path
