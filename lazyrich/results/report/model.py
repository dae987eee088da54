"""What a report holds, before it is HTML: sections of verdicts, figures, tables and texts, every value in them a
:class:`Number` that says what the page shows, the raw value and where it came from.

The same model is built to write a report and to check one (:mod:`lazyrich.results.report.command`): building it
from a folder twice gives the same numbers, so a number that was edited in the page no longer matches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Figure", "Number", "Report", "Section", "Table", "cell", "jsonable", "plain", "rows_table"]


def jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it and give back unchanged: NaN → None, ±inf → "inf"/"-inf", numpy scalars and
    arrays → Python numbers and lists, mappings and sequences element by element."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def plain(text: str) -> str:
    """The text a browser shows for a Number's ``text``: Markdown code marks dropped, whitespace collapsed."""
    return " ".join(text.replace("`", "").split())


@dataclass(frozen=True)
class Number:
    """One value the report shows: its stable ``id`` (a path such as ``reversal/means/λ=2/time_to_reverse``),
    the ``text`` on the page, the raw ``value`` (JSON-able, :func:`jsonable`) and its ``source`` (the files and
    the computation it came from). ``sort``: the number a table column sorts by (None: sort by text)."""

    id: str
    text: str
    value: Any
    source: str
    sort: float | None = None

    def record(self) -> dict[str, Any]:
        """The JSON record embedded in the page for ``--check``."""
        return {"text": self.text, "value": jsonable(self.value), "from": self.source}


def cell(id: str, value: Any, source: str, digits: int = 4) -> Number:
    """A table cell of one value: a number to ``digits`` significant digits (NaN as –, ±∞), a bool, or text."""
    if isinstance(value, bool | np.bool_):
        return Number(id, str(bool(value)), bool(value), source, float(bool(value)))
    if isinstance(value, int | float | np.number):
        x = float(value)
        text = "–" if math.isnan(x) else ("∞" if x > 0 else "-∞") if math.isinf(x) else f"{x:.{digits}g}"
        return Number(id, text, value, source, None if math.isnan(x) else x)
    return Number(id, "–" if value is None else str(value), value, source)


@dataclass
class Table:
    """A table: ``columns`` (header words), ``rows`` (one Number per cell), whether it sorts by a click, and a
    ``note`` under it."""

    id: str
    title: str
    columns: list[str]
    rows: list[list[Number]]
    note: str = ""
    sortable: bool = True


@dataclass
class Figure:
    """A figure file shown inline: its ``name`` (path in the folder), ``mime`` type and bytes, and its sha256 (a
    Number: shown in the caption, checked against the file)."""

    name: str
    mime: str
    data: bytes
    digest: Number


@dataclass
class Section:
    """One study of the folder: a run (a unit folder) or a suite (a folder with ``suite.csv``)."""

    id: str
    title: str
    kind: str
    path: str
    verdicts: list[tuple[bool | None, Number]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    texts: list[tuple[str, Number]] = field(default_factory=list)
    problems: list[Number] = field(default_factory=list)
    size: Number = field(default_factory=lambda: Number("", "0", 0, ""))


@dataclass
class Report:
    """The report of a folder: its sections, the sentences saying how the numbers were made (``method``), an
    overview table, the studies left out (``skipped``) and the provenance of the writer (versions, commit,
    machine: the one part ``--check`` does not recompute, since it describes who wrote the page)."""

    folder: str
    sections: list[Section]
    method: list[Number]
    overview: Table | None = None
    provenance: dict[str, str] = field(default_factory=dict)
    skipped: list[Number] = field(default_factory=list)

    def numbers(self) -> dict[str, Number]:
        """Every Number on the page by id (a repeated id is a bug: each value has one place)."""
        found: dict[str, Number] = {}
        for number in self._all():
            if number.id in found:
                raise ValueError(f"report: two values share the id {number.id!r}; name each one once.")
            found[number.id] = number
        return found

    def _all(self):
        yield from self.method
        yield from (n for row in (self.overview.rows if self.overview else []) for n in row)
        yield from self.skipped
        for s in self.sections:
            yield from (n for _, n in s.verdicts)
            yield from (f.digest for f in s.figures)
            yield from (n for t in s.tables for row in t.rows for n in row)
            yield from (n for _, n in s.texts)
            yield from s.problems  # s.size is shown in the overview


def rows_table(rows: pd.DataFrame, columns: Sequence[str], sid: str, what: str, title: str, source: str,
               note: str = "") -> Table:
    """The rows of a DataFrame ``rows`` themselves (``columns`` present), one :func:`cell` each, sortable."""
    from lazyrich.plots.labels import label  # local: the plots package imports matplotlib

    columns = [c for c in dict.fromkeys(columns) if c in rows]
    body = [[cell(f"{sid}/{what}/{i}/{c}", row[c], source) for c in columns]
            for i, (_, row) in enumerate(rows.iterrows())]
    return Table(f"{sid}/{what}", title, [label(c) for c in columns], body, note=note)
