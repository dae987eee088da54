"""lazyrich compare: two tiny runs side by side — tables (CSV + Markdown, printed) and an overlay PNG."""

import pandas as pd

from lazyrich.cli import main as cli_main
from lazyrich.experiment import run_experiment


def tiny_run(run_dir, lams, lr):
    cfg = {
        "task": {"name": "random_regression", "n_in": 3, "n_out": 3},
        "init": {"kind": "balanced", "lam": lams, "scale": 0.1},
        "model": {"depth": 2},
        "trainer": {"lr": lr, "t_max": 2.0, "n_log": 11, "n_matrix": 2, "progress": False},
        "theory": {"name": "exact"},
        "seed": 0,
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
    import pytest

    with pytest.raises(SystemExit, match="does not exist"):
        cli_main(["compare", str(tmp_path / "nope")])
    tiny_run(tmp_path / "run", [0.0], 0.05)
    with pytest.raises(SystemExit, match="none of the metrics"):
        cli_main(["compare", str(tmp_path / "run"), "--out", str(tmp_path / "o"), "--metric", "accuracy"])
