"""Bad input ends in one line that names the problem and the fix, before any training where it can be known: bad
batch values and impossible runs, runs too large for memory, weights of a wrong dtype, a NaN λ, a Ctrl-C; a
network that goes bad during training is isolated while the others are written."""

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from hydra import compose, initialize_config_dir

from lazyrich import init, results, tasks
from lazyrich.config import checks
from lazyrich.config.checks import ConfigError
from lazyrich.config.compose import conf_dir, register_configs
from lazyrich.experiment import run as experiment_run
from lazyrich.experiment import run_experiment
from lazyrich.train import _BUDGET, DEFAULT_MAX_STEPS, step_budget, train

RUN = {"task": {"name": "hierarchy"}, "init": {"kind": "balanced", "lam": 0.0, "scale": 0.1},
       "model": {"depth": 2}, "trainer": {"lr": 0.05, "t_max": 1.0, "n_log": 6, "progress": False},
       "theory": {"name": "auto"}, "seed": 0, "device": "cpu"}


def with_(section, **values):
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in RUN.items()}
    if section is None:
        cfg.update(values)
    else:
        cfg[section].update(values)
    return cfg


@pytest.mark.parametrize(("section", "values", "needle"), [
    ("init", {"lam": [0.0, math.nan]}, "init.lam=nan is not a finite number"),
    ("init", {"lam": []}, "init.lam is an empty list"),
    ("init", {"scale": [0.1, -1.0]}, "init.scale=-1.0 must be zero or positive"),
    ("trainer", {"lr": math.inf}, "trainer.lr=inf is not a finite number"),
    ("trainer", {"lr": "abc"}, "trainer.lr='abc' is not a number"),
    ("trainer", {"lr": [0.05, 0.0]}, "trainer.lr=0.0 must be positive"),
    ("trainer", {"lr": 20.0}, "lr=20 overshoots"),
    ("trainer", {"t_max": 1e9}, "takes 2e+10 steps per network, past the budget max_steps=1e+07"),
    (None, {"seed": 1.5}, "seed=1.5 is not an integer seed"),
    (None, {"seed": "abc"}, "seed='abc' is not an integer seed"),
    (None, {"seed": 10**20}, "seed=100000000000000000000 is out of range"),
    (None, {"seed": [0, True]}, "seed=True is not an integer seed"),
])
def test_bad_batch_values_are_refused_before_training_naming_key_and_value(tmp_path, section, values, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace("+", r"\+")):
        run_experiment(with_(section, **values), tmp_path / "run", plot=False)
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_seed_checks_accept_integers_and_integral_floats_only():
    assert checks.seeds("seed", [0, 2.0, checks.MAX_SEED]) == [0, 2, checks.MAX_SEED]
    assert checks.floats("x", "1e-3") == [1e-3]  # numbers given as text by a config are fine
    with pytest.raises(checks.ConfigError, match="out of range"):
        checks.seeds("seed", -1)


def test_the_step_budget_is_overridable_and_scoped():
    task = tasks.make("hierarchy")
    w = list(init.lambda_balanced(8, 8, 8, [0.0], scale=0.1))
    with pytest.raises(ValueError, match="max_steps=10"):
        train(task, w, 0.01, t_max=1.0, n_log=3, max_steps=10, progress=False)
    assert train(task, w, 0.01, t_max=1.0, n_log=3, max_steps=100, progress=False).step[0, -1] == 100
    with step_budget(50), pytest.raises(ValueError, match="max_steps=50"):
        train(task, w, 0.01, t_max=1.0, n_log=3, progress=False)
    assert _BUDGET.get() == DEFAULT_MAX_STEPS  # the scope ended: the default budget is back
    train(task, w, 0.01, t_max=1.0, n_log=3, progress=False)


def test_api_refuses_an_empty_batch_and_infinite_lr_or_t_max():
    task = tasks.make("hierarchy")
    w = list(init.lambda_balanced(8, 8, 8, [0.0], scale=0.1))
    with pytest.raises(ValueError, match="B = 0"):
        train(task, [x[:0] for x in w], 0.01, t_max=1.0)
    with pytest.raises(ValueError, match="positive and finite"):
        train(task, w, math.inf, t_max=1.0)
    with pytest.raises(ValueError, match="t_max must be positive and finite"):
        train(task, w, 0.01, t_max=math.inf)


def test_a_network_that_diverges_is_isolated_and_the_others_are_written(tmp_path):
    cfg = with_("trainer", lr=[0.05, 3.0], t_max=10.0, n_log=11)
    cfg["init"]["lam"] = [2.0]
    with pytest.warns(RuntimeWarning, match="network 1 diverged"):
        result = run_experiment(cfg, tmp_path, plot=False)
    summary = results.load_summary(tmp_path).set_index("lr")
    assert summary.loc[3.0, "status"] == "diverged" and summary.loc[0.05, "status"] == "ok"
    initial = float(result.trajectories[0].scalars["loss"][0, 0])
    # converged to ~1e-9 of the initial loss; GD at lr·rate ≈ 0.1 trails the flow there by a few times that
    assert abs(summary.loc[0.05, "loss_final"] - summary.loc[0.05, "theory_loss_final"]) <= 1e-6 * initial
    assert torch.isfinite(result.trajectories[0].final_weights[0][0]).all()


def test_the_gaussian_preset_runs(tmp_path):
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["init=gaussian", "logger=none", "trainer.t_max=0.5", "trainer.n_log=6",
                                           "trainer.progress=false"])
    result = run_experiment(cfg, tmp_path, plot=False)
    assert result.summary["status"].tolist() == ["ok"] and math.isnan(result.meta["lam"].iloc[0])
    assert abs(result.meta["lam_hat"].iloc[0]) > 0  # a Gaussian init is only nearly balanced: λ̂ is measured


def test_a_theory_that_fails_numerically_leaves_the_simulation_written(tmp_path, monkeypatch):
    from lazyrich import theory

    def singular(self, stats, weights, t):
        raise torch.linalg.LinAlgError("linalg.solve: The solver failed because the input matrix is singular.")

    monkeypatch.setattr(type(theory.get_theory("exact")), "predict", singular)
    result = run_experiment(with_("theory", name="exact"), tmp_path, plot=False)
    assert result.predictions == [None] and (tmp_path / "DONE").exists()
    assert "theory exact skipped: _LinAlgError: linalg.solve" in (tmp_path / "theory.txt").read_text()
    assert results.load(tmp_path)["sim/loss"].notna().all()

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


@pytest.mark.slow
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
    assert proc.returncode == 130 and len(lines) == 1 and lines[0].startswith("lazyrich: interrupted (Ctrl-C)"), \
        (proc.returncode, err[-3000:])
    assert "Traceback" not in err
    assert not (out / "DONE").exists() and not (out / ".lazyrich.lock").exists()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_trainer_dtype_the_theory_cannot_compare_with_is_refused_by_the_schema(dtype):
    """float16/bfloat16 used to pass the schema and fail inside linalg.pinv; now one line at the key."""
    with pytest.raises(ConfigError, match=rf"trainer.dtype='{dtype}' is not one of float64, float32"):
        run_experiment({"task": {"name": "hierarchy"}, "trainer": {"dtype": dtype, "progress": False}})
