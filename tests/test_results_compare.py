"""lazyrich compare: two tiny runs side by side — tables (CSV + Markdown, printed) and an overlay PNG."""

import numpy as np
import pandas as pd
import pytest

from lazyrich.cli import main as cli_main
from lazyrich.experiment import run_experiment
from lazyrich.results.compare import compare


def tiny_run(run_dir, lams, lr, scale=0.1, seed=0):
    cfg = {
        "task": {"name": "random_regression", "n_in": 3, "n_out": 3},
        "init": {"kind": "balanced", "lam": lams, "scale": scale},
        "model": {"depth": 2},
        "trainer": {"lr": lr, "t_max": 2.0, "n_log": 11, "n_matrix": 2, "progress": False},
        "theory": {"name": "exact"},
        "seed": seed,
        "device": "cpu",
    }
    return run_experiment(cfg, run_dir, plot=False)


def test_compare_two_runs_writes_side_by_side_tables_and_an_overlay(tmp_path, capsys):
    a = tiny_run(tmp_path / "runA", [0.0, 1.0], 0.05)
    b = tiny_run(tmp_path / "runB", [0.0, 1.0], 0.02)
    # A suite table in one of them: compared per configuration too.
    pd.DataFrame(
        {
            "suite": "reversal",
            "lam": [0.0, 1.0],
            "seed": 0,
            "success": [False, True],
            "time_to_reverse": [float("nan"), 1.5],
            "status": "ok",
        }
    ).to_csv(tmp_path / "runA" / "suite.csv", index=False)
    out = tmp_path / "cmp"
    cli_main(
        ["compare", str(tmp_path / "runA"), str(tmp_path / "runB"), "--out", str(out), "--metric", "loss"]
    )
    printed = capsys.readouterr().out
    for name in ("final.csv", "final.md", "curves.png", "suite_reversal.csv", "suite_reversal.md"):
        assert (out / name).exists() and (out / name).stat().st_size > 0, name
    final = pd.read_csv(out / "final.csv")
    assert {"lam", "sim/loss [runA]", "sim/loss [runB]", "theory/loss [runA]", "theory/loss [runB]"} <= set(
        final.columns
    )
    row = final.set_index("lam").loc[1.0]
    assert row["sim/loss [runA]"] == a.summary.set_index("lam").loc[1.0, "loss_final"]
    assert row["sim/loss [runB]"] == b.summary.set_index("lam").loc[1.0, "loss_final"]
    suite = pd.read_csv(out / "suite_reversal.csv").set_index("lam")
    assert suite.loc[1.0, "time_to_reverse [runA]"] == 1.5 and suite.loc[0.0, "success [runA]"] == 0.0
    assert "| lam |" in printed and "sim/loss [runA]" in printed and "## suite_reversal" in printed


def test_compare_refuses_missing_folders_and_unknown_metrics(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        cli_main(["compare", str(tmp_path / "nope")])
    tiny_run(tmp_path / "run", [0.0], 0.05)
    with pytest.raises(SystemExit, match=r"no metric accuracy in these folders; they hold per-step metrics: .*loss"):
        cli_main(["compare", str(tmp_path / "run"), "--out", str(tmp_path / "o"), "--metric", "accuracy"])


def test_two_sweeps_at_another_scale_and_lr_line_up_by_lam_and_say_which_axes_differ(tmp_path, capsys):
    a = tiny_run(tmp_path / "runA", [0.0, 1.0], 0.05, scale=0.1)
    b = tiny_run(tmp_path / "runB", [0.0, 1.0], 0.02, scale=0.05)
    out = compare([tmp_path / "runA", tmp_path / "runB"], tmp_path / "cmp", metrics=["loss", "time_to_1pct"])
    printed = capsys.readouterr().out
    final = pd.read_csv(out["final.csv"]).set_index("lam")
    assert list(final.index) == [0.0, 1.0] and final.notna().all().all()  # one full row per λ, none half empty
    for run, label in ((a, "runA"), (b, "runB")):
        want = run.summary.set_index("lam")
        assert final[f"sim/loss [{label}]"].to_dict() == want["loss_final"].to_dict()
        summary = pd.read_csv(out["summary.csv"]).set_index("lam")[f"time_to_1pct [{label}]"]
        np.testing.assert_array_equal(summary.to_numpy(), want["time_to_1pct"].to_numpy())  # from summary.csv
    for axis, values in (("scale", "runA: 0.1; runB: 0.05"), ("lr", "runA: 0.05; runB: 0.02")):
        note = f"{axis} differs between sources ({values}): not a key: the rows line up by lam."
        assert note in printed and note in out["final.md"].read_text()


def test_seeds_that_differ_between_sources_are_averaged_and_named(tmp_path, capsys):
    a = tiny_run(tmp_path / "runA", [1.0], 0.05, seed=[0, 1])
    tiny_run(tmp_path / "runB", [1.0], 0.05, seed=[2, 3])
    out = compare([tmp_path / "runA", tmp_path / "runB"], tmp_path / "cmp", metrics=["loss"])
    final = pd.read_csv(out["final.csv"])
    assert list(final.columns[:1]) == ["lam"] and len(final) == 1
    assert final.loc[0, "sim/loss [runA]"] == pytest.approx(a.summary["loss_final"].mean(), rel=1e-12)
    assert "seed differs between sources (runA: 0, 1; runB: 2, 3): averaged over seeds." in capsys.readouterr().out


def test_a_metric_no_folder_holds_is_named_with_those_they_hold(tmp_path):
    tiny_run(tmp_path / "run", [0.0], 0.05)
    says = r"no metric time_to_1px in these folders; they hold per-step metrics: .*loss.*; summary columns: .*to_1pct"
    with pytest.raises(SystemExit, match=says):
        cli_main(["compare", str(tmp_path / "run"), "--out", str(tmp_path / "o"), "--metric", "loss", "time_to_1px"])
    assert not (tmp_path / "o").exists()  # refused before anything is written
