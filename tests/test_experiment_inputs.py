"""Bad batch values and impossible runs are refused before any training (issue 11); a network that goes bad
during training is isolated while the others are written."""

import math

import pytest
import torch
from hydra import compose, initialize_config_dir

from lazyrich import init, results, tasks
from lazyrich.config import checks
from lazyrich.config.compose import conf_dir, register_configs
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
