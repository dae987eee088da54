"""The trainer's options (lazyrich.train.TrainOptions): weight decay as L2 in the loss, per-layer step multipliers,
an output multiplier; the fused step against autograd, the change of variables at the level of GD, what the
recorder measures, the λ law under weight decay, and the config keys that set them."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.training_options import decay_task
from lazyrich import init, tasks
from lazyrich.config.checks import ConfigError
from lazyrich.config.run import resolve_run
from lazyrich.experiment import run_experiment
from lazyrich.train import TrainOptions, train

ROUNDING = 1e-12
"""Two orders of float64 arithmetic for the same 300 steps of a 5→3 net (fused statistics vs autograd on the data, or W
vs U = kW): measured ≤ 2e-14 on every logged figure."""


@pytest.fixture(scope="module")
def setup():
    task = tasks.make("random_regression", n_in=5, n_out=3, seed=3)
    weights = list(init.lambda_balanced(5, 3, 3, [0.5, -1.0], scale=0.3, generator=torch.Generator().manual_seed(0)))
    return task, weights


OPTIONS = {"layer_lr": [0.3, 2.0], "output_scale": 1.7, "weight_decay": 0.1}


def test_the_fused_step_equals_autograd_on_the_data(setup):
    task, weights = setup
    fused = train(task, weights, 0.01, t_max=3.0, n_log=4, progress=False, **OPTIONS)
    data = train(task, weights, 0.01, t_max=3.0, n_log=4, progress=False, batch_size=task.P, **OPTIONS)
    for name, value in fused.scalars.items():
        torch.testing.assert_close(value, data.scalars[name], rtol=ROUNDING, atol=ROUNDING, msg=name)
    for mine, ref in zip(fused.final_weights, data.final_weights, strict=True):
        torch.testing.assert_close(mine, ref, rtol=ROUNDING, atol=ROUNDING)


def test_plain_values_take_the_plain_step(setup):
    task, weights = setup
    plain = train(task, weights, 0.01, t_max=1.0, n_log=3, progress=False)
    same = train(task, weights, 0.01, t_max=1.0, n_log=3, progress=False, layer_lr=[1.0, 1.0], output_scale=1.0,
                 weight_decay=0.0)
    assert TrainOptions.of(layer_lr=[1, 1], output_scale=1, weight_decay=0).active == ()
    for name, value in plain.scalars.items():
        assert torch.equal(value, same.scalars[name]), name


def test_one_gd_step_by_hand(setup):
    """W_l ← W_l − lr·m_l(∇_l L + γW_l), L the loss of ŷ = α·W2W1x."""
    task, weights = setup
    lr, (m1, m2), alpha, gamma = 0.01, OPTIONS["layer_lr"], OPTIONS["output_scale"], OPTIONS["weight_decay"]
    traj = train(task, weights, lr, t_max=lr, n_log=2, progress=False, **OPTIONS)
    w1, w2 = weights
    err = task.sigma_yx - alpha * w2 @ w1 @ task.sigma_xx
    new1 = w1 - lr * m1 * (-alpha * w2.mT @ err + gamma * w1)
    new2 = w2 - lr * m2 * (-alpha * err @ w1.mT + gamma * w2)
    torch.testing.assert_close(traj.final_weights[0], new1, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(traj.final_weights[1], new2, rtol=1e-14, atol=1e-15)


def test_gd_with_rates_and_alpha_is_plain_gd_of_the_standard_variables(setup):
    """U_l = k_l·W_l under plain GD at step κ·lr, for as many steps, is the trainer with the options: the
    recorder's product and loss (of U) and its Grams and norms (mapped back to W) match it."""
    task, weights = setup
    options = {"layer_lr": [0.3, 2.0], "output_scale": 1.7}
    kappa, k = TrainOptions.of(**options).standard(2, 2)
    standard = [w * k[:, l, None, None] for l, w in enumerate(weights)]
    lr, steps = 0.01, 300
    mine = train(task, weights, lr, t_max=lr * steps, n_log=4, n_matrix=4, progress=False, **options)
    ref = train(task, standard, kappa * lr, t_max=float(kappa.max()) * lr * steps, n_log=4, n_matrix=4,
                progress=False)
    assert torch.equal(mine.step, ref.step)
    for name in ("loss", "sval_1", "kernel_distance", "balance_drift_1"):
        torch.testing.assert_close(mine.scalars[name], ref.scalars[name], rtol=ROUNDING, atol=ROUNDING, msg=name)
    torch.testing.assert_close(mine.matrices["product"], ref.matrices["product"], rtol=ROUNDING, atol=ROUNDING)
    torch.testing.assert_close(mine.matrices["w1tw1"], ref.matrices["w1tw1"] / k[:, None, 0, None, None] ** 2,
                               rtol=ROUNDING, atol=ROUNDING)
    torch.testing.assert_close(mine.scalars["norm_W2"][:, -1], torch.linalg.matrix_norm(mine.final_weights[1]))
    # λ̂ is measured in the rates' units V = U/√α: αλ̂(V) is U's λ̂
    torch.testing.assert_close(1.7 * mine.scalars["lam_hat_1"], ref.scalars["lam_hat_1"], rtol=ROUNDING,
                               atol=ROUNDING)


