"""Tests for lazyrich/tasks/transforms.py: reversal, transfer pairs, new feature/item, continual streams."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import rel_err

from lazyrich.tasks import (
    Task,
    TaskError,
    TaskSequence,
    continual_stream,
    flip_modes,
    hierarchy,
    make,
    new_feature,
    new_item,
    random_regression,
    rescaled_pair,
    reversal_sequence,
    reverse,
    rotated_pair,
    student_teacher,
    swap_items,
    swap_outputs,
)

# All quantities are float64 products/SVDs of matrices with O(1) entries and spectral gaps ≥ 0.1: round-off
# is ~1e-15 (singular vectors: ~1e-16/gap), so 1e-10 is safe, while a wrong construction is off by O(0.1).
# Bounds are relative to the reference's largest entry (rel_err), except on cosines, which are their own scale.
TOL = 1e-10


def _principal_cosines(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Cosines of the principal angles between the column spans of orthonormal A and B."""
    return torch.linalg.svdvals(A.T @ B)


def test_reverse_flips_sigma_yx_exactly() -> None:
    t = hierarchy()
    r = reverse(t)
    assert torch.equal(r.sigma_yx, -t.sigma_yx)  # negation is exact in IEEE arithmetic
    assert torch.equal(r.X, t.X) and r.name == "hierarchy-reversed"


def test_flip_modes_flips_exactly_the_chosen_modes() -> None:
    t = random_regression(n_in=6, n_out=5, seed=2)  # distinct singular values 2 … 0.5
    U, S, V = t.svd
    f = flip_modes(t, [0, 2])
    expected = t.sigma_yx - 2 * sum(S[a] * torch.outer(U[:, a], V[:, a]) for a in (0, 2))
    assert rel_err(f.sigma_yx, expected) <= TOL
    coupling = U.T @ f.sigma_yx @ V[:, :5]  # the source's basis diagonalises the result
    sign = torch.tensor([-1.0, 1, -1, 1, 1], dtype=torch.float64)
    assert rel_err(coupling, torch.diag(sign * S)) <= TOL
    assert rel_err(f.svd[1], S) <= TOL


def test_flip_modes_with_sigma_xx_a_multiple_of_identity() -> None:
    t = Task(torch.eye(4, dtype=torch.float64), hierarchy(depth=2, break_symmetry=0.1).Y)  # Σxx = I/4
    U, S, V = t.svd
    f = flip_modes(t, [3])
    expected = t.sigma_yx - 2 * S[3] * torch.outer(U[:, 3], V[:, 3])
    assert rel_err(f.sigma_yx, expected) <= TOL


def test_flip_modes_keeps_the_unexplained_part_of_y() -> None:
    t = student_teacher(n_samples=30, noise=0.3, seed=4)  # Y has a residual outside span(X)
    f = flip_modes(t, [1])
    residual = lambda task: task.Y - task.X @ task.sigma_yx.T  # noqa: E731
    assert rel_err(residual(f), residual(t)) <= TOL
    with pytest.raises(TaskError, match="whiten"):
        flip_modes(
            Task(torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 2, dtype=torch.float64)), [0]
        )


def test_swaps() -> None:
    t = hierarchy()
    so = swap_outputs(t, 0, 2)
    assert torch.equal(so.Y[:, 0], t.Y[:, 2]) and torch.equal(so.Y[:, 2], t.Y[:, 0])
    assert so.feature_names[0] == t.feature_names[2]
    si = swap_items(t, "leaf0", "leaf7")
    assert torch.equal(si.Y[0], t.Y[7]) and torch.equal(si.Y[7], t.Y[0]) and si.item_names == t.item_names
    with pytest.raises(TaskError, match="out of range"):
        swap_items(t, 0, 8)


@pytest.mark.parametrize("kind", ["full", "modes", "outputs", "items"])
def test_reversal_sequence(kind: str) -> None:
    seq = reversal_sequence(hierarchy(), kind=kind, t_budget=5.0)
    assert isinstance(seq, TaskSequence) and [p.name for p in seq] == ["learn", "reversal"]
    assert seq[1].t_budget == 5.0
    if kind in ("full", "modes"):  # flipping every nonzero mode is the full reversal
        assert rel_err(seq[1].task.sigma_yx, -seq[0].task.sigma_yx) <= TOL
    with pytest.raises(TaskError, match="unknown reversal kind"):
        reversal_sequence(hierarchy(), kind="sideways")


