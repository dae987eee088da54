"""Singular-value dynamics of aligned nets (lazyrich/theory/aligned.py) and the lazy limit (lazy.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import rel_err
from scipy.integrate import solve_ivp

from lazyrich.init import lambda_balanced, refactorise
from lazyrich.theory import TaskStats, get_theory, singular_values

F64 = torch.float64
LAMS = [-100.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 100.0]
S0S = [-1.5, -0.2, -1e-3, 0.0, 1e-3, 0.2, 1.5]
TARGETS = [0.0, 0.5, 2.0]


def whitened_stats(n_in: int, n_out: int, seed: int = 0, noise: float = 0.3) -> TaskStats:
    """A random task with Σxx = I exactly (orthogonal input columns) and label noise."""
    g = torch.Generator().manual_seed(seed)
    P = 3 * (n_in + n_out)
    q, _ = torch.linalg.qr(torch.randn(P, n_in, generator=g, dtype=F64))
    X = math.sqrt(P) * q
    signal = X @ torch.randn(n_in, n_out, generator=g, dtype=F64)
    Y = signal + noise * torch.randn(P, n_out, generator=g, dtype=F64)
    return TaskStats.from_data(X, Y)


def test_closed_form_matches_the_scalar_ode():
    t = np.linspace(0, 10, 41)
    for lam in LAMS:  # one solve per λ keeps the stiff solver's dense Jacobian small
        s0, target = (np.array(x, dtype=float) for x in zip(*itertools.product(S0S, TARGETS), strict=True))

        def rhs(_t, s, lam=lam, target=target):
            return np.sqrt(lam**2 + 4 * s**2) * (target - s)

        def jac(_t, s, lam=lam, target=target):
            root = np.sqrt(lam**2 + 4 * s**2)
            slope = np.where(root > 0, 4 * s * (target - s) / np.where(root > 0, root, 1.0), 0.0)
            return np.diag(slope - root)

        # A stiff solver: for |λ| = 100 an explicit RK method sits at its stability limit once s has converged
        # and its error estimate lets ~1e-7 through; LSODA with the exact Jacobian is good to ~3e-11 here.
        ref = solve_ivp(rhs, (0, 10), s0, method="LSODA", t_eval=t, jac=jac, rtol=1e-12, atol=1e-14)
        assert ref.success
        times = torch.from_numpy(t)[:, None]
        pred = singular_values(torch.from_numpy(s0), torch.from_numpy(target), lam, times)
        assert torch.isfinite(pred).all()
        assert rel_err(pred, torch.from_numpy(ref.y.T)) <= 1e-9, lam  # of max |s| = 2


def test_limits():
    t = torch.linspace(0, 6, 61, dtype=F64)
    for s0, target in [(1e-3, 1.0), (0.3, 2.0), (0.05, 0.5)]:
        e = torch.exp(2 * target * t)
        saxe = target * e / (e - 1 + target / s0)  # Saxe et al. 2014, fine without overflow up to t = 6
        # Two float64 evaluations of one sigmoid (~10 flops, exp of ≤ 24): elementwise relative, as s ≥ s0 > 0.
        assert torch.allclose(singular_values(s0, target, 0.0, t), saxe, rtol=1e-12, atol=0)
        lam = 1e3
        gamma = (singular_values(s0, target, lam, t / lam * 5) - s0) / (target - s0)
        # γ → 1 − e^{−|λ|t}: the rate is √(λ² + 4s²) = |λ|(1 + O(s²/λ²)), so the gap is O(s̃²/λ²) ≈ 4e-6.
        assert (gamma - (1 - torch.exp(-5 * t))).abs().max() <= 1e-5
    # Huge arguments stay finite: no positive exponent is ever formed.
    extreme = singular_values(torch.tensor([-2.0, 1e-8, 2.0]), 3.0, torch.tensor([0.0, 1e3, -1e3]), 1e4)
    assert torch.isfinite(extreme).all()


def test_reversal_stalls_only_at_lambda_zero():
    target, t = 1.0, torch.linspace(0, 40, 81, dtype=F64)
    stalled = singular_values(-target, target, 0.0, t)
    assert bool((stalled <= 0).all()) and bool((stalled.diff() >= 0).all())  # never crosses, only decays
    assert float(stalled[-1]) > -0.02  # towards 0, like 1/(2t): the reversal stall
    for lam in (-1.0, 1.0):
        crossed = singular_values(-target, target, lam, t)
        # Crossed zero and converged: at rate ≥ 2s̃ = 2 for t ≈ 40 the residue is far below rounding of s̃.
        assert float(crossed[-1]) == pytest.approx(target, rel=1e-12)


def aligned_batch(stats: TaskStats, lams: list[float], s0: list[float], n_hidden: int | None = None,
                  seed: int = 0):
    """Task-aligned weights: product Ũ_m diag(s0) Ṽ_mᵀ re-factorised at each λ (padding when n_hidden > m)."""
    u, s, v = stats.svd
    m = s.shape[0]
    product = u[:, :m] @ torch.diag(torch.tensor(s0, dtype=F64)) @ v[:, :m].mT
    g = torch.Generator().manual_seed(seed)
    return refactorise(product.expand(len(lams), -1, -1), torch.tensor(lams, dtype=F64), n_hidden=n_hidden,
                       generator=g)


@pytest.mark.parametrize("n_in,n_out,n_hidden", [(4, 3, 3), (3, 5, 3), (4, 3, 4)])
def test_aligned_theory_matches_gradient_flow(n_in, n_out, n_hidden):
    stats = whitened_stats(n_in, n_out, seed=1)
    m = min(n_in, n_out)
    lams = [-2.0, 0.0, 3.0] if n_hidden == m else [-2.0, 0.0, -0.5]  # Nh > No forces λ ≤ 0
    w1, w2 = aligned_batch(stats, lams, [0.05, -0.3, 0.8][:m], n_hidden=n_hidden)
    assert get_theory("aligned").check(stats, [w1, w2]) is None
    # Up to t = 8 only: the stalled λ = 0 mode is a saddle, and in the ODE the rounding in its unstable
    # direction grows like e^{2s̃t} (~1e-11 at t = 8, 5e-9 at t = 12) while the theory stays exactly on it.
    t = torch.linspace(0, 8, 9, dtype=F64)
    pred = get_theory("aligned").predict(stats, [w1, w2], t)
    ode = get_theory("ode", rtol=1e-12, atol=1e-14).predict(stats, [w1, w2], t)
    for name in ("product", "w1tw1", "wwt_out", "loss", "svals", "kernel_distance", "ntk_rel_change"):
        # ODE tolerance ×1000, of each net's max: DOP853 at rtol 1e-12 reports t between its steps by dense
        # output, whose error rtol does not control (measured ≤ 2e-11 over BLAS kernels).
        assert rel_err(getattr(pred, name), getattr(ode, name), batch_dims=1) <= 1e-9, name
    # λ = 0 with the middle mode negative stalls: a saddle, excess s̃₂²/2 over the best loss.
    assert pred.converges_to_saddle.tolist() == [False, True, False]
    excess = pred.final_loss[1] - pred.final_loss[0]
    # A difference of two O(1) closed-form losses (each to ~1e-15): 1e-10 of the excess, itself ≈ 0.5.
    assert float(excess) == pytest.approx(float(stats.svd[1][1] ** 2 / 2), rel=1e-10)


def test_saxe_is_aligned_at_lambda_zero_and_lazy_is_the_large_lambda_limit():
    stats = whitened_stats(3, 3, seed=2)
    t = torch.linspace(0, 3, 7, dtype=F64)
    w0 = aligned_batch(stats, [0.0], [0.1, 0.2, 0.05])
    saxe, aligned = get_theory("saxe").predict(stats, w0, t), get_theory("aligned").predict(stats, w0, t)
    for name in ("product", "w1tw1", "wwt_out", "loss", "kernel_distance"):
        assert rel_err(getattr(saxe, name), getattr(aligned, name)) <= 1e-12, name  # same formula: rounding
    lam = 400.0
    w_big = aligned_batch(stats, [lam], [0.1, 0.2, 0.05])
    t_fast = t / lam  # the lazy fit takes t ~ 1/|λ|
    exact = get_theory("exact").predict(stats, w_big, t_fast)
    for kernel in ("ntk", "lambda"):
        lazy = get_theory("lazy", kernel=kernel).predict(stats, w_big, t_fast)
        assert lazy.kernel_distance.abs().max() == 0
        # The kernel moves by O(s̃₁²/λ²) ≈ 4e-5 while W travels O(1): errors ~1e-5 of W's scale, 1e-4 leaves room.
        assert rel_err(lazy.product, exact.product) <= 1e-4, kernel
    ntk = get_theory("lazy").predict(stats, w_big, t_fast)
    plain = get_theory("lazy", kernel="lambda").predict(stats, w_big, t_fast)
    # The NTK-linearised rates √(λ² + 4s²) ≥ |λ| beat the bare |λ| rate of docs/theory.md §5 (vs the exact curve).
    assert (ntk.product - exact.product).abs().max() < (plain.product - exact.product).abs().max()


def test_aligned_refuses_unaligned_and_unwhitened():
    stats = whitened_stats(4, 3, seed=3)
    w1, w2 = lambda_balanced(4, 3, 3, 1.0, generator=torch.Generator().manual_seed(0))
    reason = get_theory("aligned").check(stats, [w1, w2])
    assert "not task-aligned" in reason and "theory=exact" in reason
    X = torch.randn(12, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    raw = TaskStats.from_data(X, X[:, :3])
    aligned = aligned_batch(raw, [1.0], [0.1, 0.2, 0.3])
    assert "whiten" in get_theory("aligned").check(raw, aligned)
    assert "whiten" in get_theory("saxe").check(raw, aligned)
    assert "whiten" in get_theory("lazy").check(raw, aligned)
