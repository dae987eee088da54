"""W&B mirror of `lazyrich run`: offline runs read back with W&B's own decoder and checked against the metrics."""

import os
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import offline_wandb_in

from lazyrich import results
from lazyrich.experiment import run_experiment
from lazyrich.tracking import sink as wandb_sink
from lazyrich.tracking.read import read_run
from lazyrich.tracking.schema import flatten, network_config, run_group, run_id, run_name, sweep_group
from lazyrich.tracking.sync import find_offline_runs

pytestmark = pytest.mark.slow  # real W&B runs (offline), each seconds


def config(layout="network"):
    return {
        "task": {"name": "hierarchy"},
        "init": {"kind": "balanced", "lam": [0.0, 2.0], "scale": 0.1},
        "model": {"depth": 2},
        "trainer": {"lr": 0.02, "t_max": 1.0, "n_log": 5, "progress": False},
        "theory": {"name": "exact"},
        "logger": {"wandb": {"enabled": True, "project": "lazyrich-test", "layout": layout}},
        "seed": [0, 1],
    }


@pytest.fixture(scope="module")
def per_network(tmp_path_factory):
    """A 2 λ × 2 seed run logged offline, one W&B run per network, and its runs decoded."""
    root = tmp_path_factory.mktemp("wb")
    with offline_wandb_in(root):
        run_experiment(config(), root / "outputs" / "run" / "t0")
    folder = root / "outputs" / "run" / "t0"
    return folder, [read_run(p) for p in find_offline_runs(folder)]


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}


def test_one_run_per_network_with_flat_scalar_config_group_and_job_type(per_network):
    folder, runs = per_network
    assert len(runs) == 4
    assert {(r.config["lam"], r.config["seed"]) for r in runs} == {(0.0, 0), (0.0, 1), (2.0, 0), (2.0, 1)}
    for run in runs:
        assert run.group == "outputs/run/t0" and run.job_type == "run"
        assert run.name == f"lam={run.config['lam']:g} seed={run.config['seed']}"
        assert {"lam", "seed", "lr", "scale", "task", "depth", "theory"} <= set(run.config)
        assert run.config["task"] == "hierarchy" and run.config["theory"] == "exact" and run.config["depth"] == 2
        assert not [k for k, v in run.config.items() if isinstance(v, list)], "a batch list leaked into a config"
        assert "task=hierarchy" in run.tags
    assert len({r.run_id for r in runs}) == 4


def test_each_networks_history_is_its_own_rows_of_metrics_csv(per_network):
    folder, runs = per_network
    metrics = results.load(folder)
    for run in runs:
        mine = metrics[(metrics["lam"] == run.config["lam"]) & (metrics["seed"] == run.config["seed"])]
        assert len(run.history) == len(mine) == 5
        assert {"t", "step", "sim/loss", "theory/loss", "sim/kernel_distance", "theory/kernel_distance"} <= \
            run.history_keys
        logged = np.array([row["sim/loss"] for row in run.history])
        # The same float64 losses (> 0) through W&B's offline records: elementwise relative, ~ulps at most.
        np.testing.assert_allclose(logged, mine.sort_values("t")["sim/loss"].to_numpy(), rtol=1e-12)
        assert run.summary["final/sim/loss"] == pytest.approx(mine["sim/loss"].iloc[-1], rel=1e-12)
        assert run.summary["agreement/loss_max_rel_err"] < 0.05 and run.summary["status"] == "ok"
        # Its own summary.csv row: λ̂ is λ to rounding of the balance terms, of size ~|λ| + scale².
        lam = run.config["lam"]
        assert run.summary["lam_hat"] == pytest.approx(lam, abs=1e-9 * (1 + abs(lam)))


def test_a_rerun_into_the_same_folder_resumes_the_same_ids(per_network, tmp_path, monkeypatch):
    folder, runs = per_network
    frame = results.load(folder).drop(columns="run")
    target = wandb_sink.Target(group="outputs/run/t0", job_type="run", config=config(), unit="t0",
                               run_dir=tmp_path, layout="network", mode="offline")
    wandb_sink.log_networks(frame, target, ("lam", "scale", "lr"))
    again = {read_run(p).run_id for p in find_offline_runs(tmp_path)}
    assert again == {r.run_id for r in runs}
    other = run_id("outputs/run/t1", "t0/0", 0)
    assert other not in again  # the same unit in another sweep is another W&B run


def test_a_relative_run_folder_gets_its_runs_after_a_change_of_directory(per_network, tmp_path):
    # W&B's service started in the fixture's directory; a folder given relative to another one still gets its runs.
    with offline_wandb_in(tmp_path):
        run_experiment({**config(), "seed": [0]}, "relative")
    assert len(find_offline_runs(tmp_path / "relative")) == 2  # one per network, each with its .wandb file


