"""W&B mirror: offline runs carry the stable keys against t; a W&B failure never costs the local metrics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lazyrich.experiment import run_experiment
from lazyrich.wandb_sink import flatten, log_to_wandb

CFG = {
    "task": {"name": "hierarchy"},
    "init": {"kind": "balanced", "lam": [0.0, 2.0], "scale": 0.1},
    "trainer": {"lr": 0.02, "t_max": 1.0, "n_log": 5, "progress": False},
    "theory": {"name": "exact"},
    "logger": {"wandb": {"enabled": True, "project": "lazyrich-test"}},
    "seed": [0, 1],
}


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}


def test_offline_runs_one_per_configuration_with_stable_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_experiment(CFG, None)
    written = log_to_wandb(result.frame, config=CFG, group="g", run_dir=tmp_path, config_columns=("lam",),
                           mode="offline")
    assert len(written) == 2  # two λ values; the two seeds are averaged into each
    run_dirs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 2
    env = {**os.environ, "WANDB_MODE": "offline"}
    wandb_bin = Path(sys.executable).parent / "wandb"
    proc = subprocess.run([str(wandb_bin), "leet", "inspect", "--json", str(run_dirs[0])], capture_output=True,
                          text=True, env=env, timeout=120)
    if proc.returncode != 0:
        pytest.skip(f"wandb leet inspect unavailable: {proc.stderr[-300:]}")
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    history = [r for r in records if r.get("type") == "history"]
    assert len(history) == 5
    keys = set(history[-1]["history"]["item"])
    summary = [r for r in records if r.get("type") == "summary"]
    assert any("agreement/loss_max_rel_err" in json.dumps(r) for r in summary)
    assert {"t", "sim/loss", "theory/loss", "sim/kernel_distance", "sim/loss_std"} <= keys


def test_a_wandb_failure_keeps_the_local_metrics(tmp_path, monkeypatch):
    import wandb

    def broken(*args, **kwargs):
        raise RuntimeError("W&B is down")

    monkeypatch.setattr(wandb, "init", broken)
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.warns(UserWarning, match="W&B logging failed"):
        result = run_experiment(CFG, tmp_path / "run")
    assert (tmp_path / "run" / "metrics.csv").exists() and (tmp_path / "run" / "DONE").exists()
    assert len(result.frame) == 4 * 5
