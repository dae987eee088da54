"""The pieces of lazyrich.train on their own: the schedule (log grid → steps → events), the matrix points,
the divergence guard, the learning-rate and activation checks."""

import math

import pytest
import torch

from lazyrich.init import lambda_balanced
from lazyrich.tasks import hierarchy
from lazyrich.train import (
    ACTIVATIONS,
    _activation,
    _DivergenceGuard,
    _matrix_index,
    _Schedule,
    log_grid,
    lr_per_network,
    train,
)


def test_schedule_steps_events_and_finish_by_hand():
    # grid t = 0, 0.5, 1 at lr 0.1 → steps 0, 5, 10; at lr 0.25 → 0, 2, 4.
    sched = _Schedule.plan(torch.tensor([0.1, 0.25], dtype=torch.float64), 1.0, 3, "linear", 21, None)
    torch.testing.assert_close(sched.steps, torch.tensor([[0, 5, 10], [0, 2, 4]]))
    assert sorted(sched.events) == [0, 2, 4, 5, 10]
    rows, cols = sched.events[0]
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 0]
    assert [(r.tolist(), c.tolist()) for r, c in (sched.events[k] for k in (2, 4, 5, 10))] == [
        ([1], [1]), ([1], [2]), ([0], [1]), ([0], [2])]
    assert sched.finish == {10: [0], 4: [1]} and sched.total == 10


def test_every_log_point_is_one_event_at_its_own_step():
    lr = torch.tensor([1e-3, 3e-3, 7e-3], dtype=torch.float64)
    sched = _Schedule.plan(lr, 5.0, 21, "log", 5, None)
    seen = torch.zeros(3, 21, dtype=torch.long)
    for step, (rows, cols) in sched.events.items():
        assert bool((sched.steps[rows, cols] == step).all())
        seen[rows, cols] += 1
    assert bool((seen == 1).all())
    # The steps follow the log grid: each within half a step of its t, t_max hit exactly.
    grid = log_grid(5.0, 21, "log")
    assert float((sched.steps * lr[:, None] - grid).abs().max()) <= float(lr.max()) / 2 + 1e-12  # + rounding, t ≤ 5


def test_log_points_that_share_a_step_record_the_same_state():
    # lr = 0.01 against a log grid from t = 0.005: the first points round to the same few steps.
    task = hierarchy()
    w = list(lambda_balanced(8, 8, 8, [0.0, 2.0], scale=0.1, generator=torch.Generator().manual_seed(0)))
    traj = train(task, w, 0.01, t_max=5.0, n_log=31, spacing="log", progress=False)
    loss = traj.scalars["loss"]
    pairs = [(i, j) for i in range(31) for j in range(i + 1, 31) if traj.step[0, i] == traj.step[0, j]]
    assert pairs, "this grid should put several log points on one step"
    for i, j in pairs:
        torch.testing.assert_close(loss[:, i], loss[:, j], rtol=0, atol=0)
    assert not torch.equal(loss[:, 0], loss[:, -1])


@pytest.mark.parametrize(("n_log", "n_matrix", "expected"), [
    (101, 21, list(range(0, 101, 5))),
    (11, 1, [0, 10]),  # at least both ends
    (5, 50, [0, 1, 2, 3, 4]),  # never more than the log points
    (7, 3, [0, 3, 6]),
])
def test_matrix_points_are_spread_evenly_and_include_both_ends(n_log, n_matrix, expected):
    assert _matrix_index(n_log, n_matrix).tolist() == expected


def test_divergence_guard_marks_each_network_once_with_its_step_and_lr():
    guard = _DivergenceGuard(torch.tensor([0.5, 2.0, 0.1]), explode=10.0,
                             lr=torch.tensor([0.01, 0.02, 0.5], dtype=torch.float64),
                             rate=torch.tensor([40.0, 80.0, 3.0], dtype=torch.float64))
    # limits: 10 × max(loss0, 1) = 10, 20, 10
    assert guard.check(3, torch.tensor([9.9, 19.0, 1.0])) is None
    bad = guard.check(5, torch.tensor([10.5, 19.0, math.nan]))
    assert bad.tolist() == [True, False, True]
    assert guard.diverged_step.tolist() == [5, -1, 5]
    bad = guard.check(7, torch.tensor([math.inf, 25.0, math.nan]))  # 0 and 2 are already out
    assert bad.tolist() == [False, True, False]
    assert guard.diverged_step.tolist() == [5, 7, 5]
    assert guard.status == ["diverged"] * 3
    assert len(guard.messages) == 3
    assert guard.messages[0].startswith("network 0 diverged at step 5 (t=0.05, lr=0.01)")
    assert guard.messages[2].startswith("network 1 diverged at step 7 (t=0.14, lr=0.02)")
    assert "that rate is 40 " in guard.messages[0] and "lr × rate = 0.4:" in guard.messages[0]  # its own rate


def test_divergence_guard_leaves_healthy_networks_alone():
    guard = _DivergenceGuard(torch.tensor([3.0, 0.2]), explode=1e8, lr=torch.tensor([0.1, 0.1]),
                             rate=torch.tensor([1.0, 1.0]))
    assert guard.check(10, torch.tensor([1e8, 5e7])) is None  # below 3e8 and 1e8
    assert guard.status == ["ok", "ok"] and guard.diverged_step.tolist() == [-1, -1] and not guard.messages


def test_learning_rates_broadcast_or_match_the_batch():
    torch.testing.assert_close(lr_per_network(0.1, 3), torch.full((3,), 0.1, dtype=torch.float64))
    torch.testing.assert_close(lr_per_network([0.1, 0.2], 2), torch.tensor([0.1, 0.2], dtype=torch.float64))
    for bad in ([0.1, 0.2], [0.1, -0.2, 0.3], math.inf):
        with pytest.raises(ValueError, match="lr must be positive and finite"):
            lr_per_network(bad, 3)


def test_activation_names():
    assert _activation(None) is None and _activation("none") is None and _activation("linear") is None
    assert _activation("tanh") is ACTIVATIONS["tanh"]
    with pytest.raises(ValueError, match="activation='gelu' is unknown"):
        _activation("gelu")