def test_rate_weighted_balance_is_conserved_and_decays_with_weight_decay(setup):
    """W2ᵀW2/m2 − W1W1ᵀ/m1 is conserved by the flow with layer rates (drift O(lr)), and without rates weight decay
    makes λ̂ decay as λ₀e^{−2γt}."""
    task, weights = setup
    for lr in (1e-2, 1e-3):
        traj = train(task, weights, lr, t_max=1.0, n_log=3, progress=False, layer_lr=[0.3, 2.0])
        drift = (traj.scalars["lam_hat_1"] - traj.scalars["lam_hat_1"][:, :1]).abs().max()
        assert float(drift) <= 3 * lr  # O(lr·t): GD's own drift, no law broken
    decayed = train(task, weights, 1e-3, t_max=1.0, n_log=3, progress=False, weight_decay=0.3)
    law = decayed.scalars["lam_hat_1"][:, :1] * torch.exp(-0.6 * decayed.t)
    assert float((decayed.scalars["lam_hat_1"] - law).abs().max()) <= 3e-3  # O(lr), 1e-3 here
    assert float((decayed.scalars["lam_hat_1"][:, -1] / decayed.scalars["lam_hat_1"][:, 0]).max()) < 0.6


@pytest.mark.slow
def test_the_decay_law_of_lambda_holds_to_1e_6_in_the_flow_limit():
    """λ̂(t) against λ₀e^{−2γt}: the gap shrinks like lr (GD's (1 − lrγ)² per step is not e^{−2lrγ}) and is ≤ 1e-6 at
    lr = 2e-5 (5·10⁴ steps, measured 6.4e-7), relative to the size of the terms λ̂ is made of."""
    task = decay_task()
    weights = list(init.lambda_balanced(3, 3, 3, [2.0, -1.0], scale=0.1, generator=torch.Generator().manual_seed(0)))
    size = sum(torch.linalg.matrix_norm(w) ** 2 for w in weights) / 3
    gaps = {}
    for lr in (1e-3, 2e-5):
        traj = train(task, weights, lr, t_max=1.0, n_log=11, progress=False, weight_decay=0.2)
        lam = traj.scalars["lam_hat_1"]
        gaps[lr] = float(((lam - lam[:, :1] * torch.exp(-0.4 * traj.t)).abs().amax(-1) / size).max())
    assert gaps[2e-5] <= 1e-6
    assert gaps[1e-3] / gaps[2e-5] == pytest.approx(50, rel=0.05)  # first order in lr