def test_fallback_logs_configurations_and_a_networks_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_experiment(config(layout="configuration"), tmp_path / "run")
    runs = {r.name: r for r in map(read_run, find_offline_runs(tmp_path / "run"))}
    assert set(runs) == {"lam=0 scale=0.1 lr=0.02", "lam=2 scale=0.1 lr=0.02", "networks run"}
    averaged = runs["lam=2 scale=0.1 lr=0.02"]
    assert averaged.config["n_seeds"] == 2 and "sim/loss_std" in averaged.history_keys
    row = runs["networks run"].history[0]  # W&B's decoder flattens the table reference into dotted keys
    assert row["networks._type"] == "table-file" and row["networks.nrows"] == 4  # one row per network


def test_choose_layout_is_per_network_up_to_the_threshold_then_per_configuration():
    most = wandb_sink.NETWORK_RUNS_MAX
    assert wandb_sink.choose_layout(most, 1)[0] == "network"
    layout, why = wandb_sink.choose_layout(most + 1, 1)
    assert layout == "configuration" and f"> {most}" in why and "logger.wandb.layout=network" in why
    assert wandb_sink.choose_layout(10_000, 10_000)[0] == "network"  # one network per configuration: the same runs
    assert wandb_sink.choose_layout(10_000, 1, layout="network")[0] == "network"
    assert wandb_sink.choose_layout(2, 1, layout="configuration")[0] == "configuration"
    one_seed = pd.DataFrame({"net": [0, 1], "lam": [0.0, 2.0], "seed": [0, 0]})
    assert wandb_sink.plan_layout(one_seed, ["lam"]) == "network"
    two_seeds = one_seed.assign(lam=0.0, seed=[0, 1])
    assert wandb_sink.plan_layout(two_seeds, ["lam"]) == "network"  # 2 networks: under the threshold
    assert wandb_sink.plan_layout(two_seeds, ["lam"], layout="configuration") == "configuration"


def test_schema_names_groups_and_no_batch_lists(tmp_path, monkeypatch):
    cfg = network_config({"experiment": {"init": {"lam": 2.0}, "seed": [0, 1], "task": {"name": "hierarchy"}},
                          "suite": "reversal"}, {"lam": 2.0, "seed": 1, "angle": float("nan")})
    assert cfg["lam"] == 2.0 and cfg["seed"] == 1 and cfg["task"] == "hierarchy" and cfg["suite"] == "reversal"
    assert "experiment.seed" not in cfg and "angle" not in cfg
    assert run_name({"arch": "funnel", "lam": -2.0, "seed": 0}) == "arch=funnel lam=-2 seed=0"
    monkeypatch.chdir(tmp_path)
    assert sweep_group(tmp_path / "multirun" / "run" / "2026-01-01_00-00-00" / "0") == \
        "multirun/run/2026-01-01_00-00-00/0"
    sweeps = [tmp_path / "multirun" / "run" / day for day in ("2026-01-01_00-00-00", "2026-01-02_00-00-00")]
    for sweep in sweeps:
        (sweep / "0").mkdir(parents=True)
        (sweep / "multirun.yaml").write_text("hydra: {}\n")  # what Hydra writes into a -m sweep folder
    assert run_group(sweeps[0] / "0") == run_group(sweeps[0] / "1") == "multirun/run/2026-01-01_00-00-00"
    assert run_group(sweeps[1] / "0") != run_group(sweeps[0] / "0")  # two -m sweeps never share a group
    assert run_group(tmp_path / "outputs" / "run" / "x") == "outputs/run/x"


def test_a_wandb_failure_keeps_the_local_metrics(tmp_path, monkeypatch):
    import wandb

    def broken(*args, **kwargs):
        raise RuntimeError("W&B is down")

    monkeypatch.setattr(wandb, "init", broken)
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.warns(UserWarning, match="W&B logging failed"):
        result = run_experiment(config(), tmp_path / "run")
    assert (tmp_path / "run" / "metrics.parquet").exists() and (tmp_path / "run" / "DONE").exists()
    assert len(result.frame) == 4 * 5


def test_an_online_failure_switches_the_process_offline_with_one_warning(tmp_path, monkeypatch):
    import wandb

    from lazyrich.tracking import connect as wandb_connect

    modes, ids = [], []

    def init(*args, mode=None, id=None, **kwargs):
        modes.append(mode)
        ids.append(id)
        if mode == "online":
            raise TimeoutError("server silent")
        return "run"

    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setattr(wandb_connect, "_STATE", {"offline": False, "probed": True})
    monkeypatch.setenv("WANDB_MODE", "disabled")  # going offline sets it process-wide; restored after the test
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [wandb_connect.start_run("online", project="p", id=f"r{i}") for i in range(3)] == ["run"] * 3
    assert modes == ["online", "offline", "offline", "offline"]  # one online try per process
    assert ids == ["r0", "r0-offline", "r1", "r2"]  # W&B's service keeps the timed-out id busy
    assert os.environ["WANDB_MODE"] == "offline"  # so W&B's own setup, and child processes, stay offline
    assert len([w for w in caught if "unreachable" in str(w.message)]) == 1
