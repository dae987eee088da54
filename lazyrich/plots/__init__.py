"""Figures from result tables and the primitives of the paper figures: the simulation broad and pale, its theory
thin, dotted and darker on top, labels in words and symbols, failures marked, PNG at 200 dpi beside a PDF.

- :mod:`~lazyrich.plots.tables`: :func:`curves` (a run's long table against t) and :func:`sweep` (a suite
  table against a sweep parameter);
- :mod:`~lazyrich.plots.primitives`: arrays on a given axes (:func:`sim_theory`, :func:`matrix_entries`, …);
- :mod:`~lazyrich.plots.style`: the styles, the legend with its "simulation" and "theory" proxies, failure
  markers, panel grids, :func:`save`;
- :mod:`~lazyrich.plots.labels`: the words for column names and values (λ, t, π/8).

Every function takes or draws on matplotlib objects and returns them. Matplotlib uses the Agg backend, so
figures render without a display (matplotlib falls back to Agg when there is none).
"""

from lazyrich.plots.labels import LABELS, T_LABEL, TIME_UNIT, label, number, percent, pi_text, value_text
from lazyrich.plots.primitives import contour_compare, mark_phases, matrix_entries, sim_theory, split_matrix
from lazyrich.plots.style import (
    COINCIDE,
    DPI,
    LIMIT_STYLE,
    SIM_STYLE,
    THEORY_STYLE,
    coinciding,
    from_zero,
    legend_sim_theory,
    mark_missing,
    palette,
    panel_grid,
    save,
    theory_colour,
)
from lazyrich.plots.tables import BAND, MAX_LEGEND, curves, sweep

__all__ = [
    "BAND",
    "COINCIDE",
    "DPI",
    "LABELS",
    "LIMIT_STYLE",
    "MAX_LEGEND",
    "SIM_STYLE",
    "THEORY_STYLE",
    "TIME_UNIT",
    "T_LABEL",
    "coinciding",
    "contour_compare",
    "curves",
    "from_zero",
    "label",
    "legend_sim_theory",
    "mark_missing",
    "mark_phases",
    "matrix_entries",
    "number",
    "percent",
    "palette",
    "panel_grid",
    "pi_text",
    "save",
    "sim_theory",
    "split_matrix",
    "sweep",
    "theory_colour",
    "value_text",
]