def test_the_run_reports_the_lambda_law_and_its_gap():
    cfg = {"task": {"name": "random_regression", "n_in": 3, "n_out": 3, "seed": 3,
                    "singular_values": [0.2, 0.1, 0.05]},
           "init": {"lam": [2.0, -1.0], "scale": 0.1},
           "trainer": {"lr": 1e-3, "t_max": 1.0, "n_log": 11, "weight_decay": [0.2], "progress": False}}
    summary = run_experiment(cfg).summary
    assert (summary["lam_law_gap"] < 1e-4).all() and (summary["lam_law_gap"] > 1e-6).all()  # O(lr) = 3e-5
    rates = run_experiment({**cfg, "trainer": {**cfg["trainer"], "layer_lr": [0.5, 2.0]}}).summary
    assert rates["lam_law_gap"].isna().all()  # unequal rates: no law to compare with
    plain = run_experiment({**cfg, "trainer": {**cfg["trainer"], "weight_decay": 0.0}}).summary
    assert "lam_law_gap" not in plain and "weight_decay" not in plain


def test_options_are_batch_axes_with_their_own_columns():
    cfg = {"task": {"name": "random_regression", "n_in": 3, "n_out": 2}, "init": {"lam": [0.5], "scale": 0.2},
           "trainer": {"lr": 0.01, "t_max": 0.5, "n_log": 3, "progress": False, "weight_decay": [0.0, 0.1],
                       "output_scale": [1.0, 2.0], "layer_lr": [[1, 1], [0.5, 2]]}, "seed": [0, 1]}
    result = run_experiment(cfg)
    meta = result.meta
    assert len(meta) == 16 and {"weight_decay", "output_scale", "layer_lr_1", "layer_lr_2"} <= set(meta)
    assert sorted(set(zip(meta["layer_lr_1"], meta["layer_lr_2"], strict=True))) == [(0.5, 2.0), (1.0, 1.0)]
    # a balanced init is balanced in the rates' units: λ̂ = λ whatever the rates
    torch.testing.assert_close(torch.tensor(meta["lam_hat"].to_numpy()), torch.full((16,), 0.5, dtype=torch.float64))
    # each network's numbers do not depend on what else is in its batch
    alone = run_experiment({**cfg, "trainer": {**cfg["trainer"], "weight_decay": 0.1, "output_scale": 2.0,
                                               "layer_lr": [0.5, 2]}, "seed": 1}).summary
    row = result.summary[(meta["weight_decay"] == 0.1) & (meta["output_scale"] == 2.0) & (meta["layer_lr_1"] == 0.5)
                         & (meta["seed"] == 1)]
    assert float(row["loss_final"].iloc[0]) == pytest.approx(float(alone["loss_final"].iloc[0]), rel=1e-13)


@pytest.mark.parametrize("trainer, needle", [
    ({"weight_decay": -0.1}, "trainer.weight_decay=-0.1 must be zero or positive"),
    ({"output_scale": 0.0}, "trainer.output_scale=0.0 must be positive"),
    ({"layer_lr": [1.0, 2.0, 3.0]}, "trainer.layer_lr=[1.0, 2.0, 3.0] has 3 value(s) for model.depth=2"),
    ({"layer_lr": [1.0, "x"]}, "trainer.layer_lr='x' is not a number"),
])
def test_bad_option_values_are_refused_naming_the_key(trainer, needle):
    with pytest.raises(ConfigError) as err:
        resolve_run({"task": {"name": "hierarchy"}, "trainer": trainer})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_run_without_options_records_as_before():
    record = resolve_run({"task": {"name": "hierarchy"}}).record()
    assert not {"weight_decay", "layer_lr", "output_scale"} & set(record["trainer"])
    assert resolve_run({"task": {"name": "hierarchy"}, "trainer": {"weight_decay": 0.1}}).record()[
        "trainer"]["weight_decay"] == [0.1]


def test_train_refuses_options_of_the_wrong_size(setup):
    task, weights = setup
    with pytest.raises(ValueError, match="trainer.layer_lr has shape"):
        train(task, weights, 0.01, t_max=0.1, progress=False, layer_lr=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="weight_decay must be finite and ≥ 0"):
        train(task, weights, 0.01, t_max=0.1, progress=False, weight_decay=-1.0)
    assert math.isclose(float(TrainOptions.of(layer_lr=[4.0, 1.0]).standard(1, 2)[0]), 2.0)  # κ = √(m1m2)
