"""The deep_aligned theory (lazyrich/theory/deep.py) against gradient flow and gradient descent."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import rel_err

from lazyrich.init import deep_balanced, gaussian
from lazyrich.theory import TaskStats, get_theory, integrate_flow, select_theory
from lazyrich.theory.deep import integrate_modes
from lazyrich.theory.modes import layer_squares, task_modes
from lazyrich.theory.ode import numerical_prediction

F64 = torch.float64


def whitened_stats(n_in: int, n_out: int, seed: int = 0, noise: float = 0.3) -> TaskStats:
    """A random task with Σxx = I exactly (orthogonal input columns) and label noise (L_min > 0)."""
    g = torch.Generator().manual_seed(seed)
    P = 3 * (n_in + n_out)
    q, _ = torch.linalg.qr(torch.randn(P, n_in, generator=g, dtype=F64))
    X = math.sqrt(P) * q
    signal = X @ torch.randn(n_in, n_out, generator=g, dtype=F64)
    Y = signal + noise * torch.randn(P, n_out, generator=g, dtype=F64)
    return TaskStats.from_data(X, Y)


def aligned_deep(stats: TaskStats, widths: list[int], lam_sets: list[list[float]], scale: float = 0.4,
                 negate_mode: int | None = None, seed: int = 0) -> list[torch.Tensor]:
    """Aligned deep-balanced nets, one per λ set; ``negate_mode`` reflects that output mode (s₀ < 0)."""
    g = torch.Generator().manual_seed(seed)
    nets = [deep_balanced(widths, lams, scale=scale, generator=g, align_to=stats.sigma_yx, batch=1)
            for lams in lam_sets]
    weights = [torch.cat(layer) for layer in zip(*nets, strict=True)]
    if negate_mode is not None:
        u = stats.svd[0][:, negate_mode]
        # (I − 2uuᵀ) keeps W_LᵀW_L, hence every balance, and the alignment; it flips one mode's sign.
        weights[-1] = (torch.eye(u.shape[0], dtype=F64) - 2 * torch.outer(u, u)) @ weights[-1]
    return weights


def stepwise_ode(stats: TaskStats, weights: list[torch.Tensor], t: torch.Tensor, rtol: float):
    """The ode theory's prediction at ``t`` (T,), but with every time the end of its own DOP853 solve (one per
    interval, each from the last one's end): no time is read off the dense output between steps, whose error
    rtol does not bound (at rtol 2.5e-14 it reached 3e-11 of the values, depending on the BLAS kernel)."""
    states, w = [[x] for x in weights], weights
    for a, b in zip(t[:-1], t[1:], strict=True):
        w = [x[:, -1] for x in integrate_flow(w, stats.sigma_xx, stats.sigma_yx, torch.stack([a - a, b - a]),
                                              rtol=rtol, atol=1e-15)]
        for layer, x in zip(states, w, strict=True):
            layer.append(x)
    traj = [torch.stack(layer, 1) for layer in states]
    return numerical_prediction(stats, weights, traj, t, "ode", f"stepwise DOP853, rtol={rtol:g}")


@pytest.mark.parametrize("widths,lam_sets", [
    ([4, 3, 3, 3], [[1.0, -0.5], [0.0, 0.0], [-2.0, 3.0]]),
    ([3, 3, 3, 3, 5], [[0.5, 0.5, -1.0], [0.0, 1.0, 0.0]]),
])
@pytest.mark.slow
def test_deep_aligned_matches_gradient_flow(widths, lam_sets):
    stats = whitened_stats(widths[0], widths[-1], seed=1)
    weights = aligned_deep(stats, widths, lam_sets)
    assert get_theory("deep_aligned").check(stats, weights) is None
    t = torch.linspace(0, 8, 9, dtype=F64)
    # At rtol 1e-12 the λ = (−2, 3) net's fast layer modes leave ~2e-9 in either solver. The full ODE is the
    # reference at DOP853's tightest rtol (2.5e-14), stepwise: read off its dense output instead, it erred by
    # up to 3e-11 of the values (2e-10 on ntk_rel_change ≈ 12, the 2-core Xeon failure of the old absolute
    # 1e-10), as OpenBLAS kernels (OPENBLAS_CORETYPE) shift its steps, while deep_aligned moved by 5e-15.
    pred = get_theory("deep_aligned", rtol=1e-13, atol=1e-15).predict(stats, weights, t)
    ode = stepwise_ode(stats, weights, t, rtol=2.5e-14)
    for name in ("product", "w1tw1", "wwt_out", "loss", "svals", "kernel_distance", "ntk_rel_change"):
        # Of each net's largest value: the two solves agree to ≤ 2e-12 of it over OpenBLAS kernels, thread
        # counts and MKL code paths; 1e-10 leaves room for other inits.
        assert rel_err(getattr(pred, name), getattr(ode, name), batch_dims=1) <= 1e-10, name
    assert not pred.converges_to_saddle.any()


def test_deep_aligned_follows_gradient_descent():
    stats = whitened_stats(3, 3, seed=2)
    weights = aligned_deep(stats, [3, 3, 3, 3], [[0.5, -0.5]], scale=0.3)
    lr, steps, every = 1e-3, 5000, 250
    ws = [w[0].clone() for w in weights]
    losses = []
    for k in range(steps + 1):
        prefix = [torch.eye(3, dtype=F64)]
        for w in ws[:-1]:
            prefix.append(w @ prefix[-1])
        product = ws[-1] @ prefix[-1]
        err = product @ stats.sigma_xx - stats.sigma_yx
        if k % every == 0:
            losses.append(0.5 * torch.trace(product @ stats.sigma_xx @ product.mT)
                          - torch.trace(product @ stats.sigma_yx.mT) + 0.5 * torch.trace(stats.sigma_yy))
        grads, back = [], err
        for l in range(len(ws) - 1, -1, -1):
            grads.append(back @ prefix[l].mT)
            back = ws[l].mT @ back
        ws = [w - lr * g for w, g in zip(ws, reversed(grads), strict=True)]
    t = torch.arange(0, steps + 1, every, dtype=F64) * lr
    pred = get_theory("deep_aligned").predict(stats, weights, t)
    gd = torch.stack(losses)
    # GD departs from the flow by O(η·rate), rate ≲ L·s̃₁^{2−2/L} ≈ 10, i.e. ≲ 1e-2 relative; L_min > 0.
    assert ((gd - pred.loss[0]).abs() / pred.loss[0]).max() <= 1e-2


def test_stall_needs_two_layers_that_can_vanish_together():
    stats = whitened_stats(3, 3, seed=3)
    # Mode 1 starts negative. Offsets (0, 0, 0) and (0, 0, 1) let two layers vanish at s = 0: the mode stalls.
    # λ = (1, 0) gives offsets (0, 1, 1): one layer passes through zero and the mode crosses over.
    weights = aligned_deep(stats, [3, 3, 3, 3], [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]], negate_mode=1)
    t = torch.tensor([0.0, 2.0, 40.0], dtype=F64)
    pred = get_theory("deep_aligned").predict(stats, weights, t)
    assert pred.converges_to_saddle.tolist() == [True, True, False]
    s_hat = stats.svd[1]
    assert float(pred.svals[2, -1, 1]) == pytest.approx(float(s_hat[1]), rel=1e-8)  # crossed and learned
    assert -0.05 < float(pred.svals[0, -1, 1]) <= 0  # stalled on its side of zero, decaying algebraically
    excess = pred.final_loss[:2] - pred.final_loss[2]
    # One mode unlearned: a difference of O(1) final losses, rounding only, of the excess s̃₂²/2 itself.
    assert rel_err(excess, (s_hat[1] ** 2 / 2).expand(2), batch_dims=1) <= 1e-10


def test_deep_modes_keep_their_offsets_and_multiply_to_s():
    """integrate_modes carries each mode in its smallest layer's value x, the others ±√(x² + d_l): along the
    solve every a_l² − a_k² stays the initial offset and Π a_l is the s the flow reaches."""
    stats = whitened_stats(3, 3, seed=5)
    weights = aligned_deep(stats, [3, 3, 3, 3], [[1.0, -0.5], [0.5, 0.5]], negate_mode=1)  # mode 1 crosses zero
    modes, _ = task_modes(stats, weights)
    a0 = modes.a.mT  # (B, m, L)
    target = stats.svd[1] / stats.whitening_scale
    u = stats.whitening_scale * torch.linspace(0, 40, 21, dtype=F64)[None].expand(2, -1)
    a_t = integrate_modes(a0, modes.offsets(), target, u)
    sq = a_t * a_t
    assert rel_err(sq - sq.amin(-1, keepdim=True), modes.offsets()[:, None].expand_as(sq), batch_dims=1) <= 1e-12
    assert rel_err(a_t[:, 0], a0, batch_dims=1) <= 1e-12  # starts where the weights are
    assert rel_err(a_t[:, -1].prod(-1), target.expand(2, -1), batch_dims=1) <= 1e-6  # every mode learned by t = 40
    assert (a_t[:, 0, 1].prod(-1) < 0).all() and (a_t[:, -1, 1].prod(-1) > 0).all()  # through zero, one layer first


def test_two_layer_squares_are_the_closed_form():
    d = torch.tensor([[0.0, 1.0], [0.0, 0.0], [2.5, 0.0]], dtype=F64)
    for s in (1e-12, 1e-4, 0.7, 50.0):
        squares = layer_squares(torch.full((3,), s, dtype=F64), d)
        assert ((squares.prod(-1).sqrt() / s - 1).abs() <= 1e-14).all()  # a_1²a_2² = s² to rounding
        assert torch.allclose(squares - squares.amin(-1, keepdim=True), d, rtol=0, atol=1e-14 * max(s, 1))
    assert torch.equal(layer_squares(torch.zeros(3, dtype=F64), d), d)
    with pytest.raises(ValueError, match="two-layer closed form"):
        layer_squares(torch.ones(1, dtype=F64), torch.zeros(1, 3, dtype=F64))


def test_deep_refusals_and_selection():
    stats = whitened_stats(4, 3, seed=4)
    g = torch.Generator().manual_seed(0)
    random_deep = gaussian([4, 3, 3, 3], 0.5, generator=g, batch=2)
    reason = get_theory("deep_aligned").check(stats, random_deep)
    assert "not task-aligned" in reason
    theory, why = select_theory(stats, random_deep)
    assert theory.name == "ode" and "deep_aligned" in why
    aligned = aligned_deep(stats, [4, 3, 3, 3], [[1.0, 1.0]])
    assert select_theory(stats, aligned)[0].name == "deep_aligned"
