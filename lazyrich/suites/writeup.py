"""The one report generator of every suite: figures, and the summary.md body, from the suite's declaration.

:func:`render` writes what was measured (the protocol and each measure beside its theory column), the table,
the suite's extra sections, then the outcome: the theory's prediction and one line per declared expectation,
each ending "As predicted." or "NOT as predicted.". The one-line verdict joins the expectations' short forms.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lazyrich.results.report import SuiteView
from lazyrich.results.tables import markdown_table
from lazyrich.suites.common import Report, Suite, load_frames, ok_rows
from lazyrich.suites.spec import Verdict

__all__ = ["measures_table", "outcome", "render", "report_view", "verdict_line"]


def measures_table(suite: Suite) -> str:
    """The Markdown table of the suite's axes and measures: column, meaning, theory column."""
    rows = [(f"`{a.name}`", a.meaning, "") for a in suite.axes]
    rows += [(f"`{m.column}`", m.meaning, f"`{m.theory}`" if m.theory else "–") for m in suite.measures]
    return markdown_table(pd.DataFrame(rows, columns=["column", "meaning", "theory"]))


def outcome(suite: Suite, ok: pd.DataFrame) -> list[Verdict]:
    """Every declared expectation checked on the finished rows ``ok``."""
    return [e.check(ok) for e in suite.expectations]


def report_view(suite: Suite) -> SuiteView:
    """What ``lazyrich report`` shows of ``suite``: its headline columns, its key, and its expectations checked
    on the finished rows (each verdict's outcome and line)."""

    def verdicts(rows: pd.DataFrame) -> list[tuple[bool | None, str]]:
        return [(v.holds, v.line) for v in outcome(suite, ok_rows(rows))]

    return SuiteView(suite.columns, suite.key, verdicts, suite.description)


def verdict_line(suite: Suite, verdicts: list[Verdict]) -> str:
    """The suite's one-line verdict: each expectation's short form, then whether all hold."""
    judged = [v.holds for v in verdicts if v.holds is not None]
    ok = bool(judged) and all(judged)
    reason = "as" if ok else "NOT as" if judged else "too few points to judge what"
    return "; ".join(v.short for v in verdicts) + f" ({reason} docs/theory.md {suite.section} predicts)"


def _figures(suite: Suite, table: pd.DataFrame, ok: pd.DataFrame, folder: Path) -> list[Path]:
    if not suite.figures:
        return []
    frames = load_frames(folder, table)
    made = [figure(ok, frames, folder) for figure in suite.figures]
    return [p for p in made if p is not None]


def render(suite: Suite, table: pd.DataFrame, folder: Path, figures: bool = True) -> Report:
    """Figures (when ``figures``) and the write-up of ``table``, the suite's suite.csv, from its declaration."""
    ok = ok_rows(table)
    verdicts = outcome(suite, ok)
    shown = [c for c in suite.columns if c in ok and ok[c].notna().any()]
    lines = [
        f"## {suite.title or suite.name.capitalize()}",
        "",
        suite.protocol,
        "",
        f"Phases: {', '.join(suite.phases)}. Columns:",
        "",
        measures_table(suite),
        "",
        markdown_table(ok[shown]),
        "",
    ]
    for section in suite.sections:
        lines += section(ok, folder)
    lines += [f"### Outcome (measured) against docs/theory.md {suite.section}", "",
              f"The Theory page predicts: {suite.prediction}", ""]
    lines += [v.markdown() for v in verdicts]
    for note in suite.notes:
        lines += note(ok)
    paths = _figures(suite, table, ok, folder) if figures else []
    return Report("\n".join(lines) + "\n", paths, verdict_line(suite, verdicts), list(suite.columns))
