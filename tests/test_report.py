"""lazyrich report: one self-contained HTML page for a run, a suite or a folder of them, and --check, which
recomputes every value on it from the folder's verified files (and fails on an edited one)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lazyrich.results.report import build, check, discover, stats, write
from lazyrich.results.report.html import NUMBERS_ID, read, render
from lazyrich.results.report.model import Number, Report, Section, Table, cell, jsonable, plain
from lazyrich.store import write_run
from lazyrich.store.integrity import MANIFEST

# --- the parts ---------------------------------------------------------------------------------------------


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    low, high = stats.bootstrap(values, "a/means/lam=1/x")
    assert (low, high) == stats.bootstrap(values, "a/means/lam=1/x")  # the same folder, the same interval
    assert low < values.mean() < high and values.min() <= low and high <= values.max()
    assert (low, high) != stats.bootstrap(values, "a/means/lam=2/x")  # each configuration its own draw


def test_seed_means_mark_missing_and_diverged_seeds():
    rows = pd.DataFrame({"lam": [0.0, 0.0, 2.0, 2.0, 4.0], "seed": [0, 1, 0, 1, 0],
                         "t_rev": [math.nan, math.nan, 1.0, 3.0, math.inf]})
    table = stats.seed_means(rows, ["lam"], ["t_rev"], "s", "rows.csv")
    shown = {row[0].text: row[-1] for row in table.rows}
    assert shown["0"].text == "– (no value)" and shown["0"].value["n"] == 0
    assert shown["2"].text.startswith("2 [") and shown["2"].value["mean"] == 2.0 and shown["2"].value["of"] == 2
    assert shown["4"].text == "∞ (diverged)"
    assert [row[1].text for row in table.rows] == ["2", "2", "1"]  # seeds per configuration


def test_regimes_are_bands_of_abs_lambda():
    assert [stats.regime(v) for v in (0.0, -0.5, 1.0, -3.0, 16.0, 17.0, None)] == [
        "λ = 0", "0 < |λ| ≤ 1", "0 < |λ| ≤ 1", "1 < |λ| ≤ 4", "4 < |λ| ≤ 16", "|λ| > 16", "all λ"]


def test_agreement_counts_coverage_and_errors_per_theory_and_regime():
    nets = pd.DataFrame({"theory": ["exact"] * 4 + ["none"], "lam": [0.0, 0.0, 2.0, 2.0, 2.0],
                         "err": [0.01, 0.03, 0.2, math.nan, math.nan]})
    table = stats.agreement_table(nets, "s", "summary.csv")
    rows = {(r[0].text, r[1].text): {c: n.value for c, n in zip(table.columns, r, strict=True)} for r in table.rows}
    zero, two = rows[("exact", "λ = 0")], rows[("exact", "1 < |λ| ≤ 4")]
    assert zero["networks"] == 2 and zero["coverage"] == 1.0 and zero["max relative error"] == 0.03
    assert zero["median relative error"] == pytest.approx(0.02) and zero["within 5%"] == 1.0
    assert two["coverage"] == 0.5 and two["within 5%"] == 0.0
    assert rows[("none", "1 < |λ| ≤ 4")]["coverage"] == 0.0


def test_values_survive_json_and_the_page_gives_back_what_it_shows():
    assert jsonable({"a": [np.float64(1.5), math.nan, -math.inf, np.int64(3)]}) == {"a": [1.5, None, "-inf", 3]}
    section = Section("x", "Run x", "run", "x",
                      verdicts=[(True, Number("x/verdict/0", "`loss` < 1 </script>", 1, "here"))],
                      tables=[Table("x/t", "T", ["λ"], [[cell("x/t/0", -2.0, "here")]])])
    page = render(Report("x", [section], [Number("method/0", "how", 0, "code")]))
    seen = read(page)
    assert seen.shown == {"x/verdict/0": "loss < 1 </script>", "x/t/0": "-2", "method/0": "how"}
    assert plain("`loss` < 1 </script>") == seen.shown["x/verdict/0"]
    assert seen.records["x/t/0"] == {"text": "-2", "value": -2.0, "from": "here"}
    assert "http" not in re.sub(r'xmlns="[^"]*"', "", page)  # nothing to fetch


# --- a run folder -------------------------------------------------------------------------------------------

RUN = {
    "task": {"name": "random_regression", "n_in": 2, "n_out": 2, "seed": 0},
    "init": {"kind": "balanced", "lam": [-2.0, 0.0, 2.0], "scale": 0.1},
    "trainer": {"lr": 0.02, "t_max": 2.0, "n_log": 11, "n_matrix": 2, "progress": False},
    "theory": {"name": "exact"},
    "seed": [0, 1, 2],
}


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    from lazyrich.experiment import run_experiment

    folder = tmp_path_factory.mktemp("report-run") / "run"
    run_experiment(RUN, folder)
    return folder


def _fresh(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    return copy


def _edit_shown(page: Path, ident: str, new: str) -> None:
    """Replace the text of the element ``data-n="<ident>"`` (the visible number only, not the record)."""
    text = page.read_text(encoding="utf-8")
    pattern = re.compile(r'(data-n="' + re.escape(ident) + r'"[^>]*>)([^<]*)(<)')
    assert pattern.search(text), ident
    page.write_text(pattern.sub(lambda m: m[1] + new + m[3], text, count=1), encoding="utf-8")


def test_a_run_report_shows_verdicts_figure_means_agreement_and_config(run_folder, tmp_path):
    folder = _fresh(run_folder, tmp_path)
    page = write(folder)
    assert page == folder / "report.html"
    seen = read(page.read_text(encoding="utf-8"))
    assert seen.shown["./verdict/networks"] == "9 networks trained: 9 finished, 0 diverged."
    assert seen.shown["./verdict/theory"].startswith("Theory exact: within 5% of the simulated loss for 9 of the 9")
    assert set(seen.figures) == {"./figure/curves.png"}  # the run's figure, inline
    means = [i for i in seen.shown if i.startswith("./means/")]
    assert "./means/lam=0,scale=0.1,lr=0.02/seeds" in means
    assert re.fullmatch(r"\S+ \[\S+, \S+\]", seen.shown["./means/lam=2,scale=0.1,lr=0.02/loss_final"])
    assert seen.shown["./agreement/exact/λ = 0/coverage"] == "1"
    assert "lam:" in seen.shown["./text/config.yaml"] and "theory=exact" in seen.shown["./text/theory.txt"]
    assert "./networks/8/loss_final" in seen.shown  # nine networks: each listed
    assert check(folder) == ([], len(seen.records))


def test_check_names_an_edited_number_and_nothing_else(run_folder, tmp_path):
    folder = _fresh(run_folder, tmp_path)
    page = write(folder)
    ident = "./means/lam=2,scale=0.1,lr=0.02/theory_max_rel_err"
    _edit_shown(page, ident, "0.0001 [0.0001, 0.0001]")
    problems, _ = check(folder)
    assert len(problems) == 1 and problems[0].startswith(f"{ident}: the page shows '0.0001 [0.0001, 0.0001]'")


def test_check_fails_on_an_edited_record_a_swapped_figure_and_a_changed_folder(run_folder, tmp_path):
    folder = _fresh(run_folder, tmp_path)
    page = write(folder)
    text = page.read_text(encoding="utf-8")
    blob = re.search(rf'<script type="application/json" id="{NUMBERS_ID}">(.*?)</script>', text, re.S)[1]
    records = json.loads(blob)
    records["numbers"]["./networks/0/loss_final"]["value"] = 123.0
    page.write_text(text.replace(blob, json.dumps(records, ensure_ascii=False)), encoding="utf-8")
    assert [p.split(":")[0] for p in check(folder)[0]] == ["./networks/0/loss_final"]

    write(folder)
    text = page.read_text(encoding="utf-8")
    start = text.index('src="data:image/png;base64,') + len('src="data:image/png;base64,')
    page.write_text(text[:start] + "AAAA" + text[start + 4:], encoding="utf-8")
    assert [p.split(":")[0] for p in check(folder)[0]] == ["./figure/curves.png"]

    write(folder)
    (folder / "curves.png").write_bytes(b"not the figure")  # the folder itself changed: no longer verified
    problems, _ = check(folder)
    assert problems[0].startswith("skipped/.: missing from the page (.: integrity.verify_unit gives '.: curves.png "
                                  "has 14 bytes")
    assert "./verdict/networks: on the page, but the folder gives no such value" in problems


def test_the_command_line_writes_and_checks(run_folder, tmp_path, capsys):
    from lazyrich.cli import main

    folder = _fresh(run_folder, tmp_path)
    out = tmp_path / "elsewhere" / "r.html"
    with pytest.raises(SystemExit) as done:
        main(["report", str(folder), "--out", str(out)])
    assert done.value.code == 0 and out.is_file() and not (folder / "report.html").exists()
    with pytest.raises(SystemExit) as done:
        main(["report", str(folder), "--check", "--report", str(out)])
    assert done.value.code == 0 and "match" in capsys.readouterr().out
    _edit_shown(out, "./verdict/networks", "9 networks trained: 9 finished, 1 diverged.")
    with pytest.raises(SystemExit) as done:
        main(["report", str(folder), "--check", "--report", str(out)])
    printed = capsys.readouterr()
    assert done.value.code == 1 and "DIFFERS ./verdict/networks: the page shows" in printed.out
    with pytest.raises(SystemExit, match="no report at"):
        main(["report", str(folder), "--check"])


def test_discovery_finds_runs_and_suites_in_any_folder_of_them(tmp_path):
    for name in ("a/run1", "a/run2", "b/suite/runs/u1", "c/.hydra"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "a/run1/DONE").write_text("")
    (tmp_path / "a/run2/FAILED").write_text("boom")
    (tmp_path / "b/suite/suite.csv").write_text("lam,status\n")
    (tmp_path / "b/suite/runs/u1/DONE").write_text("")
    assert [(k, p.relative_to(tmp_path).as_posix()) for k, p in discover(tmp_path)] == [
        ("run", "a/run1"), ("run", "a/run2"), ("suite", "b/suite")]
    with pytest.raises(FileNotFoundError, match="no run or suite"):
        build(tmp_path / "c")
    (suite,) = build(tmp_path / "b").sections  # a suite with no finished unit yet: an empty section, the unit named
    assert suite.kind == "suite" and suite.size.text == "0" and not suite.tables
    assert [n.text for n in suite.problems] == [f"unit u1 left out: {MANIFEST} is missing (written by an older "
                                                "lazyrich, or the unit was never finished)"]


def test_an_unfinished_run_is_listed_as_left_out(run_folder, tmp_path):
    atlas = tmp_path / "atlas"
    shutil.copytree(run_folder, atlas / "good")
    shutil.copytree(run_folder, atlas / "killed")
    (atlas / "killed" / "DONE").unlink()
    report = build(atlas)
    assert [s.path for s in report.sections] == ["good"]
    assert [n.text for n in report.skipped] == ["killed: unfinished: no DONE marker (the run was killed, failed, or "
                                                "is still being written)"]


@pytest.mark.slow
def test_a_batch_of_4096_networks_reports_in_seconds_and_megabytes(tmp_path):
    """A run folder of B = 4096 summaries (64 λ × 64 seeds) and a figure: well inside 60 s and 15 MB."""
    import time

    import matplotlib.pyplot as plt

    from lazyrich import plots

    rng = np.random.default_rng(0)
    lam, seed = (a.ravel() for a in np.meshgrid(np.arange(-32.0, 32.0), np.arange(64), indexing="ij"))
    err = rng.uniform(0, 0.03, len(lam))
    summary = pd.DataFrame({"net": np.arange(len(lam)), "lam": lam, "scale": 0.1, "lr": 0.01, "seed": seed,
                            "status": "ok", "loss_final": rng.lognormal(size=len(lam)), "theory_max_rel_err": err,
                            "theory_loss_final": rng.lognormal(size=len(lam))})
    folder = tmp_path / "b4096"
    fig, ax = plt.subplots()
    ax.plot(lam, err)
    plots.save(fig, folder / "curves.png")
    (folder / "theory.txt").write_text("theory=exact\n")
    write_run(folder, None, summary)
    start = time.perf_counter()
    page = write(folder)
    seconds = time.perf_counter() - start
    assert seconds < 60 and page.stat().st_size < 15e6
    assert check(folder)[0] == []


@pytest.mark.slow
def test_a_suite_report_has_its_verdicts_figures_rows_and_the_units_left_out(tmp_path):
    """The reversal suite at a tiny size, one unit of which failed as the runner leaves one (FAILED, a row)."""
    from test_suites_reversal import TINY, run

    from lazyrich.suites import report_views

    table = run(tmp_path, "reversal", TINY)
    (tmp_path / "runs" / "deadbeef0000").mkdir()
    (tmp_path / "runs" / "deadbeef0000" / "FAILED").write_text("Traceback …\nRuntimeError: boom\n")
    failed = {"suite": "reversal", "lam": 4.0, "seed": 0, "unit": "deadbeef0000", "status": "failed",
              "error": "RuntimeError: boom"}
    pd.concat([table, pd.DataFrame([failed])], ignore_index=True).to_csv(tmp_path / "suite.csv", index=False)
    views = report_views()
    seen = read(write(tmp_path, suites=views).read_text(encoding="utf-8"))
    assert seen.shown["./verdict/0"] == "Measured: reversed for λ ∈ {-2, 2}, stalled for λ ∈ {0}."
    assert seen.shown["./unit/deadbeef0000"] == ("unit deadbeef0000 left out: failed (lam = 4.0, seed = 0): "
                                                  "RuntimeError: boom")
    assert set(seen.figures) == {"./figure/curves.png", "./figure/sweep.png"}
    assert seen.shown["./means/lam=0/time_to_reverse"] == "– (no value)"  # λ = 0 never reverses
    assert seen.shown["./means/lam=2/seeds"] == "2" and seen.shown["./rows"] == "6"
    assert seen.shown["./agreement/exact/λ = 0/networks"] == "2"
    assert check(tmp_path, suites=views)[0] == []
    without = check(tmp_path)[0]  # a check without the suite's view cannot recompute its verdicts
    assert "./verdict/0: on the page, but the folder gives no such value" in without
