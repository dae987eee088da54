"""The lazyrich command: run, -m sweeps, batch overrides, config typos, and composing every config."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lazyrich import results
from lazyrich.config.compose import batch_overrides, conf_dir, register_configs, validate

TINY = ["trainer.t_max=0.5", "trainer.n_log=6", "trainer.n_matrix=3", "trainer.progress=false", "logger=none"]


def lazyrich(*args, cwd):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "lazyrich.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)


@pytest.mark.slow
def test_run_writes_the_run_folder_and_prints_the_table(tmp_path):
    proc = lazyrich("run", "init.lam=-2,0,2", "hydra.run.dir=out", *TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "loss_final" in proc.stdout and "kernel_distance_final" in proc.stdout
    frame = results.load(tmp_path / "out")
    # A comma list on init.lam is ONE batch in one process: three networks in one run folder.
    assert sorted(frame["lam"].unique()) == [-2.0, 0.0, 2.0]
    assert frame["run"].nunique() == 1
    assert {"sim/loss", "theory/loss", "sim/kernel_distance", "t"} <= set(frame.columns)
    for name in ("config.yaml", "metrics.parquet", "matrices-000000000-000000003.npz", "summary.json", "curves.png",
                 "DONE"):
        assert (tmp_path / "out" / name).exists(), name


@pytest.mark.slow
def test_multirun_sweep_runs_each_point_and_loads_as_one_table(tmp_path):
    proc = lazyrich("run", "-m", "model.depth=2,3", "hydra.sweep.dir=sweep", "theory=none", *TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    frame = results.load(tmp_path / "sweep")
    assert frame["run"].nunique() == 2
    assert "sim/balance_drift_2" in frame.columns  # the depth-3 job logged its second pair


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("trainer.lrr=0.1", ["'trainer.lrr' is not a config key", "Did you mean 'trainer.lr'"]),
        ("task=hierachy", ["hierarchy", "random_regression"]),
        ("init=balancd", ["balanced", "gaussian"]),
    ],
)
def test_typos_list_the_valid_choices(override, needles):
    register_configs()
    with pytest.raises(SystemExit) as info:
        validate("config", [override])
    for needle in needles:
        assert needle in str(info.value), info.value


@pytest.mark.slow
def test_a_typo_stops_the_command_with_status_and_message(tmp_path):
    proc = lazyrich("run", "trainer.t_mx=3", *TINY, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Valid keys under 'trainer'" in proc.stderr and "t_max" in proc.stderr


def test_batch_overrides_become_lists_and_others_stay():
    out = batch_overrides(["init.lam=-5,0,5", "seed=0,1", "task=hierarchy,random_regression", "trainer.t_max=3"])
    assert out == ["init.lam=[-5,0,5]", "seed=[0,1]", "task=hierarchy,random_regression", "trainer.t_max=3"]


def _options(group: str) -> list[str]:
    from hydra.core.config_store import ConfigStore

    names = {p.stem for p in (conf_dir() / group).glob("*.yaml")}
    repo = ConfigStore.instance().repo
    node = repo
    for part in group.split("/"):
        node = node.get(part, {})
    names |= {k.removesuffix(".yaml") for k in node}
    return sorted(names)


@pytest.mark.slow
def test_every_config_composes():
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for group in ("task", "init", "model", "trainer", "theory", "logger", "experiment"):
            options = _options(group)
            assert options, group
            for option in options:
                cfg = compose("config", overrides=[f"{group}={option}"])
                assert cfg.trainer.t_max > 0, (group, option)
        for option in _options("hydra/launcher"):
            compose("config", overrides=[f"hydra/launcher={option}"], return_hydra_config=True)


@pytest.mark.slow
def test_tasks_and_help_commands(tmp_path):
    proc = lazyrich("tasks", cwd=tmp_path)
    assert proc.returncode == 0 and "hierarchy" in proc.stdout and "parameters:" in proc.stdout
    proc = lazyrich("--help", cwd=tmp_path)
    assert "lazyrich run" in proc.stdout
    proc = lazyrich("runn", cwd=tmp_path)
    assert proc.returncode != 0 and "did you mean 'run'" in proc.stderr


def test_conf_dir_is_the_repository_conf():
    assert conf_dir() == Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.slow
def test_an_installed_plugin_task_runs_through_the_cli(tmp_path, example_plugin_installed):
    proc = lazyrich("run", f"task={example_plugin_installed}", "task.n=3", "hydra.run.dir=out", *TINY,
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    frame = results.load(tmp_path / "out")
    assert "sim/sval_3" in frame.columns and "sim/sval_4" not in frame.columns  # task.n=3 reached the plug-in
