"""A run's summary means what it says: agreement, time to learn and the theory's own measures (issue 19, items 1, 2, 4).

References are independent: the loss floor against a brute-force search over rank-r maps, the time to learn against
the trainer's curve read by hand, the diverged network against its own status.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lazyrich import metrics, tasks
from lazyrich.experiment import run_experiment

NOISY = {"name": "student_teacher", "n_in": 4, "n_hidden": 4, "n_out": 3, "n_samples": 64, "noise": 0.3,
         "seed": 1}
"""A task no linear map fits exactly: 64 noisy samples, 4 inputs (its loss floor is about noise²/2)."""


def _run(**changes):
    cfg = {"task": dict(NOISY), "init": {"lam": [-2.0, 2.0], "scale": 0.1},
           "trainer": {"lr": 0.01, "t_max": 12.0, "n_log": 121, "progress": False}, "theory": {"name": "exact"}}
    for group, values in changes.items():
        cfg[group] = {**cfg.get(group, {}), **values} if isinstance(values, dict) else values
    return run_experiment(cfg)


def test_the_loss_floor_is_the_best_linear_map_of_each_rank():
    task = tasks.make(**{k: v for k, v in NOISY.items() if k != "name"}, name="student_teacher")
    sxx, syx, syy = task.sigma_xx, task.sigma_yx, task.sigma_yy
    _, l_min = metrics.least_squares_optimum(sxx, syx, syy, task.X, task.Y)
    full = metrics.loss_floor(sxx, syx, syy)
    assert float(full) > 0.01 and abs(float(full) - float(l_min)) <= 1e-12 * float(l_min)  # float64 round-off
    # rank 1, independently: minimise the loss over factors a bᵀ (L-BFGS from several starts)
    from scipy.optimize import minimize

    def loss(x: np.ndarray) -> float:
        w = torch.from_numpy(np.outer(x[:3], x[3:]))
        return float(metrics.loss_from_product(w, sxx, syx, syy))

    rng = np.random.default_rng(0)
    best = min(minimize(loss, rng.normal(size=7), method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12}).fun
               for _ in range(8))
    one = float(metrics.loss_floor(sxx, syx, syy, rank=1))
    assert abs(best - one) <= 1e-8 * one and one > float(full)  # L-BFGS converges to ~1e-10 here


def test_time_to_learn_is_measured_above_the_loss_floor_for_the_simulation_and_the_theory():
    result = _run()
    summary, traj = result.summary, result.trajectories[0]
    task = result.task
    floor = float(metrics.loss_floor(task.sigma_xx, task.sigma_yx, task.sigma_yy))
    assert summary["time_to_1pct"].notna().all()  # relative to the initial loss it was NaN: the floor is > 1%
    t, loss = traj.t[0].numpy(), traj.scalars["loss"][0].numpy() - floor
    k = int(np.flatnonzero(loss <= 0.01 * loss[0])[0])
    assert t[k - 1] <= summary.loc[0, "time_to_1pct"] <= t[k]  # bracketed by the log points around the crossing
    for column in ("theory_time_to_1pct", "theory_kernel_distance_final"):
        assert column in summary and summary[column].notna().all()
    gap = (summary["time_to_1pct"] - summary["theory_time_to_1pct"]).abs() / summary["theory_time_to_1pct"]
    assert (gap < 0.02).all()  # GD at lr·rate ≈ 0.02 runs ≲ 1% ahead of the flow
    assert summary["time_to_1pct_resolved"].all()


def test_a_crossing_inside_the_first_logged_interval_is_flagged_unresolved():
    coarse = _run(trainer={"n_log": 3, "t_max": 12.0}, init={"lam": [40.0]})  # learns in t ≈ 0.1, logged at 0, 6
    assert not bool(coarse.summary.loc[0, "time_to_1pct_resolved"])
    assert coarse.summary.loc[0, "time_to_1pct"] <= 6.0


@pytest.mark.slow
def test_a_diverged_network_never_agrees_with_the_theory_and_the_advice_names_its_real_rate():
    cfg = {"task": {"name": "hierarchy"}, "model": {"depth": 4}, "init": {"lam": [-8.0, 8.0]},
           "trainer": {"lr": 0.005, "t_max": 1.0, "n_log": 11, "progress": False}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_experiment(cfg)
    summary = result.summary
    assert (summary["status"] == "diverged").all()
    assert not summary["theory_agrees"].any() and np.isinf(summary["theory_max_rel_err"]).all()
    message = next(str(w.message) for w in caught if "diverged" in str(w.message))
    rate = float(metrics.fastest_rate([w[:1] for w in result.trajectories[0].init_weights],
                                      result.task.sigma_xx)[0])
    assert rate > 1000 and f"{rate:.3g}" in message  # the depth-4 net's curvature, not max(|λ|, s̃₁) = 8


def test_a_gd_theory_is_refused_under_sgd_and_a_flow_theory_says_what_it_does_not_model():
    gd = _run(theory={"name": "aligned_gd"}, trainer={"batch_size": 16, "t_max": 2.0})
    assert gd.predictions[0] is None and "theory_agrees" not in gd.summary
    assert any("aligned_gd skipped" in n and "minibatch SGD" in n for n in gd.theory_notes)
    flow = _run(theory={"name": "exact"}, trainer={"batch_size": 16, "t_max": 2.0})
    assert flow.predictions[0] is not None
    assert (flow.summary["theory_mismatch"] == "minibatch SGD (trainer.batch_size=16)").all()
    assert any("noise-free reference" in n for n in flow.theory_notes)
    full = _run(trainer={"t_max": 2.0})
    assert "theory_mismatch" not in full.summary


@pytest.mark.parametrize("theory", ["auto", "gd_flow"])
def test_auto_and_every_gd_theory_follow_the_same_rule(theory):
    result = _run(theory={"name": theory}, trainer={"batch_size": 16, "t_max": 1.0})
    if theory == "auto":
        assert result.predictions[0] is not None and result.predictions[0].theory == "exact"
    else:
        assert result.predictions[0] is None
