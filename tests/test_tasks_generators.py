"""Tests for lazyrich/tasks/generators.py: hierarchy spectra, random regression, student–teacher."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import rel_err

from lazyrich.tasks import TaskError, hierarchy, make, random_regression, student_teacher

# Singular values of small float64 matrices come out of a backward-stable SVD with error ~ 1e-16·‖Σ‖, tied
# values included; 1e-12 of the largest (rel_err's scale) leaves room for that and still fails on any wrong
# encoding (errors of O(0.1)).
EXACT = 1e-12


def _sorted_desc(values: list[float]) -> torch.Tensor:
    return torch.tensor(sorted(values, reverse=True), dtype=torch.float64)


def signed_spectrum(depth: int, b: int) -> torch.Tensor:
    """docs/theory.md §10: root feature → 1; each internal level ℓ → b^(−ℓ/2), (b−1)·b^ℓ times."""
    values = [1.0]
    for level in range(depth):
        values += [b ** (-level / 2)] * ((b - 1) * b**level)
    return _sorted_desc(values)


def membership_spectrum(depth: int, b: int) -> torch.Tensor:
    """Eigen-analysis of the ultrametric Gram matrix of 0/1 node memberships (Saxe et al. 2019)."""
    P = b**depth
    values = [math.sqrt(sum(b ** (depth - k) for k in range(depth + 1)) / P)]
    for level in range(depth):
        values += [math.sqrt(sum(b ** (depth - k) for k in range(level + 1, depth + 1)) / P)] * (
            (b - 1) * b**level
        )
    return _sorted_desc(values)


def test_default_hierarchy_matches_theory_md() -> None:
    t = hierarchy()
    assert t.shape == (8, 8, 8) and t.is_whitened
    expected = torch.tensor([1, 1, 2**-0.5, 2**-0.5, 0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    assert rel_err(t.svd[1], expected) <= EXACT
    assert t.item_names[0] == "leaf0" and t.feature_names[:2] == ("root", "n0")


@pytest.mark.parametrize("depth,b", [(1, 2), (2, 2), (3, 2), (4, 2), (2, 3), (2, 4), (3, 3)])
def test_signed_hierarchy_spectrum(depth: int, b: int) -> None:
    t = hierarchy(depth=depth, branching=b)
    assert t.n_out == b**depth
    assert rel_err(t.svd[1], signed_spectrum(depth, b)) <= EXACT


@pytest.mark.parametrize("depth,b", [(1, 2), (3, 2), (2, 3), (3, 3)])
def test_membership_hierarchy_spectrum(depth: int, b: int) -> None:
    t = hierarchy(depth=depth, branching=b, encoding="membership")
    assert t.n_out == (b ** (depth + 1) - 1) // (b - 1)
    assert rel_err(t.svd[1], membership_spectrum(depth, b)) <= EXACT


def test_binary_signed_features_are_plus_left_minus_right() -> None:
    Y = hierarchy(depth=2).Y
    assert Y[:, 0].tolist() == [1, 1, 1, 1]  # root
    assert Y[:, 1].tolist() == [1, 1, -1, -1]  # root split
    assert Y[:, 2].tolist() == [1, -1, 0, 0] and Y[:, 3].tolist() == [0, 0, 1, -1]


def test_break_symmetry_splits_ties_deterministically() -> None:
    eps = 0.1
    t = hierarchy(break_symmetry=eps)
    # level groups (docs/theory.md order): [root, n0] × 1, level 1 × 2^-1/2, level 2 × 1/2, j-th scaled by 1 + εj
    expected = (
        [1.0, 1.1] + [2**-0.5 * (1 + eps * j) for j in range(2)] + [0.5 * (1 + eps * j) for j in range(4)]
    )
    assert rel_err(t.svd[1], _sorted_desc(expected)) <= EXACT
    assert bool((t.svd[1][:-1] - t.svd[1][1:] > 1e-3).all())
    with pytest.raises(TaskError, match="break_symmetry"):
        hierarchy(break_symmetry=-0.5)


def test_hierarchy_noise_is_seeded() -> None:
    a, b, c = hierarchy(noise=0.1, seed=1), hierarchy(noise=0.1, seed=1), hierarchy(noise=0.1, seed=2)
    assert torch.equal(a.Y, b.Y) and not torch.equal(a.Y, c.Y)
    assert float((a.Y - hierarchy().Y).std()) == pytest.approx(0.1, rel=0.5)  # 64 draws: loose on purpose


def test_hierarchy_rejects_bad_parameters() -> None:
    with pytest.raises(TaskError, match="encoding"):
        hierarchy(encoding="onehot")
    with pytest.raises(TaskError, match="branching"):
        hierarchy(branching=1)


@pytest.mark.parametrize("n_in,n_out,n_samples", [(6, 4, None), (4, 6, None), (6, 4, 50)])
def test_random_regression_reproduces_prescribed_spectrum(
    n_in: int, n_out: int, n_samples: int | None
) -> None:
    s = [3.0, 2.0, 1.0, 0.5]
    t = random_regression(n_in=n_in, n_out=n_out, singular_values=s, n_samples=n_samples, seed=3)
    assert t.P == (n_samples or n_in)
    assert rel_err(t.sigma_xx, torch.eye(n_in, dtype=torch.float64)) < EXACT
    assert rel_err(t.svd[1], torch.tensor(s, dtype=torch.float64)) <= EXACT
    assert rel_err(t.sigma_yx, t.meta["sigma_yx"]) <= EXACT


def test_random_regression_defaults_padding_and_given_vectors() -> None:
    t = random_regression()
    assert rel_err(t.svd[1], torch.linspace(2, 0.5, 8, dtype=torch.float64)) <= EXACT
    padded = random_regression(n_in=3, n_out=3, singular_values=[1.0])
    assert rel_err(padded.svd[1], torch.tensor([1.0, 0, 0], dtype=torch.float64)) <= EXACT
    U, V = torch.eye(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64).flip(1)
    given = random_regression(n_in=3, n_out=3, singular_values=[3, 2, 1], U=U, V=V)
    want = U @ torch.diag(torch.tensor([3.0, 2, 1], dtype=torch.float64)) @ V.T
    assert rel_err(given.sigma_yx, want) <= EXACT
    with pytest.raises(TaskError, match="orthonormal"):
        random_regression(n_in=3, n_out=3, U=2 * U)
    with pytest.raises(TaskError, match="at most m"):
        random_regression(n_in=2, n_out=2, singular_values=[1, 1, 1])
    with pytest.raises(TaskError, match="n_samples"):
        random_regression(n_in=8, n_samples=4)
    assert torch.equal(random_regression(seed=5).Y, random_regression(seed=5).Y)
    assert not torch.equal(random_regression(seed=5).Y, random_regression(seed=6).Y)


def test_student_teacher_is_whitened_low_rank_teacher() -> None:
    t = student_teacher(n_in=8, n_hidden=3, n_out=5, n_samples=40, seed=1)
    assert t.is_whitened and t.shape == (40, 8, 5)
    assert rel_err(t.sigma_yx, t.meta["teacher"]) <= EXACT  # noise-free, Σxx = I
    assert float(t.svd[1][3:].max()) < EXACT * float(t.svd[1][0])  # rank ≤ n_hidden: zeros to rounding of s₁
    assert not student_teacher(whiten_inputs=False).is_whitened
    noisy = student_teacher(noise=0.5, seed=1, n_in=8, n_hidden=3, n_out=5, n_samples=40)
    assert not torch.allclose(noisy.Y, t.Y)
    with pytest.raises(TaskError, match="whiten_inputs=False"):
        student_teacher(n_in=8, n_samples=4)


def test_generators_are_registered() -> None:
    assert make("hierarchy", depth=2).shape == (4, 4, 4)
    assert make("random_regression", n_in=3, n_out=2).shape == (3, 3, 2)
    assert make("student_teacher", n_samples=16).P == 16


def test_membership_features_cover_the_leaves_below_each_node_in_breadth_first_order() -> None:
    from lazyrich.tasks.generators import _membership_features

    columns, names, levels = _membership_features(2, 3)  # root, 3 internal nodes, 9 leaves
    assert names == ["root", "n1", "n2", "n3"] + [f"leaf{q}" for q in range(9)]
    assert levels == [0] + [1] * 3 + [2] * 9
    Y = torch.stack(columns, dim=1)
    assert Y.sum(0).tolist() == [9.0] + [3.0] * 3 + [1.0] * 9
    assert Y[:, 1:4].sum(1).tolist() == [1.0] * 9 and Y[:, 4:].sum(1).tolist() == [1.0] * 9  # a partition per level
    assert Y[:, 2].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0]  # node n2 holds leaves 3..5


def test_level_scales_count_within_each_level_and_refuse_non_positive_scales() -> None:
    from lazyrich.tasks.generators import _level_scales

    scales = _level_scales([0, 0, 1, 1, 1, 2], 0.1)
    torch.testing.assert_close(scales, torch.tensor([1.0, 1.1, 1.0, 1.1, 1.2, 1.0], dtype=torch.float64))
    with pytest.raises(TaskError, match=r"1 \+ ε·j ≤ 0 \(j up to 2\)"):
        _level_scales([0, 0, 0], -0.5)