@pytest.mark.parametrize("side", ["input", "output", "both"])
@pytest.mark.parametrize("angle", [0.0, 0.3, 1.2, math.pi / 2])
def test_rotated_pair_principal_angle_is_the_requested_one(side: str, angle: float) -> None:
    src = random_regression(n_in=8, n_out=6, seed=1)
    pair = rotated_pair(src, angle, side=side)
    tgt = pair[1].task
    Us, S, Vs = src.svd
    Ut, St, Vt = tgt.svd  # measured on the target as built
    assert rel_err(St, S) <= TOL
    cos_in = _principal_cosines(Vs[:, :4], Vt[:, :4])  # h = ⌊8/2⌋
    cos_out = _principal_cosines(Us[:, :3], Ut[:, :3])  # h = ⌊6/2⌋
    want_in = math.cos(angle) if side in ("input", "both") else 1.0
    want_out = math.cos(angle) if side in ("output", "both") else 1.0
    # Cosines are dimensionless and bounded by 1 (and 0 at π/2): absolute TOL, not relative.
    assert torch.allclose(cos_in, torch.full((4,), want_in, dtype=torch.float64), atol=TOL, rtol=0)
    assert torch.allclose(cos_out, torch.full((3,), want_out, dtype=torch.float64), atol=TOL, rtol=0)


def test_rotated_pair_from_params_and_errors() -> None:
    pair = rotated_pair({"n_in": 4, "n_out": 4, "seed": 3}, 0.2)
    assert [p.name for p in pair] == ["source", "target"]
    with pytest.raises(TaskError, match=r"\[0, π/2\]"):
        rotated_pair(pair[0].task, 2.0)


def test_rescaled_pair_keeps_vectors() -> None:
    src = random_regression(n_in=5, n_out=5, seed=7)
    tgt = rescaled_pair(src, scale=2.0)[1].task
    assert rel_err(tgt.sigma_yx, 2 * src.sigma_yx) <= TOL
    new_s = [5.0, 4.0, 3.0, 2.0, 1.0]
    tgt2 = rescaled_pair(src, singular_values=new_s)[1].task
    U, _, V = src.svd
    assert rel_err(U.T @ tgt2.sigma_yx @ V, torch.diag(torch.tensor(new_s, dtype=torch.float64))) <= TOL
    with pytest.raises(TaskError, match="exactly one"):
        rescaled_pair(src)


def test_new_feature_generalises_through_w1tw1() -> None:
    t = hierarchy()
    nf = new_feature(t, "leaf2", value=1.5)
    assert nf.shape == (1, 8, 1) and torch.equal(nf.X, t.X[2:3])
    W1 = torch.randn(3, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # gradient flow from w = 0 on the one-sample task converges to the minimum-norm solution
    w = torch.linalg.pinv(nf.X @ W1.T) @ nf.Y  # (Nh, 1)
    predicted = (nf.meta["eval_X"] @ W1.T @ w).squeeze(1)
    K = W1.T @ W1
    assert rel_err(predicted, 1.5 * K[2] / K[2, 2]) <= TOL  # the docstring's formula


def test_new_item_generalises_through_w2w2t() -> None:
    t = hierarchy()
    ni = new_item(t, 3, value=2.0)
    assert ni.shape == (1, 1, 1) and ni.meta["output_row"] == 3
    W2 = torch.randn(8, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    f = ni.meta["output_row"]
    w = torch.linalg.pinv(W2[f : f + 1] * ni.X) @ ni.Y  # minimum-norm input column (Nh, 1)
    G = W2 @ W2.T
    assert rel_err((W2 @ w).squeeze(1), 2.0 * G[:, f] / G[f, f]) <= TOL


@pytest.mark.parametrize("rho", [0.9, 0.3, 0.0, -0.5])
@pytest.mark.parametrize("n_samples", [None, 20])
def test_continual_chain_similarity_is_the_requested_one(rho: float, n_samples: int | None) -> None:
    seq = continual_stream(K=4, n_in=6, n_out=5, similarity=rho, n_samples=n_samples, seed=2)
    sig = [t.sigma_yx for t in seq.tasks]
    for i in range(4):
        assert seq.tasks[i].is_whitened and torch.equal(seq.tasks[i].X, seq.tasks[0].X)
        for j in range(4):
            cos = float((sig[i] * sig[j]).sum() / (sig[i].norm() * sig[j].norm()))
            assert cos == pytest.approx(rho ** abs(i - j), abs=TOL)  # a cosine: absolute, as above


def test_continual_independent_stream_shares_spectrum() -> None:
    seq = continual_stream(K=3, similarity=None, seed=1)
    for t in seq.tasks:
        assert rel_err(t.svd[1], torch.linspace(2, 0.5, 8, dtype=torch.float64)) <= TOL
    assert not torch.allclose(seq.tasks[0].sigma_yx, seq.tasks[1].sigma_yx)
    with pytest.raises(TaskError, match="similarity"):
        continual_stream(similarity=1.5)
    with pytest.raises(TaskError, match="K ≤ n_in·n_out"):
        continual_stream(K=5, n_in=2, n_out=2, similarity=0.5)


def test_sequence_builders_are_registered() -> None:
    rev = make("reversal", base="hierarchy", base_params={"depth": 2}, kind="modes", modes=[0])
    assert isinstance(rev, TaskSequence) and rev.n_in == 4
    assert len(make("transfer_rotated", angle=0.1)) == 2
    assert len(make("transfer_rescaled", scale=0.5)) == 2
    assert len(make("continual_stream", K=2, similarity=0.5)) == 2
    with pytest.raises(TaskError, match="TaskSequence"):
        make("reversal", base="continual_stream")
