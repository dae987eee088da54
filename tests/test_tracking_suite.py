"""W&B mirror of `lazyrich bench`: unit runs carry their suite.csv row, one suite-level run per suite, one group
per suite folder (suite=default's two suites no longer share a group)."""

import pandas as pd
import pytest
from conftest import offline_wandb_in
from hydra import compose, initialize_config_dir

from lazyrich.config.compose import conf_dir
from lazyrich.suites import run_suites
from lazyrich.tracking.read import read_run
from lazyrich.tracking.sync import find_offline_runs

pytestmark = pytest.mark.slow  # real W&B runs (offline), each seconds

TINY = ["suite.lams=[2.0]", "seed=0", "suite.reversal.t_phase=4", "suite.reversal.n_log=21",
        "suite.architecture.t_max=5", "suite.architecture.n_log=21", "logger.wandb.layout=network", "progress=false"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    with offline_wandb_in(root):
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose("bench", overrides=["suite=default", *TINY])
        run_suites(cfg, root / "out")
    runs = [read_run(p) for p in find_offline_runs(root / "out")]
    return root / "out", runs


def test_each_suite_folder_is_its_own_group_with_its_job_type(bench):
    out, runs = bench
    by_suite = {}
    for run in runs:
        by_suite.setdefault(run.config["suite"], set()).add((run.group, run.job_type))
    assert by_suite == {"reversal": {("out/reversal", "bench/reversal")},
                        "architecture": {("out/architecture", "bench/architecture")}}


def test_unit_runs_have_the_flat_schema_and_their_suite_metrics(bench):
    out, runs = bench
    units = [r for r in runs if not r.name.startswith("suite ")]
    assert len(units) == 4  # reversal λ=2; the three architectures at λ=2; one seed each
    for run in units:
        assert run.config["lam"] == 2.0 and run.config["seed"] == 0 and "theory" in run.config
        assert not [k for k, v in run.config.items() if isinstance(v, list)]
        assert {"t", "sim/loss", "sim/kernel_distance"} <= run.history_keys
    reversal = next(r for r in units if r.config["suite"] == "reversal")
    table = pd.read_csv(out / "reversal" / "suite.csv")
    assert reversal.summary["time_to_reverse"] == pytest.approx(table["time_to_reverse"].iloc[0], rel=1e-12)
    assert reversal.summary["success"] == bool(table["success"].iloc[0])
    assert "phase" in reversal.history_keys and reversal.name == "lam=2 seed=0"
    arch = {r.config["arch"]: r for r in units if r.config["suite"] == "architecture"}
    arch_table = pd.read_csv(out / "architecture" / "suite.csv").set_index("arch")
    for name, run in arch.items():
        assert run.summary["kernel_distance_final"] == pytest.approx(
            arch_table.loc[name, "kernel_distance_final"], rel=1e-12)
        assert f"arch={name}" in run.tags and "suite=architecture" in run.tags


def test_one_suite_level_run_holds_the_table_figures_and_summary(bench):
    out, runs = bench
    suite_runs = {r.config["suite"]: r for r in runs if r.name.startswith("suite ")}
    assert set(suite_runs) == {"reversal", "architecture"}
    for name, run in suite_runs.items():
        row = run.history[0]
        assert row["suite._type"] == "table-file"
        assert row["suite.nrows"] == len(pd.read_csv(out / name / "suite.csv"))
        figures = {p.stem for p in (out / name).glob("*.png")}
        assert figures and {f"figures/{f}._type" for f in figures} <= set(row)
        assert "summary.md" in run.files and run.summary["verdict"]


def test_the_suite_dashboard_shows_the_suite_table(bench):
    pytest.importorskip("wandb_workspaces", reason="optional extra lazyrich[dashboards] not installed")
    import json

    from lazyrich.tracking.dashboard import main

    out, runs = bench
    assert main([str(out)]) == 0
    for name in ("reversal", "architecture"):
        spec = json.loads((out / name / "dashboard.json").read_text())["spec"]["section"]
        sections = {s["name"]: s for s in spec["panelBankConfig"]["sections"]}
        assert {"Curves against t", "Agreement and final values", "Tables"} <= set(sections)
        (table,) = sections["Tables"]["panels"]
        assert table["viewType"] == "Weave" and '"suite"' in json.dumps(table["config"])
        assert spec["runSets"][0]["filters"]["filters"][0]["value"] == f"out/{name}"
