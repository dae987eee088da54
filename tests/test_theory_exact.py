"""The exact closed form (lazyrich/theory/exact.py) against gradient flow, Fukumizu's formula and plain GD."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import rel_err

from lazyrich import metrics
from lazyrich.init import lambda_balanced
from lazyrich.theory import TaskStats, fukumizu_qqt, get_theory, integrate_flow, qqt, singular_values
from lazyrich.theory.base import TheoryNotApplicable

F64 = torch.float64
LAMS = [-50.0, -2.0, 0.0, 2.0, 50.0]
SHAPES = [(4, 4), (5, 3), (3, 5)]  # (Ni, No): square, funnel, inverted funnel


def whitened_stats(n_in: int, n_out: int, seed: int = 0, noise: float = 0.3, c: float = 1.0) -> TaskStats:
    """A random task with Σxx = c·I exactly (orthogonal input columns) and label noise (L_min > 0)."""
    g = torch.Generator().manual_seed(seed)
    P = 3 * (n_in + n_out)
    q, _ = torch.linalg.qr(torch.randn(P, n_in, generator=g, dtype=F64))
    X = math.sqrt(c * P) * q
    signal = X @ torch.randn(n_in, n_out, generator=g, dtype=F64) / c
    Y = signal + noise * torch.randn(P, n_out, generator=g, dtype=F64)
    return TaskStats.from_data(X, Y)


def balanced_batch(n_in: int, n_out: int, lams: list[float], stats: TaskStats, seed: int = 1,
                   scale: float = 0.4):
    """λ-balanced (W1, W2), one net per λ; square λ = 0 nets get det(W2W1) of Σyx's sign (B invertible)."""
    g = torch.Generator().manual_seed(seed)
    w1, w2 = lambda_balanced(n_in, min(n_in, n_out), n_out, lams, scale=scale, generator=g)
    if n_in == n_out:
        flip = torch.sign(torch.linalg.det(w2 @ w1)) != torch.sign(torch.linalg.det(stats.sigma_yx))
        w2 = torch.where(flip[:, None, None] & (torch.arange(n_out)[:, None] == 0), -w2, w2)
    return w1, w2


def flow_qqt(w1, w2, stats: TaskStats, t, **kw):
    traj1, traj2 = integrate_flow([w1, w2], stats.sigma_xx, stats.sigma_yx, t, **kw)
    q = torch.cat([traj1.mT, traj2], dim=-2)
    return q @ q.mT


@pytest.mark.parametrize("n_in,n_out", SHAPES)
@pytest.mark.slow
def test_exact_matches_gradient_flow(n_in, n_out):
    stats = whitened_stats(n_in, n_out)
    w1, w2 = balanced_batch(n_in, n_out, LAMS, stats)
    t = torch.linspace(0, 100, 21, dtype=F64)  # a modest grid: the λ = ±50 nets set the ODE's step anyway
    exact = qqt(w1, w2, stats.sigma_yx, t)
    # rtol 1e-12/atol 1e-14: at the default 1e-11 the ODE itself drifts by ~5e-8 over the λ = 0 plateau.
    ref = flow_qqt(w1, w2, stats, t, rtol=1e-12, atol=1e-14)
    # Of each net's largest entry (~|λ| or s̃): measured ≤ 2e-10 of it over BLAS kernels and thread counts,
    # nearly all the ODE's (DOP853 at rtol 1e-12 reports these times by dense output between its steps).
    assert rel_err(exact, ref, batch_dims=1) <= 1e-8
    single = qqt(w1[1], w2[1], stats.sigma_yx, t)  # unbatched weights give (T, N, N)
    assert single.shape == (21, n_in + n_out, n_in + n_out)
    assert rel_err(single, exact[1]) <= 1e-13  # the same arithmetic, batched or not: rounding at most


@pytest.mark.parametrize("n_in,n_out", SHAPES)
def test_exact_matches_fukumizu_at_short_times(n_in, n_out):
    stats = whitened_stats(n_in, n_out, seed=2)
    w1, w2 = balanced_batch(n_in, n_out, [-3.0, 1.0, 4.0], stats)  # λ ≠ 0: F must be invertible
    t = torch.linspace(0, 2, 9, dtype=F64)
    exact, naive = qqt(w1, w2, stats.sigma_yx, t), fukumizu_qqt(w1, w2, stats.sigma_yx, t)
    # e^{Ft} reaches ~e^{2ε₁t} ≈ 1e6 here, so the naive form carries ~1e-10 of rounding; 1e-9 leaves room.
    assert rel_err(naive, exact, batch_dims=1) <= 1e-9


