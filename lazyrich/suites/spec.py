"""What a suite declares: its sweep axes, phases, measures, expectations and figures.

A suite states *what* it measures and *what the theory expects*; :mod:`lazyrich.suites.writeup` turns any
such statement and a suite table into ``summary.md``. An expectation is a predicate over the suite table
(finished rows only) that returns a :class:`Verdict`: one Markdown line and whether the measured outcome is
the one docs/theory.md predicts. Four kinds cover the suites:

- :class:`Monotone`: the seed-mean of a column rises or falls along an axis (optionally with |λ|, per sign);
- :class:`Agrees`: a measured column matches its theory column within a relative tolerance;
- :class:`Constant`: a column is the same across the sweep and equal to a reference column;
- :class:`Predicate`: any suite-specific check written as a function of the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from lazyrich.results.curves import Curves

__all__ = [
    "Agrees",
    "Axis",
    "Constant",
    "Expectation",
    "Figure",
    "Measure",
    "Monotone",
    "Predicate",
    "Verdict",
    "columns_read",
    "measure_columns",
]

Figure = Callable[[pd.DataFrame, pd.DataFrame, Path], "Path | None"]
"""A figure: (finished rows, long metrics of the finished units, suite folder) → the PNG written, or None."""


@dataclass(frozen=True)
class Axis:
    """A sweep axis of the suite table (a column that identifies a configuration) and example values."""

    name: str
    meaning: str
    example: tuple[Any, ...] = (-2.0, 0.0, 2.0)


@dataclass(frozen=True)
class Measure:
    """A measured column of the suite table, what it means, and its theory column (None: no prediction).

    ``kind`` is ``float``, ``bool`` or ``text`` (``example`` then lists the values a text column takes);
    ``headline``: printed by ``bench`` and shown in summary.md's table (every measure is in suite.csv).

    ``of`` (optional) computes the column from curves: (curves of phase ``phase``, the unit's params) → (B,),
    batched (see :mod:`lazyrich.results.measures`). :func:`measure_columns` applies it to the simulation for
    ``column`` and to the theory's prediction for ``theory``: one definition for both. A measure without
    ``of`` is filled by the suite itself (a value no curve holds, such as a verdict on the weights).
    """

    column: str
    meaning: str
    theory: str | None = None
    kind: str = "float"
    example: tuple[Any, ...] = ()
    headline: bool = True
    of: Callable[[Curves, Mapping[str, Any]], Any] | None = None
    phase: int = -1


def measure_columns(measures: Sequence[Measure], simulation: Sequence[Curves],
                    theory: Sequence[Curves | None], params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The columns of every measure with ``of``: from ``simulation[phase]``, and from ``theory[phase]`` into
    the theory column where a theory ran (one :class:`~lazyrich.results.curves.Curves` per phase each)."""
    out: dict[str, np.ndarray] = {}
    for m in (m for m in measures if m.of is not None):
        sources = {m.column: simulation[m.phase]}
        if m.theory is not None and theory[m.phase] is not None:
            sources[m.theory] = theory[m.phase]
        for column, curves in sources.items():
            value = m.of(curves, params)
            out[column] = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    return out


@dataclass(frozen=True)
class Verdict:
    """One measured outcome against the theory: ``holds`` (None when the table is too small to judge), the
    Markdown ``line`` stating both, and ``short``, a few words for the suite's one-line verdict."""

    holds: bool | None
    line: str
    short: str

    def markdown(self) -> str:
        """The outcome line, ending in the verdict: as predicted, NOT as predicted, or not judged."""
        end = {True: "As predicted.", False: "NOT as predicted.", None: "Not judged (too few points)."}
        return f"- {self.line} {end[self.holds]}"


class Expectation(Protocol):
    """What the theory predicts about a suite table, as a checkable predicate."""

    def check(self, table: pd.DataFrame) -> Verdict: ...


def _rows(table: pd.DataFrame, where: dict[str, Any] | None) -> pd.DataFrame:
    for column, value in (where or {}).items():
        table = table[table[column] == value]
    return table


def _where_text(where: dict[str, Any] | None) -> str:
    return "".join(f" ({k} = {v})" for k, v in (where or {}).items())


def _steps(values: np.ndarray, direction: str) -> bool:
    d = np.diff(values)
    return bool((d < 0).all() if direction == "falls" else (d > 0).all())


@dataclass(frozen=True)
class Monotone:
    """The seed-mean of ``column`` ``falls`` or ``rises`` strictly along ``along``, within each value of
    ``within`` (e.g. each angle). ``by_abs``: along |λ|, separately for λ > 0 and λ < 0 (``signs``), λ = 0
    left out. ``where`` selects rows (e.g. {"part": "new_feature"}). Fewer than two points: not judged."""

    column: str
    direction: str = "falls"
    along: str = "lam"
    by_abs: bool = False
    signs: tuple[int, ...] = (1, -1)
    within: str | None = None
    where: dict[str, Any] | None = None

    def _series(self, part: pd.DataFrame) -> list[tuple[str, pd.Series]]:
        mean = part.groupby(self.along)[self.column].mean()
        if not self.by_abs:
            return [(f"against {self.along}", mean.sort_index())]
        out = []
        for sign in self.signs:
            side = mean[np.sign(mean.index.to_numpy(dtype=float)) == sign]
            out.append((f"{self.along} {'>' if sign > 0 else '<'} 0, as |{self.along}| grows",
                        side.sort_index(key=np.abs)))
        return out

    def check(self, table: pd.DataFrame) -> Verdict:
        rows = _rows(table, self.where)
        groups = rows.groupby(self.within) if self.within else [(None, rows)]
        texts, holds = [], []
        for value, part in groups:
            for label, series in self._series(part):
                if len(series) < 2 or series.isna().any():
                    continue
                ok = _steps(series.to_numpy(dtype=float), self.direction)
                holds.append(ok)
                at = f"{self.within} = {value:.3g}, " if self.within else ""
                texts.append(f"{at}{label}: {' → '.join(f'{v:.3g}' for v in series)}"
                             f" ({self.direction if ok else 'NOT ' + self.direction})")
        what = f"`{self.column}`{_where_text(self.where)} {self.direction}"
        if not holds:
            return Verdict(None, f"{what}: fewer than two points to compare.", f"{self.column}: not judged")
        verdict = all(holds)
        return Verdict(verdict, f"{what}; measured {'; '.join(texts)}.",
                       f"{self.column} {self.direction if verdict else 'does NOT always ' + self.direction[:-1]}")


@dataclass(frozen=True)
class Agrees:
    """Measured ``column`` within ``rtol`` (relative to |theory|) of ``theory`` in every finished row
    where both are finite."""

    column: str
    theory: str
    rtol: float
    where: dict[str, Any] | None = None

    def check(self, table: pd.DataFrame) -> Verdict:
        rows = _rows(table, self.where)
        if self.theory not in rows:
            return Verdict(None, f"`{self.column}`: no theory column `{self.theory}`.", f"{self.column}: no theory")
        both = rows[[self.column, self.theory]].astype(float).dropna()
        if not len(both):
            return Verdict(None, f"`{self.column}`: no finite pair to compare.", f"{self.column}: not judged")
        gap = float(((both[self.column] - both[self.theory]).abs()
                     / both[self.theory].abs().clip(lower=1e-12)).max())
        ok = gap <= self.rtol
        return Verdict(ok, f"`{self.column}`{_where_text(self.where)} against `{self.theory}`: max relative gap "
                           f"{gap:.2g} (tolerance {self.rtol:g}).", f"{self.column} within {gap:.2g} of theory")


@dataclass(frozen=True)
class Constant:
    """``column`` is the same for every configuration and equals ``reference``: its spread and its largest
    gap to ``reference`` (and the largest value of the ``error`` column, if given) are at most
    ``rtol`` × max(|mean reference|, 1). ``where`` is a boolean column selecting the rows judged."""

    column: str
    reference: str
    rtol: float
    error: str | None = None
    where: str | None = None

    def check(self, table: pd.DataFrame) -> Verdict:
        rows = table[table[self.where].astype(bool)] if self.where else table
        judged = f"{len(rows)} of {len(table)} rows{f' with `{self.where}`' if self.where else ''}"
        if not len(rows):
            return Verdict(None, f"`{self.column}`: {judged}.", f"{self.column}: not judged")
        ref = float(rows[self.reference].mean())
        spread = float(rows[self.column].max() - rows[self.column].min())
        gap = float((rows[self.column] - rows[self.reference]).abs().max())
        err = float(rows[self.error].max()) if self.error else 0.0
        tol = self.rtol * max(abs(ref), 1.0)
        ok = spread <= tol and gap <= tol and err <= tol
        same = "the same for every λ" if ok else "NOT the same for every λ"
        extra = f", max `{self.error}` = {err:.3g}" if self.error else ""
        return Verdict(ok, f"{judged}: `{self.column}` spans {spread:.3g} (`{self.reference}` {ref:.4g}, max gap "
                           f"{gap:.3g}{extra}; tolerance {tol:.3g}): {same}.",
                       f"{self.column} spread {spread:.2g} around {ref:.4g} ({judged})")


@dataclass(frozen=True)
class Predicate:
    """A suite-specific expectation: ``test(table)`` returns the :class:`Verdict` itself."""

    name: str
    test: Callable[[pd.DataFrame], Verdict]

    def check(self, table: pd.DataFrame) -> Verdict:
        return self.test(table)


def columns_read(expectations: Sequence[Any]) -> set[str]:
    """The table columns the declarative expectations read (``Predicate`` aside: it declares none)."""
    out: set[str] = set()
    for e in expectations:
        for name in ("column", "theory", "reference", "error", "along", "within"):
            value = getattr(e, name, None)
            if isinstance(value, str):
                out.add(value)
        where = getattr(e, "where", None)
        out |= {where} if isinstance(where, str) else set(where or {})
    return out
