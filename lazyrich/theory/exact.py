"""Exact learning dynamics of λ-balanced two-layer linear networks: the stable closed form of docs/theory.md §4.

QQᵀ(t) = Z(t) A(t)⁻¹ Z(t)ᵀ with Q = [W1ᵀ; W2], for Nh = m = min(Ni, No), any Ni, No and any λ. Everything but
e(t) = diag(e^{−ε_α t/τ}) is computed once; the time grid and the batch are one vectorised evaluation.
Overflow-free: exponents are combined before exponentiating so that each is ≤ 0, (1 − e^{−2εt})/ε is written
as 2t·exprel(−2εt) (finite at ε = 0) and the D term as an exprel of its exponent difference (→ 4t at λ⊥ = 0).
Cost: O(B·T·m²·(Ni + No)) after an O(B·m³) setup.

Conditioning: the closed form goes through B⁻¹, so its error is about u·κ(B)² (u = 1.1e-16, κ = scale/σ_min(B);
measured 3.5e-9 at κ ≈ 1e4, 0.4 at κ ≈ 1e8). Networks with σ_min(B) ≤ ``NEAR_SINGULAR_RTOL``·scale but above
the singular threshold are predicted by the ode theory instead, and the prediction's notes say which and why.
Inputs follow the precision policy of :mod:`lazyrich.theory.base` (float64, promoted once, finite).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lazyrich.device import DTYPE
from lazyrich.init import balance
from lazyrich.theory.assemble import from_grams, from_trajectory
from lazyrich.theory.base import (
    Prediction,
    TaskStats,
    Theory,
    exprel,
    loss_from_product,
    promote,
    time_grid,
    whitening_advice,
)
from lazyrich.theory.registry import register_theory

__all__ = ["BALANCE_RTOL", "NEAR_SINGULAR_RTOL", "SINGULAR_RTOL", "ExactTheory", "qqt"]

BALANCE_RTOL = 1e-8
"""Allowed ‖W2ᵀW2 − W1W1ᵀ − λ̂I‖_F / (‖W1‖² + ‖W2‖²): far above rounding (1e-15), below any real imbalance."""

SINGULAR_RTOL = 1e-13
"""B is singular when σ_min(B) ≤ 1e-13·√(‖W1‖² + ‖W2‖²): an exact null space rounds to ~1e-16 of that scale, while
a re-factorised init at λ = 1e-12 keeps σ_min(B) ≈ 1e-12 (and a flow that escapes its saddle, slowly)."""

NEAR_SINGULAR_RTOL = 1e-3
"""Above SINGULAR_RTOL but σ_min(B) ≤ 1e-3·scale: the closed form would lose ~u·κ² ≥ 1e-10; the ode theory runs."""


NEAR_SINGULAR_ODE = {"rtol": 1e-13, "atol": 1e-16}
"""ode options for near-singular B: the escape from the saddle is seeded by σ_min(B), which the default rtol of
1e-11 would swamp (measured 2e-6 off a tighter solve at λ = 1e-12, against 1e-7 with these)."""


@dataclass
class _Setup:
    """Everything in Z(t) and A(t) except e(t); batched fields are (B, …)."""

    u_m: Tensor  # (No, m)
    u_perp: Tensor  # (No, No − m)
    v_m: Tensor  # (Ni, m)
    v_perp: Tensor  # (Ni, Ni − m)
    eps: Tensor  # (B, m) ε_α = √(s̃_α² + λ²/4)
    lam_perp: Tensor  # (B,) sign(No − Ni)·λ/2
    a_plus: Tensor  # (B, m)
    a_minus: Tensor  # (B, m)
    p1: Tensor  # (B, m, m) B⁻¹B⁻ᵀ
    p2: Tensor  # (B, m, m) B⁻¹C
    p3: Tensor  # (B, m, k) B⁻¹D, k = |No − Ni|
    nullity: Tensor  # (B,) number of singular values of B below SINGULAR_RTOL·scale
    conditioning: Tensor  # (B,) σ_min(B)/scale


def _balance_or_raise(w1: Tensor, w2: Tensor, rtol: float) -> Tensor:
    """λ̂ per network (B,); raises ValueError unless W2ᵀW2 − W1W1ᵀ = λI within ``rtol`` (relative)."""
    lam, dev = balance([w1, w2])
    lam, dev = lam[..., 0], dev[..., 0]
    scale = (w1 * w1).sum((-2, -1)) + (w2 * w2).sum((-2, -1))
    rel = dev / scale.clamp_min(torch.finfo(DTYPE).tiny)
    bad = (rel > rtol).nonzero().flatten().tolist()
    if bad:
        i = bad[0]
        raise ValueError(f"weights are not λ-balanced (A2) for network(s) {bad}: ‖W2ᵀW2 − W1W1ᵀ − λ̂I‖_F = "
                         f"{float(dev[i]):.3g}, relative to ‖W1‖² + ‖W2‖² {float(rel[i]):.3g} > {rtol:g}. "
                         f"Use init.lambda_balanced, or theory=ode for arbitrary inits.")
    return lam


def _width_reason(n_hidden: int, n_in: int, n_out: int) -> str | None:
    m = min(n_in, n_out)
    if n_hidden == m:
        return None
    return (f"the closed form needs Nh = min(Ni, No) = {m} (A3), got Nh = {n_hidden} (Ni = {n_in}, "
            f"No = {n_out}); use theory=aligned (task-aligned inits) or theory=ode.")


def _setup(w1: Tensor, w2: Tensor, svd: tuple[Tensor, Tensor, Tensor], lam: Tensor) -> _Setup:
    """Project the initial weights on F's eigenbasis: B, C, D and the time-independent products."""
    u, s, v = svd
    n_out, n_in = u.shape[0], v.shape[0]
    m = s.shape[0]
    u_m, u_perp, v_m, v_perp = u[:, :m], u[:, m:], v[:, :m], v[:, m:]
    half = lam[:, None] / 2
    eps = torch.hypot(s, half)  # (B, m)
    denom = s + eps
    x = torch.where(denom > 0, half / torch.where(denom > 0, denom, torch.ones_like(denom)), 0.0)
    a = torch.rsqrt(1 + x * x)
    a_plus, a_minus = a * (1 + x), a * (1 - x)
    w2u, w1v = w2.mT @ u_m, w1 @ v_m  # (B, Nh, m) each
    b_mat = w2u * a_plus[:, None, :] + w1v * a_minus[:, None, :]
    c_mat = w2u * a_minus[:, None, :] - w1v * a_plus[:, None, :]
    d_mat = w1 @ v_perp if n_in > n_out else w2.mT @ u_perp  # (B, Nh, k)
    scale = torch.sqrt((w1 * w1).sum((-2, -1)) + (w2 * w2).sum((-2, -1)))
    svals = torch.linalg.svdvals(b_mat)
    nullity = (svals <= SINGULAR_RTOL * scale[:, None]).sum(-1)
    conditioning = svals[:, -1] / scale.clamp_min(torch.finfo(DTYPE).tiny)
    # Badly conditioned rows get B = I so the batch solve stays finite; their results are replaced by the caller.
    eye = torch.eye(m, dtype=DTYPE, device=w1.device)
    b_safe = torch.where((conditioning <= NEAR_SINGULAR_RTOL)[:, None, None], eye, b_mat)
    b_inv = torch.linalg.solve(b_safe, eye.expand_as(b_safe))
    return _Setup(u_m=u_m, u_perp=u_perp, v_m=v_m, v_perp=v_perp, eps=eps,
                  lam_perp=lam * (0.5 if n_out > n_in else -0.5), a_plus=a_plus, a_minus=a_minus,
                  p1=b_inv @ b_inv.mT, p2=b_inv @ c_mat, p3=b_inv @ d_mat, nullity=nullity,
                  conditioning=conditioning)