def test_fukumizu_refuses_singular_f_and_overflows():
    stats = whitened_stats(5, 3, seed=2)
    w1, w2 = balanced_batch(5, 3, [0.0], stats)
    with pytest.raises(ValueError, match="F is singular"):
        fukumizu_qqt(w1, w2, stats.sigma_yx, torch.tensor([1.0], dtype=F64))
    w1, w2 = balanced_batch(4, 4, [20.0], whitened_stats(4, 4))
    t = torch.tensor([0.0, 50.0], dtype=F64)
    assert not torch.isfinite(fukumizu_qqt(w1, w2, whitened_stats(4, 4).sigma_yx, t)[:, -1]).all()
    assert torch.isfinite(qqt(w1, w2, whitened_stats(4, 4).sigma_yx, t)).all()


@pytest.mark.parametrize("n_in,n_out", SHAPES)
def test_no_overflow_and_limits_at_long_times(n_in, n_out):
    stats = whitened_stats(n_in, n_out, seed=3, noise=0.0)
    u, s, v = stats.svd
    m = min(n_in, n_out)
    big = balanced_batch(n_in, n_out, [-1e3, 1e3], stats, scale=0.5)
    t = torch.tensor([0.0, 1.0, 1e2, 1e4], dtype=F64)
    out = qqt(*big, stats.sigma_yx, t)
    assert torch.isfinite(out).all()
    # Symmetric and PSD, as a Gram matrix must be, up to rounding of each matrix's entries (size up to ~|λ|).
    assert rel_err(out, out.mT, batch_dims=2) <= 1e-12
    eig = torch.linalg.eigvalsh(out)
    assert bool((eig.amin(-1) >= -1e-12 * eig.abs().amax(-1)).all())
    for i, lam in enumerate((-1e3, 1e3)):
        # Lazy shapes fit at rate ~|λ|; the delayed-rich ones (funnel λ < 0, inverted funnel λ > 0) still move
        # at rate ~s̃²/|λ| at t = 1e4 (docs/theory.md §6), so only finiteness is asked of them.
        if n_in == n_out or (n_in > n_out) == (lam > 0):
            assert rel_err(out[i, -1, n_in:, :n_in], stats.sigma_yx) <= 1e-8
    lams = [-2.0, 0.0, 2.0]
    w1, w2 = balanced_batch(n_in, n_out, lams, stats)
    end = qqt(w1, w2, stats.sigma_yx, torch.tensor([1e4], dtype=F64))[:, 0]
    for i, lam in enumerate(lams):
        eps = torch.hypot(s, torch.tensor(lam / 2, dtype=F64))
        w1tw1 = v[:, :m] @ torch.diag(eps - lam / 2) @ v[:, :m].mT
        wwt = u[:, :m] @ torch.diag(eps + lam / 2) @ u[:, :m].mT
        # Limits of docs/theory.md §4; at t = 1e4 every rate (≥ 2(ε − |λ|/2) ≈ 0.3 here) has decayed to rounding.
        assert rel_err(end[i, n_in:, :n_in], stats.sigma_yx) <= 1e-10
        assert rel_err(end[i, :n_in, :n_in], w1tw1) <= 1e-10
        assert rel_err(end[i, n_in:, n_in:], wwt) <= 1e-10


def test_singular_b_converges_to_saddle():
    stats = whitened_stats(4, 4, seed=4)
    g = torch.Generator().manual_seed(5)
    w1, w2 = lambda_balanced(4, 4, 4, [0.0, 0.0], scale=0.3, generator=g)
    # Net 0 gets det(W2W1) of Σyx's sign (B invertible), net 1 the opposite sign (B singular at λ = 0).
    sign = torch.sign(torch.linalg.det(w2 @ w1)) * torch.sign(torch.linalg.det(stats.sigma_yx))
    flip = torch.tensor([sign[0] < 0, sign[1] > 0])
    w2 = torch.where(flip[:, None, None] & (torch.arange(4)[:, None] == 0), -w2, w2)
    t = torch.tensor([0.0, 2.0, 5.0, 10.0, 25.0, 60.0], dtype=F64)
    pred = get_theory("exact").predict(stats, [w1, w2], t)
    assert pred.converges_to_saddle.tolist() == [False, True]
    assert any("saddle" in n and "ode" in n for n in pred.notes)
    assert torch.isfinite(pred.product).all() and torch.isfinite(pred.loss).all()
    s_min = stats.svd[1][-1]
    l_min = stats.optimum[1]
    # Excess s̃_min²/2 over L_min (docs/theory.md §4); rounding of the two losses (L_min > 0) only.
    assert rel_err(pred.final_loss, torch.stack([l_min, l_min + s_min**2 / 2]), batch_dims=1) <= 1e-12
    # The predicted trajectory reaches the saddle and stays (held on its manifold): rounding of the loss only.
    assert rel_err(pred.loss[1, -1], pred.final_loss[1]) <= 1e-12
    ode = get_theory("ode").predict(stats, [w1, w2], t)
    # A plain solve follows it while its rounding seed (~1e-16·e^{2s̃_m t}) is small: 1e-8 up to t = 10 ...
    assert rel_err(ode.product[1, :4], pred.product[1, :4]) <= 1e-8
    # ... and sits at the saddle by t = 25 (approach rate ≳ s̃_{m−1} − s̃_m ≈ 0.6) before escaping at t ≈ 28.
    assert rel_err(ode.loss[1, 4], pred.final_loss[1]) <= 1e-6


