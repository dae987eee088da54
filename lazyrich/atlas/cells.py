"""The cell table: the network table grouped by the two axes' values, seeds averaged.

Every numeric measure ``m`` becomes ``m`` (the mean over the cell's networks), ``m_lo`` and ``m_hi`` (mean ∓ 1.96
standard errors; equal to the mean for a single seed); NaN values (a network that never learned has no time to
learn) are left out of a cell's mean, a cell with no value left is NaN; an infinite value (a diverged network, a
theory that learns where the simulation does not) makes the cell's mean infinite. ``<th>/in_domain`` holds only if
it holds for every network of the cell, and ``<th>/domain`` keeps the first reason given. ``n`` counts the networks
of a cell and ``diverged`` how many of them diverged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["Z95", "cell_table"]

Z95 = 1.96
"""Half-width of the interval in standard errors (normal, 95%)."""

_KEYS = ("unit", "net", "seed")


def _interval(group: pd.DataFrame, columns: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in columns:
        v = group[c].to_numpy(dtype=float)
        v = v[~np.isnan(v)]
        if len(v) == 0:
            out.update({c: np.nan, f"{c}_lo": np.nan, f"{c}_hi": np.nan})
            continue
        mean = float(v.mean()) if np.isfinite(v).all() else float(np.inf if (v == np.inf).any() else -np.inf)
        half = Z95 * float(v.std(ddof=1)) / np.sqrt(len(v)) if len(v) > 1 and np.isfinite(mean) else 0.0
        out.update({c: mean, f"{c}_lo": mean - half, f"{c}_hi": mean + half})
    return out


def cell_table(networks: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """One row per (``x``, ``y``) cell of the network table ``networks`` (see the module docstring), in the
    order the cells first appear."""
    domains = [c for c in networks.columns if c.endswith("/in_domain")]
    reasons = [c for c in networks.columns if c.endswith("/domain")]
    numeric = [c for c in networks.columns if c not in (*_KEYS, x, y, "diverged", *domains, *reasons)
               and pd.api.types.is_numeric_dtype(networks[c]) and not pd.api.types.is_bool_dtype(networks[c])]
    rows = []
    for (xv, yv), group in networks.groupby([x, y], sort=False):
        row = {x: xv, y: yv, "unit": group["unit"].iloc[0], "n": len(group), "diverged": int(group["diverged"].sum())}
        row.update(_interval(group, numeric))
        for d in domains:
            row[d] = bool(group[d].all())
        for r in reasons:
            given = [s for s in group[r] if s]
            row[r] = given[0] if given else ""
        rows.append(row)
    return pd.DataFrame(rows)
