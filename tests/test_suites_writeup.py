"""The one report generator on hand-built tables: each expectation kind's verdict, both ways, and every suite's
declaration renders on a synthetic table of its declared columns (no training)."""

import itertools

import numpy as np
import pandas as pd
import pytest

from lazyrich.suites import SUITES
from lazyrich.suites.spec import Agrees, Constant, Monotone, Predicate, Verdict, columns_read
from lazyrich.suites.writeup import render, verdict_line


def sweep(values: dict[float, float], seeds=(0, 1), column="t") -> pd.DataFrame:
    """One row per (λ, seed); ``column`` = the given value per λ plus a seed offset that averages out."""
    rows = [{"lam": lam, "seed": s, column: v + (0.01 if s else -0.01)} for lam, v in values.items() for s in seeds]
    return pd.DataFrame(rows)


def test_monotone_falls_with_abs_lambda_per_sign_and_names_a_break():
    good = Monotone("t", "falls", by_abs=True).check(sweep({-4: 1.0, -2: 2.0, 0: 9.0, 2: 2.0, 4: 1.0}))
    assert good.holds is True and "1 → " not in good.line and "2 → 1" in good.line
    bad = Monotone("t", "falls", by_abs=True).check(sweep({-4: 1.0, -2: 2.0, 2: 2.0, 4: 3.0}))
    assert bad.holds is False and "NOT falls" in bad.line and bad.markdown().endswith("NOT as predicted.")
    assert "does NOT always fall" in bad.short


def test_monotone_rises_within_groups_and_where_selects_rows():
    table = pd.concat([sweep({-2: 0.1, 2: 0.5}).assign(part="a"), sweep({-2: 0.9, 2: 0.1}).assign(part="b")])
    assert Monotone("t", "rises", where={"part": "a"}).check(table).holds is True
    assert Monotone("t", "rises", where={"part": "b"}).check(table).holds is False
    angles = pd.concat([sweep({-2: 3.0, -1: 4.0}).assign(angle=a) for a in (0.5, 1.0)])
    angles.loc[(angles["angle"] == 1.0) & (angles["lam"] == -2), "t"] = 5.0  # breaks the fall at angle 1 only
    verdict = Monotone("t", "falls", by_abs=True, signs=(-1,), within="angle").check(angles)
    assert verdict.holds is False and "angle = 0.5" in verdict.line and "angle = 1" in verdict.line


def test_monotone_with_one_point_is_not_judged():
    verdict = Monotone("t", "falls", by_abs=True).check(sweep({0: 1.0, 2: 3.0}))
    assert verdict.holds is None and verdict.markdown().endswith("Not judged (too few points).")


def test_agrees_within_tolerance_and_not():
    table = pd.DataFrame({"t": [1.0, 2.0, np.nan], "theory_t": [1.05, 2.0, 3.0]})
    assert Agrees("t", "theory_t", rtol=0.1).check(table).holds is True
    verdict = Agrees("t", "theory_t", rtol=0.01).check(table)
    assert verdict.holds is False and "0.048" in verdict.line
    assert Agrees("t", "missing", rtol=0.1).check(table).holds is None


def test_constant_judges_spread_gap_and_error_on_selected_rows():
    table = pd.DataFrame({"lam": [-2.0, 2.0, 0.0], "f": [3.0, 3.0 + 1e-9, 7.0], "ref": [3.0, 3.0, 3.0],
                          "err": [1e-9, 1e-9, 4.0], "converged": [True, True, False]})
    good = Constant("f", "ref", rtol=1e-3, error="err", where="converged").check(table)
    assert good.holds is True and "2 of 3 rows" in good.line and "the same for every λ" in good.line
    bad = Constant("f", "ref", rtol=1e-3, error="err").check(table)
    assert bad.holds is False and "NOT the same for every λ" in bad.line
    assert Constant("f", "ref", rtol=1e-3, where="converged").check(table.assign(converged=False)).holds is None


def test_predicate_and_the_one_line_verdict():
    yes = Predicate("yes", lambda t: Verdict(True, "fine.", "fine"))
    no = Predicate("no", lambda t: Verdict(len(t) > 5, "short table.", "short"))
    table = pd.DataFrame({"lam": [0.0]})
    suite = SUITES["reversal"]
    assert verdict_line(suite, [yes.check(table)]).endswith("(as docs/theory.md §10 predicts)")
    line = verdict_line(suite, [yes.check(table), no.check(table)])
    assert line.startswith("fine; short") and "(NOT as docs/theory.md §10 predicts)" in line
    assert "too few points" in verdict_line(suite, [Verdict(None, "x", "x")])


def _example(kind: str, example: tuple, i: int):
    if example:
        return example[i % len(example)]
    return bool(i % 2) if kind == "bool" else float(np.sin(i) + 1.5)