def test_reversal_from_the_learned_solution_has_b_zero():
    stats = whitened_stats(3, 3, seed=6, noise=0.0)
    u, s, v = stats.svd
    # The learned λ = 0 solution of the reversed task −Σyx: W1 = S^½Vᵀ, W2 = −US^½; B is exactly 0.
    root = torch.diag(s.sqrt())
    w1, w2 = root @ v.mT, -(u @ root)
    t = torch.linspace(0, 10, 6, dtype=F64)
    pred = get_theory("exact").predict(stats, [w1, w2], t)
    assert pred.converges_to_saddle.tolist() == [True]
    # The stall of docs/theory.md §5: each mode decays from −s̃ towards 0 without crossing (ODE accuracy, ×10).
    assert rel_err(pred.svals[0], singular_values(-s, s, 0.0, t[:, None])) <= 1e-9
    half_tr_yy = 0.5 * torch.trace(stats.sigma_yy)
    assert rel_err(pred.final_loss[0], half_tr_yy) <= 1e-12  # every mode lost, W → 0: rounding of a trace
    with pytest.raises(ValueError, match="B is singular"):
        qqt(w1, w2, stats.sigma_yx, torch.tensor([1.0], dtype=F64))


@pytest.mark.parametrize("n_in,n_out", [(3, 3), (4, 3)])
def test_zero_target_singular_value_is_finite(n_in, n_out):
    # s̃ = 0 at λ = 0 makes ε = 0: (1 − e^{−2εt})/ε must be its limit 2t (exprel), not 0/0.
    g = torch.Generator().manual_seed(11)
    u, _ = torch.linalg.qr(torch.randn(n_out, n_out, generator=g, dtype=F64))
    v, _ = torch.linalg.qr(torch.randn(n_in, n_in, generator=g, dtype=F64))
    sigma_yx = u[:, :3] @ torch.diag(torch.tensor([2.0, 1.0, 0.0], dtype=F64)) @ v[:, :3].mT
    stats = TaskStats(torch.eye(n_in, dtype=F64), sigma_yx, sigma_yx @ sigma_yx.mT, 10)
    w1, w2 = balanced_batch(n_in, n_out, [0.0, 1.0], stats)
    t = torch.linspace(0, 20, 11, dtype=F64)
    exact = qqt(w1, w2, sigma_yx, t)
    assert torch.isfinite(exact).all()
    ref = flow_qqt(w1, w2, stats, t, rtol=1e-12, atol=1e-14)
    assert rel_err(exact, ref, batch_dims=1) <= 1e-9  # ODE tolerance ×1000, of each net's largest entry


