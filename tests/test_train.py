"""lazyrich.train: batching, the fast statistics path, divergence, the t grid, balance conservation."""

import math

import pytest
import torch
from conftest import rel_err

from lazyrich.init import gaussian, lambda_balanced
from lazyrich.tasks import Task, hierarchy
from lazyrich.train import log_grid, train


@pytest.fixture(scope="module")
def task():
    return hierarchy()


def _batch(lams, scale=0.1, seed=0, n=8):
    return list(lambda_balanced(n, n, n, lams, scale=scale, generator=torch.Generator().manual_seed(seed)))


def plain_torch_gd(task, w1, w2, lr, steps):
    """Reference: nn.Linear layers, autograd and torch.optim.SGD, one network at a time."""
    net = torch.nn.Sequential(torch.nn.Linear(w1.shape[1], w1.shape[0], bias=False),
                              torch.nn.Linear(w2.shape[1], w2.shape[0], bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[1].weight.copy_(w2)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * ((net(task.X) - task.Y) ** 2).sum() / task.P
        loss.backward()
        opt.step()
    return net[0].weight.detach(), net[1].weight.detach()


def test_trainer_equals_plain_torch_sgd(task):
    w1, w2 = _batch([-1.0, 0.0, 2.0])
    traj = train(task, [w1, w2], 0.05, t_max=5.0, n_log=3, progress=False)
    for b in range(3):
        r1, r2 = plain_torch_gd(task, w1[b], w2[b], 0.05, 100)
        # Same arithmetic in a different order (statistics vs data): agreement to ~1e-14 after 100 steps, of
        # each matrix's largest weight.
        assert rel_err(traj.final_weights[0][b], r1) <= 1e-10 and rel_err(traj.final_weights[1][b], r2) <= 1e-10


@pytest.mark.slow
def test_batch_equals_separate_runs(task):
    w = _batch([-5.0, -1.0, 0.0, 1.0, 5.0])
    lrs = [0.01, 0.02, 0.01, 0.005, 0.01]
    together = train(task, w, lrs, t_max=2.0, n_log=11, progress=False)
    for b in range(5):
        alone = train(task, [x[b : b + 1] for x in w], lrs[b], t_max=2.0, n_log=11, progress=False)
        for name, value in alone.scalars.items():  # the same per-network arithmetic: rounding at most
            assert rel_err(together.scalars[name][b : b + 1], value, equal_nan=True) <= 1e-12, name


@pytest.mark.slow
def test_statistics_path_equals_the_data_path(task):
    w = _batch([0.0, 3.0])
    fast = train(task, w, 0.01, t_max=1.0, n_log=5, progress=False)
    slow = train(task, w, 0.01, t_max=1.0, n_log=5, progress=False, batch_size=task.P)  # autograd, full batch
    # Statistics vs autograd on the data: rounding in another order, 1e-12 of each net's loss.
    assert rel_err(fast.scalars["loss"], slow.scalars["loss"], batch_dims=1) <= 1e-12


def test_networks_with_different_lr_share_the_t_grid(task):
    w = _batch([0.0, 0.0, 0.0])
    traj = train(task, w, [0.01, 0.02, 0.04], t_max=2.0, n_log=5, progress=False)
    # Each network logs at the step nearest each grid point: within half a step of it, and exactly at t_max.
    for row, lr in zip(traj.t, [0.01, 0.02, 0.04], strict=True):
        assert float((row - log_grid(2.0, 5)).abs().max()) <= lr / 2 + 1e-12  # + rounding of step·lr ≤ 2
        assert float(row[-1]) == pytest.approx(2.0)
    torch.testing.assert_close(traj.step[:, -1], torch.tensor([200, 100, 50]))


def test_log_spacing():
    grid = log_grid(10.0, 5, "log", t_min=0.01)
    torch.testing.assert_close(grid, torch.tensor([0.0, 0.01, 0.1, 1.0, 10.0], dtype=torch.float64))


@pytest.mark.slow
def test_divergence_is_recorded_and_the_rest_of_the_batch_goes_on(task):
    w = _batch([0.0, 0.0], scale=1.0)
    with pytest.warns(RuntimeWarning, match="diverged at step"):
        traj = train(task, w, [0.01, 3.0], t_max=30.0, n_log=11, progress=False)
    assert traj.status == ["ok", "diverged"]
    assert traj.diverged_step[1] > 0 and traj.diverged_step[0] == -1
    assert math.isnan(float(traj.scalars["loss"][1, -1]))
    alone = train(task, [x[:1] for x in w], 0.01, t_max=30.0, n_log=11, progress=False)
    assert rel_err(traj.scalars["loss"][:1], alone.scalars["loss"]) <= 1e-12  # its own arithmetic: rounding


def test_rows_of_a_trajectory_are_those_networks_renumbered(task):
    w = _batch([0.0, 0.0, 1.0, 0.0], scale=1.0)
    traj = train(task, w, [0.01, 3.0, 0.01, 3.0], t_max=30.0, n_log=11, n_matrix=3, progress=False, warn=False)
    assert traj.status == ["ok", "diverged", "ok", "diverged"] and len(traj.messages) == 2
    part = traj.rows(1, 3)
    assert part.batch == 2 and part.status == ["diverged", "ok"]
    assert torch.equal(part.t, traj.t[1:3]) and torch.equal(part.step, traj.step[1:3])
    assert torch.equal(part.lr, traj.lr[1:3]) and torch.equal(part.diverged_step, traj.diverged_step[1:3])
    assert torch.equal(part.matrix_index, traj.matrix_index)
    for whole, rows in ((traj.scalars, part.scalars), (traj.matrices, part.matrices)):
        assert set(rows) == set(whole)
        for k in whole:
            torch.testing.assert_close(rows[k], whole[k][1:3], rtol=0, atol=0, equal_nan=True)
    for whole, rows in ((traj.init_weights, part.init_weights), (traj.final_weights, part.final_weights)):
        for a, b in zip(rows, whole, strict=True):
            torch.testing.assert_close(a, b[1:3], rtol=0, atol=0, equal_nan=True)
    # Network 1's message, renumbered as network 0 of the part; network 3's left out.
    assert part.messages == [traj.messages[0].replace("network 1 ", "network 0 ", 1)]
    assert traj.messages[0].startswith("network 1 diverged") and traj.rows(0, 1).messages == []


def _drift(task, lr, lams, steps):
    w = _batch(lams, scale=0.1)
    traj = train(task, w, lr, t_max=steps * lr, n_log=3, progress=False)
    return traj.scalars["balance_drift_1"][:, -1]


@pytest.mark.slow
def test_balance_is_conserved_up_to_discretisation_error(task):
    lams = [-5.0, 0.0, 5.0]
    drift = _drift(task, 1e-3, lams, 2000)
    # GD changes W2ᵀW2 − W1W1ᵀ by O(η²) per step, so by O(η·t) in total: at η = 1e-3, t = 2 the measured drift is
    # 6e-5 of the terms' size at |λ| = 5 and 1.9e-4 at λ = 0 (there the reference, the init Grams at scale 0.1, is
    # small). 5e-4 bounds all three with margin; the flow itself conserves the quantity exactly.
    assert float(drift.max()) < 5e-4
    # Halving η at the same t halves the drift: first order in η, i.e. the O(η²)-per-step error of GD.
    half = _drift(task, 5e-4, lams, 4000)
    ratio = drift / half
    assert torch.all((ratio[[0, 2]] > 1.8) & (ratio[[0, 2]] < 2.2)), ratio


def test_deep_and_nonlinear_nets_train(task):
    ws = gaussian([8, 8, 8, 8], 0.5, generator=torch.Generator().manual_seed(5), batch=2)
    deep = train(task, ws, 0.05, t_max=5.0, n_log=3, progress=False)
    assert float(deep.scalars["loss"][0, -1]) < float(deep.scalars["loss"][0, 0])
    assert "balance_drift_2" in deep.scalars
    relu = train(task, ws, 0.05, t_max=5.0, n_log=3, progress=False, activation="relu")
    assert torch.isnan(relu.scalars["kernel_distance"]).all()  # no closed-form NTK for nonlinear nets
    assert torch.isfinite(relu.scalars["loss"]).all()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"lr": -1.0}, "lr must be positive"),
        ({"lr": [0.1, 0.1, 0.1]}, "one per network"),
        ({"activation": "gelu"}, "activation='gelu' is unknown"),
        ({"batch_size": 100}, "batch_size must be in"),
        ({"t_max": 0.0}, "t_max must be positive"),
    ],
)
def test_bad_arguments(task, kwargs, needle):
    args = {"lr": 0.1, "t_max": 1.0, **kwargs}
    with pytest.raises(ValueError, match=needle):
        train(task, _batch([0.0, 1.0]), progress=False, **args)


def test_shape_mismatch_with_the_task(task):
    other = Task(torch.eye(3, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64), name="tiny")
    with pytest.raises(ValueError, match="task 'tiny' has n_in=3, n_out=2"):
        train(other, _batch([0.0]), 0.1, t_max=1.0, progress=False)
