"""Words and symbols for the columns of result tables: axis labels, legend entries, values (λ, t, π/8).

A figure never shows a column name: ``lam`` is λ, ``kernel_t_half`` is "t at half the final kernel distance",
an angle of 0.3927 rad is π/8. Columns not listed in :data:`LABELS` are spelled out from their name (underscores
become spaces, ``lam`` becomes λ, a time gets its unit); a caller names its own with ``labels=``.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping
from fractions import Fraction

import numpy as np

__all__ = ["LABELS", "SYMBOLS", "T_LABEL", "TIME_UNIT", "axis_label", "label", "number", "percent", "pi_text",
           "value_text"]

TIME_UNIT = "steps · lr"
"""The unit of every time: t = step · lr, gradient-descent steps times the learning rate."""

T_LABEL = "t = step · lr"

LABELS: dict[str, str] = {
    "t": T_LABEL,
    "lam": "λ",
    "lam_hat": "measured balance λ̂",
    "angle": "rotation angle",
    "scale": "init scale",
    "lr": "learning rate",
    "arch": "architecture",
    "part": "part",
    "seed": "seed",
    "loss": "loss",
    "kernel_distance": "kernel distance S(t)",
    "ntk_rel_change": "relative NTK change",
    "loss_final": "loss at the end",
    "kernel_distance_final": "kernel distance at the end",
    "kernel_t_half": f"t at half the final kernel distance [{TIME_UNIT}]",
    "time_to_1pct": f"time to 1% of the initial loss [{TIME_UNIT}]",
    "time_to_reverse": f"time to reverse, after the switch [{TIME_UNIT}]",
    "plateau_time": f"time on the saddle's plateau [{TIME_UNIT}]",
    "time_to_learn": f"time to learn the target, after the switch [{TIME_UNIT}]",
    "time_to_threshold": f"time to the threshold loss [{TIME_UNIT}]",
    "forgetting": "forgetting (loss rise on earlier tasks)",
    "bwt": "backward transfer (BWT)",
    "rep_change_in": "relative change of W1ᵀW1",
    "rep_change_out": "relative change of W2W2ᵀ",
    "gen_d1": "new-feature score, tree distance 1",
    "gen_d2": "new-feature score, tree distance 2",
    "gen_d3": "new-feature score, tree distance 3",
    "gen_ancestor": "new-item score, ancestor features",
    "gen_descendant": "new-item score, descendant features",
    "gen_other": "new-item score, other features",
    "theory_max_rel_err": "max relative error, theory vs simulation",
}
"""Axis label of each known column (a time carries its unit, :data:`TIME_UNIT`)."""

SYMBOLS: dict[str, str] = {"lam": "λ", "lam_hat": "λ̂", "scale": "scale", "lr": "lr", "angle": "angle",
                           "seed": "seed", "depth": "depth", "hidden": "hidden width"}
"""How a legend entry names a numeric column: ``λ = −2``, ``angle = π/8``; other columns show their value only."""

_TOKENS = {"lam": "λ", "ntk": "NTK", "kd": "kernel distance", "pct": "%", "sval": "singular value"}
_ANGLES = {"angle", "theta", "rotation"}


def label(column: str, labels: Mapping[str, str] | None = None) -> str:
    """The axis label of ``column``: ``labels`` first, then :data:`LABELS`, else words from the name (a time,
    a name with ``time`` or ``t_``, gets its unit)."""
    if labels and column in labels:
        return labels[column]
    if column in LABELS:
        return LABELS[column]
    for prefix, word in (("theory_", "theory"), ("analytic_", "analytic")):
        if column.startswith(prefix) and column[len(prefix):] in LABELS:
            return f"{LABELS[column[len(prefix):]]} ({word})"
    singular = re.fullmatch(r"sval_(\d+)", column)
    if singular:
        return f"singular value s{_subscript(singular[1])} of W2W1"
    words = " ".join(_TOKENS.get(w, w) for w in column.split("_") if w)
    timed = column.startswith(("time", "t_")) or "_time" in column or column.endswith("_t")
    return f"{words} [{TIME_UNIT}]" if timed else words


def axis_label(column: str, labels: Mapping[str, str] | None = None, width: int = 34) -> str:
    """:func:`label` wrapped onto lines of at most ``width`` characters, to fit beside a panel."""
    return "\n".join(textwrap.wrap(label(column, labels), width)) or column


def _subscript(digits: str) -> str:
    return digits.translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def number(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits with a true minus sign (−2, not -2); ∞ for infinities."""
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}g}".replace("-", "−")


def percent(fraction: float) -> str:
    """A fraction as people write a level: 0.05 → ``5%``, 0.001 → ``0.1%``."""
    return f"{100 * fraction:.3g}%"


def pi_text(radians: float, max_denominator: int = 12, tol: float = 1e-3) -> str:
    """An angle as a fraction of π where one with a small denominator is within ``tol`` (0.3927 → π/8,
    2.094 → 2π/3, 0 → 0), else in radians (0.8 → 0.8 rad)."""
    if radians == 0:
        return "0"
    fraction = Fraction(radians / math.pi).limit_denominator(max_denominator)
    if fraction == 0 or abs(float(fraction) * math.pi - radians) > tol:
        return f"{number(radians)} rad"
    sign = "−" if fraction < 0 else ""
    top = abs(fraction.numerator)
    head = "π" if top == 1 else f"{top}π"
    return sign + head + (f"/{fraction.denominator}" if fraction.denominator != 1 else "")


def value_text(column: str, value: object) -> str:
    """A legend entry for one value of ``column``: ``λ = −2``, ``angle = π/8``, ``inverted funnel``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return str(value).replace("_", " ")
    shown = pi_text(float(value)) if column in _ANGLES else number(float(value), 4)
    symbol = SYMBOLS.get(column, label(column))
    return f"{symbol} = {shown}"
