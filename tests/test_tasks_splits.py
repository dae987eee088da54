"""Held-out data of a task (lazyrich.tasks: Task.heldout and the ``n_test`` of the generators): what it holds, how
it follows the task through whitening, moves and replacements, and that the training data do not depend on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyrich import init, tasks
from lazyrich.tasks import Task, TaskError
from lazyrich.train import train

F64 = torch.float64


def test_a_task_carries_held_out_data_of_its_widths():
    x, y = torch.randn(10, 3, dtype=F64), torch.randn(10, 2, dtype=F64)
    task = Task(x, y, heldout=(torch.randn(5, 3), torch.randn(5, 2)))
    assert task.heldout.P == 5 and task.heldout.sigma_yx.shape == (2, 3)
    assert "held-out P*=5" in task.describe()
    with pytest.raises(TaskError, match="held-out data maps Ni=4"):
        Task(x, y, heldout=(torch.randn(5, 4), torch.randn(5, 2)))


def test_new_inputs_or_targets_drop_the_held_out_data_other_fields_keep_it():
    task = tasks.make("random_regression", n_in=3, n_out=3, n_test=20)
    assert task.replace(name="renamed").heldout is task.heldout
    assert task.replace(Y=-task.Y).heldout is None  # the held-out rows belonged to the old targets
    assert tasks.reverse(task).heldout is None
    assert task.to("cpu").heldout is task.heldout


def test_whitening_maps_the_held_out_inputs_with_the_training_map():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=gen, dtype=F64) + 1.0, torch.randn(30, 2, generator=gen, dtype=F64)
    x_test = torch.randn(12, 4, generator=gen, dtype=F64) + 1.0
    task = Task(x, y, heldout=(x_test, torch.randn(12, 2, generator=gen, dtype=F64)))
    for method, center in (("zca", False), ("pca", True)):
        white = task.whiten(method, center=center)
        mean = x.mean(0) if center else 0.0
        torch.testing.assert_close(white.heldout.X, (x_test - mean) @ white.meta["whitening"])
        torch.testing.assert_close(white.X, (x - mean) @ white.meta["whitening"])  # the very same map
        assert white.is_whitened and white.heldout.whitening_scale is None  # held-out rows are not whitened


def test_student_teacher_held_out_rows_follow_the_teacher_and_leave_the_training_data_alone():
    plain = tasks.make("student_teacher", n_in=6, n_out=3, n_samples=20, noise=0.0)
    split = tasks.make("student_teacher", n_in=6, n_out=3, n_samples=20, noise=0.0, n_test=50)
    assert torch.equal(plain.X, split.X) and torch.equal(plain.Y, split.Y) and plain.heldout is None
    held = split.heldout
    torch.testing.assert_close(held.Y, held.X @ split.meta["teacher"].T)  # noise-free: the teacher exactly
    noisy = tasks.make("student_teacher", n_in=6, n_out=3, n_samples=20, noise=0.5, n_test=2000)
    residual = noisy.heldout.Y - noisy.heldout.X @ noisy.meta["teacher"].T
    assert float(residual.std()) == pytest.approx(0.5, rel=0.05)
    under = tasks.make("student_teacher", n_in=16, n_samples=8, whiten_inputs=False, n_test=30)
    assert under.P == 8 and under.heldout.P == 30


def test_random_regression_held_out_rows_are_noise_free_samples_of_sigma_yx():
    task = tasks.make("random_regression", n_in=4, n_out=3, n_test=25, seed=2)
    assert torch.equal(task.X, tasks.make("random_regression", n_in=4, n_out=3, seed=2).X)
    torch.testing.assert_close(task.heldout.Y, task.heldout.X @ task.meta["sigma_yx"].T)


@pytest.mark.slow
def test_digits_held_out_samples_are_disjoint_and_seeded():
    task = tasks.make("digits", n_samples=300, n_test=200, seed=1)
    assert task.P == 300 and task.heldout.P == 200 and task.heldout.n_in == task.n_in == 16
    from sklearn.datasets import load_digits

    raw = load_digits().data
    train_idx, test_idx = _rows(raw, task.X, task.meta), _rows(raw, task.heldout.X, task.meta)
    assert not set(train_idx) & set(test_idx)
    assert torch.equal(tasks.make("digits", n_samples=300, n_test=200, seed=1).heldout.X, task.heldout.X)
    assert tasks.make("digits", n_test=97).P == 1797 - 97
    with pytest.raises(TaskError, match="n_test=1797"):
        tasks.make("digits", n_test=1797)


def _rows(raw: np.ndarray, x: torch.Tensor, meta) -> list[int]:
    """Indices into the raw digits of whitened rows ``x``, through the task's whitening map (nearest row)."""
    projected = (raw - meta["whitening_mean"].numpy()) @ meta["whitening"].numpy()
    return [int(np.argmin(((projected - row) ** 2).sum(-1))) for row in x.numpy()]


@pytest.mark.slow
def test_mnist1d_holds_out_the_other_split():
    task = tasks.make("mnist1d", n_samples=200, n_test=100)
    assert task.P == 200 and task.heldout.P == 100 and task.meta["n_test"] == 100
    assert task.heldout.n_in == task.n_in


def test_the_trainer_logs_the_test_loss_of_the_held_out_data():
    task = tasks.make("student_teacher", n_in=4, n_out=2, n_samples=12, noise=0.2, n_test=40)
    weights = list(init.lambda_balanced(4, 2, 2, [0.5], scale=0.2, generator=torch.Generator().manual_seed(0)))
    traj = train(task, weights, 0.01, t_max=2.0, n_log=5, progress=False)
    product = traj.final_weights[1] @ traj.final_weights[0]
    held = task.heldout
    expected = 0.5 * ((held.X @ product[0].mT - held.Y) ** 2).sum() / held.P
    torch.testing.assert_close(traj.scalars["test_loss"][0, -1], expected, rtol=1e-12, atol=1e-14)
    relu = train(task, weights, 0.01, t_max=0.5, n_log=3, progress=False, activation="relu")
    assert bool(torch.isfinite(relu.scalars["test_loss"]).all())
    assert "test_loss" not in train(tasks.make("hierarchy"), list(init.lambda_balanced(
        8, 8, 8, [0.0], scale=0.1)), 0.01, t_max=0.1, n_log=2, progress=False).scalars