def _evaluate(st: _Setup, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The blocks of QQᵀ at scaled times u = c·t/τ (B, T): W1ᵀW1 (B, T, Ni, Ni), W2W1 (B, T, No, Ni) and
    W2W2ᵀ (B, T, No, No), each a contiguous tensor of its own (:func:`_qqt_of` puts them together)."""
    batch, n_times = u.shape
    n_in, n_out, m = st.v_m.shape[0], st.u_m.shape[0], st.eps.shape[-1]
    out = (u.new_empty(batch, n_times, n_in, n_in), u.new_empty(batch, n_times, n_out, n_in),
           u.new_empty(batch, n_times, n_out, n_out))
    # Blocks of (networks × times) of a few MB keep the (…, m, m) temporaries in cache; the result is the same.
    # Blocking the batch too matters: for 256 nets × 101 times it halved the time (0.17 → 0.085 s).
    points = max(8, 2**18 // ((n_in + n_out) * m))
    t_block = min(n_times, points)
    b_block = max(1, points // t_block)
    for b0 in range(0, batch, b_block):
        part = st if b_block >= batch else _rows(st, torch.arange(b0, min(b0 + b_block, batch), device=u.device))
        for start in range(0, n_times, t_block):
            blocks = _evaluate_chunk(part, u[b0:b0 + b_block, start:start + t_block])
            for whole, block in zip(out, blocks, strict=True):
                whole[b0:b0 + b_block, start:start + t_block] = block
    return out


def _qqt_of(w1tw1: Tensor, product: Tensor, wwt_out: Tensor) -> Tensor:
    """QQᵀ = [[W1ᵀW1, (W2W1)ᵀ], [W2W1, W2W2ᵀ]] from its blocks."""
    return torch.cat([torch.cat([w1tw1, product.mT], -1), torch.cat([product, wwt_out], -1)], -2)


def _evaluate_chunk(st: _Setup, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_evaluate` of one block of networks × times, the three blocks as views of one QQᵀ."""
    uu = u[..., None]  # (B, T, 1)
    eps = st.eps[:, None, :]  # (B, 1, m)
    eu = eps * uu
    e = torch.exp(-eu)  # (B, T, m)
    f = 2 * uu * exprel(-2 * eu)  # (1 − e²)/ε, → 2t where ε = 0
    # A = e(4B⁻¹B⁻ᵀ + B⁻¹C f CᵀB⁻ᵀ)e + diag(f) (+ the D term), built in place.
    a_mat = (st.p2[:, None] * f[..., None, :]) @ st.p2.mT[:, None]
    a_mat += 4 * st.p1[:, None]
    a_mat *= e[..., :, None]
    a_mat *= e[..., None, :]
    a_mat.diagonal(dim1=-2, dim2=-1).add_(f)
    k = st.p3.shape[-1]
    if k:
        # e_a e_b (e^{2λ⊥u} − 1)·2/λ⊥ = 4u·exp(q + max(p, 0))·exprel(−|p|)
        # with p = 2λ⊥u and q = −(ε_a + ε_b)u ≤ −|p|: no exponent is positive.
        p = 2 * st.lam_perp[:, None, None, None] * uu[..., None]
        q = -(eu[..., :, None] + eu[..., None, :])
        h = 4 * uu[..., None] * torch.exp(q + p.clamp_min(0)) * exprel(-p.abs())
        a_mat += h * (st.p3 @ st.p3.mT)[:, None]
    # Z = [Ṽ_m(A₋ − A₊ eKe); Ũ_m(A₊ + A₋ eKe)] with K = CᵀB⁻ᵀ: a constant plus one matmul per time.
    eke = st.p2.mT[:, None] * e[..., :, None] * e[..., None, :]
    z0 = torch.cat([st.v_m * st.a_minus[:, None, :], st.u_m * st.a_plus[:, None, :]], dim=-2)  # (B, N, m)
    gain = torch.cat([-st.v_m * st.a_plus[:, None, :], st.u_m * st.a_minus[:, None, :]], dim=-2)
    z = gain[:, None] @ eke
    z += z0[:, None]
    if k:
        perp = 2 * torch.exp((st.lam_perp[:, None, None] - eps) * uu)[..., None, :] * st.p3.mT[:, None]
        n_in = st.v_m.shape[0]
        if st.v_perp.shape[-1]:
            z[..., :n_in, :] += st.v_perp @ perp
        else:
            z[..., n_in:, :] += st.u_perp @ perp
    chol, info = torch.linalg.cholesky_ex(a_mat)
    if bool((info != 0).any()):
        raise RuntimeError("A(t) lost positive definiteness; the weights are too close to a singular B.")
    y = torch.linalg.solve_triangular(chol, z.mT, upper=False)
    qq, n_in = y.mT @ y, st.v_m.shape[0]
    return qq[..., :n_in, :n_in], qq[..., n_in:, :n_in], qq[..., n_in:, n_in:]


def _scaled_svd(sigma_yx: Tensor, c: float, svd: tuple[Tensor, Tensor, Tensor] | None):
    if svd is None:
        u, s, vh = torch.linalg.svd(sigma_yx, full_matrices=True)
        svd = (u, s, vh.mT)
    return svd[0], svd[1] / c, svd[2]


def _rows(st: _Setup, idx: Tensor) -> _Setup:
    """The setup of the networks ``idx`` only (the task-basis fields are shared)."""
    shared = ("u_m", "u_perp", "v_m", "v_perp")
    return _Setup(**{k: (val if k in shared else val[idx]) for k, val in vars(st).items()})


def _ode_qqt(w1: Tensor, w2: Tensor, sigma_xx: Tensor, sigma_yx: Tensor, t: Tensor, tau: float,
             **ode_options: Any) -> Tensor:
    """QQᵀ(t) (B, T, N, N) by the ode theory: the fallback for badly conditioned B."""
    from lazyrich.theory.ode import integrate_flow  # local: ode imports assemble, which imports base only

    traj1, traj2 = integrate_flow([w1, w2], sigma_xx, sigma_yx, t, tau, **ode_options)
    q = torch.cat([traj1.mT, traj2], dim=-2)
    return q @ q.mT


def qqt(W1: Tensor, W2: Tensor, sigma_yx: Tensor, t: Tensor, tau: float = 1.0, *,
        sigma_xx: Tensor | None = None, balance_rtol: float = BALANCE_RTOL) -> Tensor:
    """QQᵀ(t) of a λ-balanced two-layer net with Nh = min(Ni, No), Q = [W1ᵀ; W2] (docs/theory.md §4).

    W1 (Nh, Ni), W2 (No, Nh), t (T,) → (T, Ni+No, Ni+No); batched W1 (B, Nh, Ni), W2 (B, No, Nh) with t (T,)
    or (B, T) → (B, T, Ni+No, Ni+No). Blocks: [:Ni, :Ni] = W1ᵀW1, [Ni:, :Ni] = W2W1, [Ni:, Ni:] = W2W2ᵀ.
    ``sigma_xx`` None means whitened inputs; Σxx = c·I is handled by rescaling (target Σyx/c, time c·t).
    Networks whose B is badly conditioned (``NEAR_SINGULAR_RTOL``) are integrated numerically instead.
    Raises ValueError when an input holds NaN/inf, the weights are not balanced, Nh ≠ m, Σxx ≠ c·I, or B is
    singular (a saddle: use :class:`ExactTheory`, which reports it and falls back to the ode theory).
    """
    batched = torch.as_tensor(W1).dim() == 3
    w1, w2 = (promote(w, name) for w, name in ((W1, "W1"), (W2, "W2")))
    w1, w2 = (w if batched else w.unsqueeze(0) for w in (w1, w2))
    sigma_yx = promote(sigma_yx, "sigma_yx").to(w1.device)
    reason = _width_reason(w1.shape[-2], w1.shape[-1], w2.shape[-2])
    if reason:
        raise ValueError(reason)
    c = 1.0
    eye_in = torch.eye(sigma_yx.shape[1], dtype=DTYPE, device=w1.device)
    if sigma_xx is not None:
        stats = TaskStats(sigma_xx, sigma_yx, torch.eye(sigma_yx.shape[0], dtype=DTYPE), 1)
        if stats.whitening_scale is None:
            raise ValueError(whitening_advice(stats.sigma_xx))
        c = stats.whitening_scale
    lam = _balance_or_raise(w1, w2, balance_rtol)
    st = _setup(w1, w2, _scaled_svd(sigma_yx, c, None), lam)
    singular = (st.nullity > 0).nonzero().flatten().tolist()
    if singular:
        raise ValueError(f"B is singular for network(s) {singular}: the flow converges to a saddle, "
                         f"where the closed form does not hold; use ExactTheory (it reports the saddle and "
                         f"falls back to the ode theory) or theory=ode.")
    grid = time_grid(t, w1.shape[0], w1.device)
    near = st.conditioning <= NEAR_SINGULAR_RTOL
    if not bool(near.any()):
        out = _qqt_of(*_evaluate(st, c * grid / tau))
        return out if batched else out[0]
    n = w1.shape[-1] + w2.shape[-2]
    out = grid.new_empty(*grid.shape, n, n)
    ok = (~near).nonzero().flatten()
    if ok.numel():
        out[ok] = _qqt_of(*_evaluate(_rows(st, ok), c * grid[ok] / tau))
    out[near] = _ode_qqt(w1[near], w2[near], c * eye_in, sigma_yx, grid[near], tau, **NEAR_SINGULAR_ODE)
    return out if batched else out[0]


@register_theory("exact")
class ExactTheory(Theory):
    """λ-balanced two-layer nets with Nh = m and Σxx = c·I: the closed form; (near-)singular B falls back to ode.

    Networks whose B is singular (a saddle) or nearly so (``NEAR_SINGULAR_RTOL``) are predicted by the ode theory,
    marked in ``Prediction.ode_fallback`` and explained in the notes. Layer rates and an output multiplier go
    through the change of variables (docs/theory.md §11); weight decay has no closed form and is refused.
    """

    modelled = frozenset({"layer_lr", "output_scale"})
    rescaled = True

    def __init__(self, tau: float = 1.0, balance_rtol: float = BALANCE_RTOL,
                 ode_options: dict[str, Any] | None = None) -> None:
        self.tau, self.balance_rtol = float(tau), float(balance_rtol)
        self.ode_options = dict(ode_options or {})

    def _check(self, stats: TaskStats, weights: list[Tensor]) -> str | None:
        if len(weights) != 2:
            return (f"the closed form is for two-layer nets, got L = {len(weights)} layers; use "
                    f"theory=deep_aligned (aligned, balanced inits) or theory=ode.")
        if stats.whitening_scale is None:
            return whitening_advice(stats.sigma_xx)
        w1, w2 = weights
        reason = _width_reason(w1.shape[-2], stats.n_in, stats.n_out)
        if reason:
            return reason
        try:
            _balance_or_raise(w1, w2, self.balance_rtol)
        except ValueError as exc:
            return str(exc)
        return None

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        w1, w2 = weights
        c = stats.whitening_scale
        u, s_hat, v = _scaled_svd(stats.sigma_yx, c, stats.svd)
        st = _setup(w1, w2, (u, s_hat, v), _balance_or_raise(w1, w2, self.balance_rtol))
        m = s_hat.shape[0]
        # t → ∞: every mode is learned, except that a k-dim null space of B leaves the k weakest unlearned.
        keep = torch.arange(m, device=t.device)[None, :] < (m - st.nullity)[:, None]
        final = loss_from_product(u[:, :m] @ torch.diag_embed(s_hat * keep) @ v[:, :m].mT, stats)
        saddle = st.nullity > 0
        near = ~saddle & (st.conditioning <= NEAR_SINGULAR_RTOL)
        groups = ((~saddle & ~near, self._closed_form), (near, self._near_singular), (saddle, self._saddle))
        parts = []
        for mask, method in groups:
            idx = mask.nonzero().flatten()
            if idx.numel():
                parts.append((idx, method(stats, [w1[idx], w2[idx]], t[idx], _rows(st, idx), final[idx])))
        return Prediction.scatter(parts, w1.shape[0], theory=self.name)

    def _closed_form(self, stats: TaskStats, weights: list[Tensor], t: Tensor, st: _Setup,
                     final: Tensor) -> Prediction:
        w1, w2 = weights
        w1tw1, product, wwt_out = _evaluate(st, stats.whitening_scale * t / self.tau)
        return from_grams(stats, product, w1tw1, wwt_out, w1.mT @ w1, w2 @ w2.mT, t, theory=self.name,
                          final_loss=final, converges_to_saddle=st.nullity > 0,
                          notes=["exact: closed form QQᵀ = Z A⁻¹ Zᵀ (docs/theory.md §4)."])

    def _near_singular(self, stats: TaskStats, weights: list[Tensor], t: Tensor, st: _Setup,
                       final: Tensor) -> Prediction:
        from lazyrich.theory.ode import OdeTheory  # local: ode imports assemble, which imports base only

        options = {**NEAR_SINGULAR_ODE, **self.ode_options}
        pred = OdeTheory(tau=self.tau, **options)._predict(stats, weights, t)
        worst = float(st.conditioning.min())
        pred.notes = [f"exact: B is nearly singular (σ_min(B)/scale down to {worst:.2g} ≤ {NEAR_SINGULAR_RTOL:g}) "
                      f"for {len(st.conditioning)} network(s): the closed form would lose ~1e-16/{worst:.2g}² to "
                      f"rounding, so they are predicted by the ode theory (ode_fallback in the summary)."]
        pred.final_loss, pred.theory = final, self.name
        pred.ode_fallback = torch.ones_like(final, dtype=torch.bool)
        return pred

    def _saddle(self, stats: TaskStats, weights: list[Tensor], t: Tensor, st: _Setup,
                final: Tensor) -> Prediction:
        from lazyrich.theory.saddle import saddle_flow  # local: qqt itself never needs the fallback

        w1, w2 = weights
        c = stats.whitening_scale
        u, s_hat, v = _scaled_svd(stats.sigma_yx, c, stats.svd)
        m = s_hat.shape[0]
        plus = torch.cat([v[:, :m] * st.a_minus[:, None, :], u[:, :m] * st.a_plus[:, None, :]], 1)
        traj = saddle_flow(w1, w2, stats.sigma_xx, stats.sigma_yx, plus / 2**0.5, st.nullity,
                           c * st.eps.amax(-1), t, self.tau, **self.ode_options)
        note = (f"exact: B is singular for {len(st.nullity)} network(s) (nullity {st.nullity.tolist()}): the flow "
                f"converges to a saddle, leaving the weakest mode(s) unlearned; their trajectories come from the "
                f"ode theory, held on the saddle's manifold.")
        pred = from_trajectory(stats, [w1, w2], list(traj), t, theory=self.name, final_loss=final,
                               converges_to_saddle=st.nullity > 0, notes=[note])
        pred.ode_fallback = torch.ones_like(final, dtype=torch.bool)
        return pred
