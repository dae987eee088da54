"""The report's computed tables: seed means with percentile-bootstrap intervals, and the agreement of each theory
with the simulation per regime of |λ|.

Seed means: the networks (rows) that share a configuration are its seeds; each measure's mean over the seeds
where it has a finite value, with a 95% percentile-bootstrap interval (:data:`RESAMPLES` resamples of those
seeds, the generator seeded from :data:`SEED` and the configuration and column, so the same folder always gives
the same interval).

Agreement: per network, its ``theory_max_rel_err`` — the largest gap between its simulated and predicted loss
curves over the theory's largest loss (:func:`lazyrich.results.measures.agreement`): NaN when no theory
predicted it, infinite when it diverged. Per (theory, regime): how many networks, the coverage (the fraction a
theory predicted), the max and median error, and the fraction within :data:`~lazyrich.results.AGREEMENT_RTOL`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lazyrich.plots.labels import label, number
from lazyrich.results.report.model import Number, Table, cell
from lazyrich.results.tables import AGREEMENT_RTOL

__all__ = ["LEVEL", "REGIMES", "RESAMPLES", "SEED", "agreement_table", "bootstrap", "regime", "seed_means"]

RESAMPLES = 2000
"""Bootstrap resamples per seed mean."""
LEVEL = 0.95
"""Coverage of the percentile interval."""
SEED = 0
"""Base seed of the bootstrap generator."""
REGIMES = ((0.0, 1.0, "0 < |λ| ≤ 1"), (1.0, 4.0, "1 < |λ| ≤ 4"), (4.0, 16.0, "4 < |λ| ≤ 16"),
           (16.0, math.inf, "|λ| > 16"))
"""Bands of |λ| (besides λ = 0, the rich end): balance small next to the task's singular values (near rich) to
large (lazy). Fixed bands, so reports of different folders line up."""


def regime(lam: float | None) -> str:
    """The |λ| band of ``lam`` (:data:`REGIMES`), ``λ = 0``, or ``all λ`` when a table has no λ."""
    if lam is None or (isinstance(lam, float) and math.isnan(lam)):
        return "all λ"
    if lam == 0:
        return "λ = 0"
    return next(name for low, high, name in REGIMES if low < abs(lam) <= high)


def bootstrap(values: np.ndarray, key: str) -> tuple[float, float]:
    """The :data:`LEVEL` percentile-bootstrap interval of the mean of ``values`` (finite, two or more), from
    :data:`RESAMPLES` resamples drawn by a generator seeded with (:data:`SEED`, crc32 of ``key``)."""
    rng = np.random.default_rng([SEED, zlib.crc32(key.encode())])
    means = values[rng.integers(0, len(values), (RESAMPLES, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high)


def _mean_cell(id: str, values: np.ndarray, source: str, key: str) -> Number:
    """One measure over one configuration's seeds: the mean [interval] of the finite values, the interval drawn
    with the generator of ``key`` (the configuration and column, not the section: a run reported alone or
    inside a larger folder gets the same interval)."""
    finite = values[np.isfinite(values)]
    out = {"mean": math.nan, "low": math.nan, "high": math.nan, "n": len(finite), "of": len(values)}
    if not len(finite):
        text = "– (no value)" if not np.isinf(values).any() else "∞ (diverged)"
        return Number(id, text, out, source)
    out["mean"] = float(finite.mean())
    text = f"{out['mean']:.4g}"
    if len(finite) > 1:
        out["low"], out["high"] = bootstrap(finite, key)
        text += f" [{out['low']:.4g}, {out['high']:.4g}]"
    if len(finite) < len(values):
        text += f" ({len(finite)} of {len(values)})"
    return Number(id, text, out, source, out["mean"])


def _config(keys: Sequence[str], values: tuple) -> str:
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in zip(keys, values, strict=True))


def seed_means(rows: pd.DataFrame, keys: Sequence[str], columns: Sequence[str], section: str,
               source: str) -> Table | None:
    """The seed means of ``columns`` per configuration (``keys``), each a mean [95% interval] over the rows
    that share it; None when no column is numeric. ``section`` prefixes the ids, ``source`` names the rows."""
    keys = [k for k in keys if k in rows]
    columns = [c for c in columns if c in rows and c not in keys and _numeric(rows[c])]
    if not columns:
        return None
    body = []
    groups = rows.groupby(keys, sort=True, dropna=False) if keys else [((), rows)]
    for values, part in groups:
        values = values if isinstance(values, tuple) else (values,)
        config = _config(keys, values) or "all"
        row = [cell(f"{section}/means/{config}/{k}", v, source) for k, v in zip(keys, values, strict=True)]
        row.append(cell(f"{section}/means/{config}/seeds", len(part), source))
        for c in columns:
            data = pd.to_numeric(part[c], errors="coerce").to_numpy(dtype=float)
            row.append(_mean_cell(f"{section}/means/{config}/{c}", data, f"{source}: seed mean of {c}",
                                  f"{config}/{c}"))
        body.append(row)
    return Table(f"{section}/means", f"Seed means, {LEVEL:.0%} bootstrap intervals",
                 [label(k) for k in keys] + ["seeds"] + [label(c) for c in columns], body,
                 note=f"mean over the seeds with a finite value [{LEVEL:.0%} percentile-bootstrap interval, "
                      f"{RESAMPLES} resamples, seeded]; (k of n): only k of the n seeds have a value.")


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def agreement_table(networks: pd.DataFrame, section: str, source: str) -> Table | None:
    """Per (theory, regime) of ``networks`` (columns ``theory``, ``err`` and optionally ``lam``: one row per
    network): networks, coverage, max and median error, fraction within the agreement tolerance."""
    if networks.empty:
        return None
    frame = networks.assign(regime=[regime(v) for v in networks["lam"]] if "lam" in networks else "all λ")
    order = {name: i for i, name in enumerate(["λ = 0", *(r[2] for r in REGIMES), "all λ"])}
    body = []
    for (theory, band), part in sorted(frame.groupby(["theory", "regime"]), key=lambda g: (g[0][0], order[g[0][1]])):
        err = part["err"].to_numpy(dtype=float)
        had = err[~np.isnan(err)]
        stem = f"{section}/agreement/{theory}/{band}"
        within = float(np.mean(had <= AGREEMENT_RTOL)) if len(had) else math.nan
        stats = [("networks", len(err)), ("coverage", len(had) / len(err)),
                 ("max", float(had.max()) if len(had) else math.nan),
                 ("median", float(np.median(had)) if len(had) else math.nan), ("within", within)]
        row = [cell(f"{stem}/theory", theory, source), cell(f"{stem}/regime", band, source)]
        row += [cell(f"{stem}/{name}", value, f"{source}: {name} of theory_max_rel_err") for name, value in stats]
        body.append(row)
    return Table(f"{section}/agreement", "Theory agreement",
                 ["theory", "regime", "networks", "coverage", "max relative error", "median relative error",
                  f"within {number(AGREEMENT_RTOL * 100)}%"], body,
                 note="relative error: a network's largest |simulated − predicted| loss over the theory's largest "
                      "loss (theory_max_rel_err); coverage: the fraction of networks a theory predicted; ∞: a "
                      "diverged network.")
