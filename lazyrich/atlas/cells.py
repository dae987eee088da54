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


def _intervals(grouped, columns: Sequence[str]) -> pd.DataFrame:
    """``m``, ``m_lo``, ``m_hi`` of every column: the mean of the non-NaN values ∓ 1.96 standard errors."""
    mean, std, count = (grouped[list(columns)].agg(how) for how in ("mean", "std", "count"))
    half = (Z95 * std / np.sqrt(count)).where((count > 1) & np.isfinite(mean), 0.0)
    parts = {}
    for c in columns:
        parts.update({c: mean[c], f"{c}_lo": mean[c] - half[c], f"{c}_hi": mean[c] + half[c]})
    return pd.DataFrame(parts)


def cell_table(networks: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """One row per (``x``, ``y``) cell of the network table ``networks`` (see the module docstring), in the
    order the cells first appear."""
    domains = [c for c in networks.columns if c.endswith("/in_domain")]
    reasons = [c for c in networks.columns if c.endswith("/domain")]
    numeric = [c for c in networks.columns if c not in (*_KEYS, x, y, "diverged", *domains, *reasons)
               and pd.api.types.is_numeric_dtype(networks[c]) and not pd.api.types.is_bool_dtype(networks[c])]
    grouped = networks.assign(diverged=networks["diverged"].astype(int)).groupby([x, y], sort=False)
    out = pd.concat([grouped["unit"].first(), grouped.size().rename("n"), grouped["diverged"].sum(),
                     _intervals(grouped, numeric), grouped[domains].all(),
                     grouped[reasons].agg(lambda r: next((s for s in r if s), ""))], axis=1)
    return out.reset_index()