def synthetic(suite) -> pd.DataFrame:
    """Every combination of the declared axes' examples; each declared measure and theory column filled."""
    axes = [a.name for a in suite.axes]
    rows = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*(a.example for a in suite.axes))]
    table = pd.DataFrame(rows)
    for j, m in enumerate(suite.measures):
        table[m.column] = [_example(m.kind, m.example, i + j) for i in range(len(table))]
        if m.theory:
            table[m.theory] = [_example(m.kind, m.example, i + j + 1) for i in range(len(table))]
    return table.assign(status="ok", unit="u0")


@pytest.mark.parametrize("name", list(SUITES))
def test_every_suite_declares_itself_and_renders_on_a_synthetic_table(name, tmp_path):
    suite = SUITES[name]
    assert suite.axes and suite.phases and suite.measures and suite.expectations and suite.figures
    declared = {a.name for a in suite.axes} | {m.column for m in suite.measures} | {
        m.theory for m in suite.measures if m.theory}
    assert columns_read(suite.expectations) <= declared | {"lam"}, "an expectation reads an undeclared column"
    table = synthetic(suite)
    report = render(suite, table, tmp_path, figures=False)
    text = report.markdown
    assert text.count("\n- ") >= len(suite.expectations)  # one outcome line per expectation at least
    assert sum(line.endswith(("As predicted.", "NOT as predicted.", "Not judged (too few points).")) for line in
               text.splitlines()) == len(suite.expectations)
    for m in suite.measures:
        assert f"`{m.column}`" in text
    assert report.verdict.endswith("predicts)") and set(report.columns) <= set(table.columns)
    failed = pd.concat([table, table.head(1).assign(status="failed")])
    assert render(suite, failed, tmp_path, figures=False).markdown == text  # failed rows stay out of the outcome


@pytest.mark.parametrize("name", list(SUITES))
@pytest.mark.slow
def test_every_suite_draws_its_table_figures_from_a_synthetic_table(name, tmp_path):
    suite = SUITES[name]
    report = render(suite, synthetic(suite), tmp_path)  # no runs/: the curve figures have nothing to draw
    assert report.figures, f"{name} drew no figure from its table"
    for path in report.figures:
        assert path.parent == tmp_path and path.stat().st_size > 1000
    assert {p.name for p in report.figures} == {p.name for p in tmp_path.glob("*.png")}


def with_declared(suite, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` plus every declared measure and theory column it lacks, as NaN (columns the test ignores)."""
    names = [c for m in suite.measures for c in (m.column, m.theory) if c]
    return table.assign(**{c: np.nan for c in names if c not in table})


def _reversal_table(success_at_zero: bool, escapes: float) -> pd.DataFrame:
    table = pd.DataFrame({"lam": [-2.0, 0.0, 2.0], "success": [True, success_at_zero, True],
                          "exact_saddle": [0.0, 1.0, 0.0], "escape_success": [np.nan, escapes, np.nan], "status": "ok"})
    return with_declared(SUITES["reversal"], table)


def test_reversal_verdict_allows_a_predicted_escape_and_flags_an_unpredicted_one(tmp_path):
    suite = SUITES["reversal"]
    stall = render(suite, _reversal_table(False, 0.0), tmp_path, figures=False)
    assert "stalled for λ ∈ {0}. As predicted." in stall.markdown and "NOT" not in stall.verdict
    escaped = render(suite, _reversal_table(True, 1.0), tmp_path, figures=False)  # the escape model saw it coming
    assert "reversed for λ ∈ {-2, 0, 2}, stalled for λ ∈ {}. As predicted." in escaped.markdown
    surprise = render(suite, _reversal_table(True, 0.0), tmp_path, figures=False)
    assert "stalled for λ ∈ {}. NOT as predicted." in surprise.markdown and "(NOT as" in surprise.verdict


def test_architecture_verdict_names_the_regime_that_breaks_the_prediction(tmp_path):
    kd = {"funnel": (0.5, 0.2, 0.001), "square": (0.001, 0.1, 0.001), "inverted_funnel": (0.001, 0.15, 0.3)}
    rows = [{"arch": a, "lam": lam, "seed": 0, "kernel_distance_final": v, "status": "ok"}
            for a, vals in kd.items() for lam, v in zip((-8.0, 0.0, 8.0), vals, strict=True)]
    suite = SUITES["architecture"]
    good = render(suite, with_declared(suite, pd.DataFrame(rows)), tmp_path, figures=False)
    assert "funnel rich/lazy, square lazy/lazy, inverted_funnel lazy/rich (as docs/theory.md §6" in good.verdict
    rows[3]["kernel_distance_final"] = 0.09  # square at λ = −8 moves as far as at λ = 0: rich, not lazy
    bad = render(suite, with_declared(suite, pd.DataFrame(rows)), tmp_path, figures=False)
    assert "square rich/lazy" in bad.verdict and "NOT as" in bad.verdict and "NOT as predicted." in bad.markdown
