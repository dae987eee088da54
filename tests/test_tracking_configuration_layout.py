"""The per-configuration W&B layout keeps what the per-network one carries: the suite's metrics (the unit's
suite.csv rows, as seed means) and the name of the theory that ran, not ``auto`` (lazyrich/tracking/sink.py)."""

import numpy as np
import pandas as pd
import pytest
from conftest import offline_wandb_in
from hydra import compose, initialize_config_dir

from lazyrich.config.compose import conf_dir
from lazyrich.experiment import run_experiment
from lazyrich.suites import run_suites
from lazyrich.tracking.read import read_run
from lazyrich.tracking.sync import find_offline_runs

pytestmark = pytest.mark.slow  # real W&B runs (offline), each seconds

BENCH = ["suite=reversal", "suite.lams=[2.0]", "seed=[0,1]", "suite.reversal.t_phase=4", "suite.reversal.n_log=11",
         "logger.wandb.layout=configuration", "progress=false"]


@pytest.fixture(scope="module")
def reversal(tmp_path_factory):
    """A reversal bench of one λ and two seeds (theory auto), logged one W&B run per configuration."""
    root = tmp_path_factory.mktemp("bench_cfg")
    with offline_wandb_in(root):
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose("bench", overrides=BENCH)
        run_suites(cfg, root / "out")
    runs = [read_run(p) for p in find_offline_runs(root / "out")]
    return pd.read_csv(root / "out" / "suite.csv"), [r for r in runs if not r.name.startswith("suite ")]


def test_a_configuration_run_carries_the_suites_metrics_as_seed_means(reversal):
    table, (run,) = reversal
    assert len(table) == 2 and run.config["n_seeds"] == 2
    assert run.summary["time_to_reverse"] == pytest.approx(table["time_to_reverse"].mean(), rel=1e-12)
    assert run.summary["success"] == pytest.approx(table["success"].astype(float).mean())  # fraction of seeds
    assert run.summary["kernel_distance_final"] == pytest.approx(table["kernel_distance_final"].mean(), rel=1e-12)


def test_a_configuration_runs_theory_is_the_one_that_ran(reversal):
    table, (run,) = reversal
    (ran,) = table["theory"].unique()
    assert ran != "auto" and run.config["theory"] == ran


def test_a_lazyrich_run_logged_per_configuration_names_its_theory_and_summaries(tmp_path, monkeypatch):
    """``lazyrich run`` with theory=auto: the theory comes from the notes (summary.csv has no theory column)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = {"task": {"name": "hierarchy"}, "init": {"kind": "balanced", "lam": [0.0, 2.0], "scale": 0.1},
           "model": {"depth": 2}, "trainer": {"lr": 0.02, "t_max": 1.0, "n_log": 5, "progress": False},
           "theory": {"name": "auto"}, "seed": [0, 1],
           "logger": {"wandb": {"enabled": True, "project": "lazyrich-test", "layout": "configuration"}}}
    result = run_experiment(cfg, tmp_path / "run")
    assert any(note.startswith("theory=auto chose exact") for note in result.theory_notes)
    runs = {r.name: r for r in map(read_run, find_offline_runs(tmp_path / "run"))}
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    for lam in (0.0, 2.0):
        run = runs[f"lam={lam:g} scale=0.1 lr=0.02"]
        assert run.config["theory"] == "exact"
        mine = summary[summary["lam"] == lam]
        assert run.summary["loss_final"] == pytest.approx(mine["loss_final"].mean(), rel=1e-12)
        assert run.summary["lam_hat"] == pytest.approx(np.mean(mine["lam_hat"]), rel=1e-12)
