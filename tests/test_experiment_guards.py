"""Bad input to the Python API and the command line ends in one line that names the problem and the fix
(issue 19, items 8, 14, 15)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lazyrich import init, tasks, train
from lazyrich.config.checks import ConfigError
from lazyrich.experiment import run as experiment_run
from lazyrich.experiment import run_experiment


def test_a_later_phase_refused_for_float32_rounding_says_so_first():
    cfg = {"task": {"name": "reversal", "base": "hierarchy", "t_budget": 1.0}, "model": {"depth": 3},
           "init": {"lam": 2.0, "align": True}, "theory": {"name": "deep_aligned"},
           "trainer": {"dtype": "float32", "t_max": 1.0, "n_log": 6, "progress": False}}
    result = run_experiment(cfg)
    refused = [n for n in result.theory_notes if n.startswith("phase 1: theory deep_aligned skipped")]
    assert refused and "float32 weights: promote to float64" in refused[0]


def test_an_in_memory_run_too_large_for_memory_is_refused_before_any_training(monkeypatch):
    monkeypatch.setattr(experiment_run, "available_memory", lambda: 2**20)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"keeps all 6 networks in memory .* pass a run_dir"):
        run_experiment({"task": {"name": "hierarchy"}, "init": {"lam": [0.0, 1.0, 2.0]}, "seed": [0, 1],
                        "trainer": {"t_max": 50.0, "progress": False}})
    assert time.perf_counter() - started < 5  # refused before 5000 steps of training


@pytest.mark.parametrize(("weights", "named"), [
    (lambda w: [w[0].long(), w[1].long()], "got int64"),
    (lambda w: [w[0].float(), w[1]], "got float32/float64"),
])
def test_the_trainer_names_a_bad_weight_dtype(weights, named):
    task = tasks.make("hierarchy")
    with pytest.raises(TypeError, match=named):
        train(task, weights(init.lambda_balanced(8, 8, 8, [1.0])), 0.01, t_max=0.05, progress=False)
    numpy = [w.numpy() for w in init.lambda_balanced(8, 8, 8, [1.0])]  # numpy layers are taken as they are
    assert train(task, numpy, 0.01, t_max=0.05, n_log=3, progress=False).t.shape == (1, 3)


def test_a_nan_lambda_is_refused_by_the_init():
    with pytest.raises(ValueError, match="lam must be finite"):
        init.lambda_balanced(4, 4, 4, float("nan"))
    assert torch.isfinite(init.lambda_balanced(4, 4, 4, 1.0)[0]).all()


def test_ctrl_c_ends_a_run_in_one_line_and_leaves_nothing_trusted(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "lazyrich.cli", "run", "init.lam=range(0,32)", "seed=range(0,16)",
           "trainer.t_max=100", "trainer.batch_chunk=128", "logger=none", f"hydra.run.dir={out}"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 180
    while not list(out.glob("matrices-*.npz")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)  # until one chunk is written: the run is inside its loop
    assert proc.poll() is None and list(out.glob("matrices-*.npz")), "the run never reached its first chunk"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if "lazyrich:" in line]
    assert proc.returncode == 130 and len(lines) == 1 and lines[0].startswith("lazyrich: interrupted (Ctrl-C)")
    assert "Traceback" not in err
    assert not (out / "DONE").exists() and not (out / ".lazyrich.lock").exists()
