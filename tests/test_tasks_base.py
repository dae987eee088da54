"""Tests for lazyrich/tasks/base.py: Task statistics, whitening, validation, TaskSequence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import rel_err

from lazyrich.tasks import Phase, Task, TaskError, TaskSequence

# float64 products of O(1) entries over P ≤ 100 rows: round-off is ~1e-15 of the result's largest entry (the
# scale rel_err bounds against), so 1e-12 leaves a wide margin while still catching any real error (a wrong
# normalisation is off by O(1)).
EXACT = 1e-12


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def test_statistics_match_definitions() -> None:
    X, Y = _rand(20, 5), _rand(20, 3, seed=1)
    t = Task(X, Y, name="stats")
    assert t.X.dtype == torch.float64 and t.shape == (20, 5, 3)
    assert rel_err(t.sigma_xx, torch.as_tensor(X.T @ X / 20)) <= EXACT
    assert rel_err(t.sigma_yx, torch.as_tensor(Y.T @ X / 20)) <= EXACT
    assert rel_err(t.sigma_yy, torch.as_tensor(Y.T @ Y / 20)) <= EXACT


def test_float32_torch_inputs_become_float64() -> None:
    t = Task(torch.eye(3, dtype=torch.float32), torch.ones(3, 2, dtype=torch.float32))
    assert t.X.dtype == t.Y.dtype == torch.float64


def test_full_svd_shapes_order_and_reconstruction() -> None:
    t = Task(_rand(30, 6), _rand(30, 3, seed=2))
    U, S, V = t.svd
    assert U.shape == (3, 3) and S.shape == (3,) and V.shape == (6, 6)
    assert bool((S[:-1] >= S[1:]).all())
    assert rel_err(V.T @ V, torch.eye(6, dtype=torch.float64)) <= EXACT
    assert rel_err(U @ torch.diag(S) @ V[:, :3].T, t.sigma_yx) <= EXACT


def test_whitening_scale_and_flag() -> None:
    P = 8
    onehot = Task(torch.eye(P), _rand(P, 2))
    assert onehot.whitening_scale == pytest.approx(1 / P) and not onehot.is_whitened
    white = Task(math.sqrt(P) * torch.eye(P, dtype=torch.float64), _rand(P, 2))  # float32 √8² ≠ 8 to 1e-10
    assert white.is_whitened
    assert Task(_rand(50, 4), _rand(50, 2)).whitening_scale is None


@pytest.mark.parametrize("method,k,n_in", [("zca", None, 6), ("pca", 4, 6), ("pca", None, 6)])
def test_whiten_is_exact(method: str, k: int | None, n_in: int) -> None:
    X = _rand(40, n_in) @ np.diag(np.arange(1, n_in + 1))  # anisotropic inputs
    w = Task(X, _rand(40, 3, seed=3)).whiten(method, k=k)
    eye = torch.eye(w.n_in, dtype=torch.float64)
    assert w.n_in == (k or n_in)
    assert rel_err(w.sigma_xx, eye) < EXACT
    assert w.is_whitened
    assert rel_err(w.X, torch.as_tensor(X) @ w.meta["whitening"]) <= EXACT  # the same product: rounding


def test_zca_on_rank_deficient_inputs_advises_pca() -> None:
    X = _rand(30, 3) @ _rand(3, 6, seed=4)  # rank 3 in 6 dimensions
    t = Task(X, _rand(30, 2, seed=5), name="lowrank")
    with pytest.raises(TaskError, match=r"'lowrank'.*rank 3.*pca.*k ≤ 3"):
        t.whiten("zca")
    with pytest.raises(TaskError, match=r"k ≤ 3"):
        t.whiten("pca", k=5)
    assert t.whiten("pca").n_in == 3


@pytest.mark.parametrize(
    "X,Y,pattern",
    [
        (np.ones(4), np.ones((4, 1)), r"'bad'.*X has shape \(4,\).*2-D.*reshape"),
        (np.ones((4, 2)), np.ones((4, 1, 1)), r"'bad'.*Y has shape.*2-D"),
        (np.ones((4, 2)), np.ones((5, 1)), r"'bad'.*X has P=4 rows but Y has 5.*one row per sample"),
        (
            np.array([[1.0, np.nan], [1.0, 2.0]]),
            np.ones((2, 1)),
            r"'bad'.*X contains 1 NaN/inf.*drop or impute",
        ),
        (np.ones((2, 2)), np.array([[np.inf], [1.0]]), r"'bad'.*Y contains 1 NaN/inf"),
        (np.eye(2), np.zeros((2, 1)), r"'bad'.*zero signal.*Σyx.*check that Y"),
        (np.array([[1.0, 0.0], [-1.0, 0.0]]), np.ones((2, 1)), r"'bad'.*zero signal"),
        (np.array([["a", "b"]]), np.ones((1, 1)), r"'bad'.*X is not numeric"),
    ],
)
def test_validation_errors_name_task_field_and_fix(X: np.ndarray, Y: np.ndarray, pattern: str) -> None:
    with pytest.raises(TaskError, match=pattern):
        Task(X, Y, name="bad")


def test_task_error_is_value_error_and_names_checked() -> None:
    assert issubclass(TaskError, ValueError)
    with pytest.raises(TaskError, match=r"item_names has 2 entries but there are 3 items"):
        Task(np.eye(3), np.ones((3, 1)), item_names=["a", "b"])
    with pytest.raises(TaskError, match=r"feature_names has 1 entries but there are 2 outputs"):
        Task(np.eye(3), np.ones((3, 2)), feature_names=["a"])


def test_replace_revalidates_and_meta_is_read_only() -> None:
    t = Task(np.eye(2), np.ones((2, 1)), meta={"a": 1})
    with pytest.raises(TypeError):
        t.meta["a"] = 2  # type: ignore[index]
    with pytest.raises(TaskError, match="zero signal"):
        t.replace(Y=np.zeros((2, 1)))
    assert t.replace(name="other").name == "other"
    assert t.to("cpu") is t
    assert "P=2" in t.describe() and "Ni=2" in t.describe()


def test_task_sequence_checks_dimensions_and_indexes() -> None:
    a, b = Task(np.eye(3), _rand(3, 2)), Task(np.eye(3), _rand(3, 2, seed=1), name="b")
    seq = TaskSequence([Phase(a, 10.0, "first"), b])
    assert len(seq) == 2 and seq[1].name == "b" and seq.tasks == [a, b]
    assert [p.t_budget for p in seq] == [10.0, None]
    assert (seq.n_in, seq.n_out) == (3, 2)
    wrong = Task(np.eye(3), _rand(3, 4), name="wide")
    with pytest.raises(TaskError, match=r"phase 1 \('wide'\) has Ni=3, No=4.*phase 0"):
        TaskSequence([a, wrong], name="s")
    with pytest.raises(TaskError, match="t_budget"):
        Phase(a, -1.0)
    with pytest.raises(TaskError, match="no phases"):
        TaskSequence([])