def test_refusals():
    stats = whitened_stats(4, 3)
    w1, w2 = balanced_batch(4, 3, [1.0], stats)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    with pytest.raises(ValueError, match="not λ-balanced"):
        qqt(w1 * 1.01, w2, stats.sigma_yx, t)
    wide1, wide2 = lambda_balanced(4, 4, 3, -1.0, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"Nh = min\(Ni, No\) = 3"):
        qqt(wide1, wide2, stats.sigma_yx, t)
    exact = get_theory("exact")
    assert "Nh" in exact.check(stats, [wide1, wide2])
    X = torch.randn(20, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    raw = TaskStats.from_data(X, X[:, :3] * 2)
    reason = exact.check(raw, [w1, w2])
    assert "whiten" in reason and "task.whiten=true" in reason
    with pytest.raises(TheoryNotApplicable, match="whiten"):
        exact.predict(raw, [w1, w2], t)
    with pytest.raises(ValueError, match="task.whiten"):
        qqt(w1, w2, raw.sigma_yx, t, sigma_xx=raw.sigma_xx)


def test_scaled_whitening_matches_ode():
    stats = whitened_stats(5, 3, seed=7, c=2.5)
    assert stats.whitening_scale == pytest.approx(2.5, rel=1e-12)  # XᵀX/P of a QR factor: rounding
    w1, w2 = balanced_batch(5, 3, [-1.0, 0.0, 3.0], stats)
    t = torch.linspace(0, 6, 13, dtype=F64)
    exact = get_theory("exact").predict(stats, [w1, w2], t)
    ode = get_theory("ode", rtol=1e-12, atol=1e-14).predict(stats, [w1, w2], t)
    for name in ("product", "w1tw1", "wwt_out", "loss", "svals"):
        # ODE tolerance ×1000, of each net's largest value (dense output between DOP853's steps).
        assert rel_err(getattr(exact, name), getattr(ode, name), batch_dims=1) <= 1e-9, name
    direct = qqt(w1, w2, stats.sigma_yx, t, sigma_xx=stats.sigma_xx)
    assert rel_err(direct[..., 5:, :5], exact.product) <= 1e-13  # the same closed form: rounding at most


def test_gradient_descent_follows_the_exact_loss_curve():
    stats = whitened_stats(4, 4, seed=8)
    w1, w2 = balanced_batch(4, 4, [1.0], stats, scale=0.2)
    lr, steps, every = 1e-3, 4000, 200
    W1, W2 = w1[0].clone(), w2[0].clone()
    losses = []
    for k in range(steps + 1):
        err = W2 @ W1 @ stats.sigma_xx - stats.sigma_yx
        if k % every == 0:
            W = W2 @ W1
            losses.append(0.5 * torch.trace(W @ stats.sigma_xx @ W.mT) - torch.trace(W @ stats.sigma_yx.mT)
                          + 0.5 * torch.trace(stats.sigma_yy))
        W1, W2 = W1 - lr * W2.mT @ err, W2 - lr * err @ W1.mT
    t = torch.arange(0, steps + 1, every, dtype=F64) * lr
    pred = get_theory("exact").predict(stats, [w1, w2], t)
    gd = torch.stack(losses)
    # GD departs from the flow by O(η·max(|λ|, s̃₁, s₁)) ≈ 5e-3 relative; L_min > 0 keeps the ratio meaningful.
    assert ((gd - pred.loss[0]).abs() / pred.loss[0]).max() <= 1e-2


def test_ntk_from_theory_matches_simulated_weights():
    stats = whitened_stats(3, 5, seed=9)
    w1, w2 = balanced_batch(3, 5, [-4.0, 0.0, 4.0], stats)
    t = torch.tensor([[0.0, 0.5, 2.0, 8.0], [0.0, 1.0, 3.0, 9.0], [0.0, 0.25, 0.75, 5.0]], dtype=F64)
    pred = get_theory("exact").predict(stats, [w1, w2], t)
    traj = integrate_flow([w1, w2], stats.sigma_xx, stats.sigma_yx, t, rtol=1e-12, atol=1e-14)
    x_gram = stats.P * stats.sigma_xx
    blocks0 = [tuple(x.unsqueeze(1) if x.dim() > 2 else x for x in b) for b in metrics.ntk_blocks([w1, w2])]
    dist, rel = metrics.kernel_change(blocks0, metrics.ntk_blocks(traj), x_gram)
    # Both sides are ~1e-11 accurate in the weights; kernel figures are smooth functions of them.
    assert rel_err(pred.kernel_distance, dist, batch_dims=1) <= 1e-9
    assert rel_err(pred.ntk_rel_change, rel, batch_dims=1) <= 1e-9
    # K(t = 0) is K(0) to rounding. Absolute on purpose: the distance is a dimensionless 1 − cos in [0, 2],
    # exactly 0 here, so a few ulps of 1 is what rounding can leave.
    assert pred.kernel_distance[:, 0].abs().max() <= 1e-12
    assert bool((pred.kernel_distance[:, -1] > 1e-3).all())  # and the kernels did move
    # The trace form against the full (No·P)² kernel, for one net and one time.
    X = torch.linalg.cholesky(x_gram).mT  # any X with XᵀX = P·Σxx has the same kernel figures
    k0 = metrics.linear_ntk([w1[2], w2[2]], X)
    kt = metrics.linear_ntk([traj[0][2, -1], traj[1][2, -1]], X)
    # Absolute, as above (a dimensionless 1 − cos, here ~0.1): the ODE's ~1e-11 in the weights dominates.
    assert abs(float(metrics.kernel_distance(k0, kt) - pred.kernel_distance[2, -1])) <= 1e-9
