"""Singular-value dynamics of task-aligned two-layer nets (docs/theory.md §5): theories ``aligned`` and ``saxe``.

Each mode obeys τ ds/dt = √(λ² + 4s²)(s̃ − s). Its closed form, with c² = λ²/4 and ε = √(s̃² + c²), is written
cancellation-free as s(t) = s̃ − 2ε²g/(1 + 2s̃g − c²g²), g = e^{−2εt/τ}(s̃ − s₀)/N, N = s̃s₀ + c² + ε√(s₀² + c²).
At λ = 0 it is Saxe's logistic solution. Σxx = c·I is handled by rescaling (target Σyx/c, time c·t).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lazyrich.device import DTYPE
from lazyrich.theory.assemble import from_grams, from_trajectory
from lazyrich.theory.base import (
    Prediction,
    TaskStats,
    exprel,
    loss_from_product,
    min_width,
)
from lazyrich.theory.modes import (
    Modes,
    ModeTheory,
    layer_squares,
    rebuild,
    signed_layer_values,
    task_modes,
)
from lazyrich.theory.registry import register_theory

__all__ = ["AlignedTheory", "SaxeTheory", "singular_values"]


def singular_values(s0: Tensor | float, s_target: Tensor | float, lam: Tensor | float, t: Tensor | float,
                    tau: float = 1.0) -> Tensor:
    """s(t) of one aligned mode, elementwise over broadcastable s0, s_target (s̃), lam (λ) and t; float64.

    Finite for every input: no exponent is positive and no difference of large terms is formed. At λ = 0
    the mode keeps its sign, s = 0 is a fixed point and s₀ of the wrong sign decays to 0 (the reversal stall).
    """
    tensors = (torch.as_tensor(x, dtype=DTYPE) for x in (s0, s_target, lam, t))
    s0, s_tgt, lam, t = torch.broadcast_tensors(*tensors)
    u = t / tau
    c2 = lam * lam / 4
    eps = torch.hypot(s_tgt, lam / 2)
    r0 = torch.hypot(s0, lam / 2)
    # s̃s₀ + ε√(s₀² + c²) cancels when s̃s₀ < 0; multiplied out it is c²(s₀² + s̃² + c²)/(ε√(s₀² + c²) − s̃s₀).
    opposite = s_tgt * s0 < 0
    gap = torch.where(opposite, eps * r0 - s_tgt * s0, torch.ones_like(u))
    norm = torch.where(opposite, c2 * (1 + (s0 * s0 + s_tgt * s_tgt + c2) / gap), s_tgt * s0 + c2 + eps * r0)
    diff = s_tgt - s0
    log_g = -2 * eps * u + torch.log(diff.abs()) - torch.log(norm)  # log|g|, −inf when s₀ = s̃
    # Use g while |g| ≤ 1 and h = 1/g beyond: the same expression, and neither ever overflows.
    g = torch.sign(diff) * torch.exp(log_g.clamp_max(0.0))
    h = torch.sign(diff) * torch.exp((-log_g).clamp_max(0.0))
    closed = torch.where(log_g <= 0,
                         s_tgt - 2 * eps * eps * g / (1 + 2 * s_tgt * g - c2 * g * g),
                         s_tgt - 2 * eps * eps * h / (h * h + 2 * s_tgt * h - c2))
    # λ = 0: τ ds/dt = 2|s|(s̃ − s), i.e. s = s₀ / (e^{−2σs̃u} + 2u|s₀|·exprel(−2σs̃u)) with σ = sign s₀.
    z = -2 * torch.sign(s0) * s_tgt * u
    logistic = s0 / (torch.exp(z) + 2 * u * s0.abs() * exprel(z))
    return torch.where(lam == 0, logistic, closed)


def _aligned_reason(stats: TaskStats, weights: list[Tensor]) -> tuple[Modes | None, str | None]:
    if len(weights) != 2:
        return None, (f"this closed form is for two-layer nets, got L = {len(weights)}; use "
                      f"theory=deep_aligned or theory=ode.")
    return task_modes(stats, weights)


def _final(stats: TaskStats, s_final: Tensor, weights: list[Tensor]) -> tuple[Tensor, Tensor]:
    """(final_loss (B,), converges_to_saddle (B,)) for final task-basis singular values s_final (B, m)."""
    u, s, v = stats.svd
    m = s.shape[0]
    final = loss_from_product(u[:, :m] @ torch.diag_embed(s_final) @ v[:, :m].mT, stats)
    best = stats.rank_limited_min_loss(min_width(weights))
    # A saddle is an end point above the best loss this architecture can reach (slack: rounding of losses).
    return final, final > best + 1e-10 * (best.abs() + torch.trace(stats.sigma_yy).abs() + 1e-300)


class _TwoLayerAligned(ModeTheory):
    """Task-aligned two-layer nets whose modes follow τ ds/dt; the closed forms below share this setting."""

    def __init__(self, tau: float = 1.0) -> None:
        self.tau = float(tau)

    def _modes(self, stats: TaskStats, weights: list[Tensor]) -> tuple[Modes | None, str | None]:
        return _aligned_reason(stats, weights)


@register_theory("aligned")
class AlignedTheory(_TwoLayerAligned):
    """Task-aligned two-layer nets (any width, per-mode λ): closed-form s(t) per mode, exact weights."""

    def _flow(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        modes, _ = self._modes(stats, weights)
        c = stats.whitening_scale
        s_hat = stats.svd[1] / c
        d = modes.offsets()  # (B, m, 2); λ_α = d_2 − d_1
        lam = d[..., 1] - d[..., 0]
        s0 = modes.s
        s_t = singular_values(s0[:, None], s_hat, lam[:, None], c * t[..., None], self.tau)  # (B, T, m)
        a_t = signed_layer_values(layer_squares(s_t.abs(), d[:, None]), s_t, d[:, None], modes.a.mT[:, None])
        traj = rebuild(weights, modes, a_t.transpose(-1, -2))
        stall = (lam == 0) & (s0 * s_hat <= 0)
        final, saddle = _final(stats, torch.where(stall, torch.zeros_like(s0), s_hat.expand_as(s0)), weights)
        notes = ["aligned: per-mode closed form of τ ds/dt = √(λ² + 4s²)(s̃ − s) (docs/theory.md §5)."]
        return from_trajectory(stats, weights, traj, t, theory=self.name, final_loss=final,
                               converges_to_saddle=saddle, notes=notes)


@register_theory("saxe")
class SaxeTheory(_TwoLayerAligned):
    """Saxe et al. (2014): the λ = 0 dynamics from the same initial s₀, as a comparison curve.

    The prediction is that of a zero-balanced net with the given product: W1ᵀW1 = Ṽ|S|Ṽᵀ, W2W2ᵀ = Ũ|S|Ũᵀ.
    """

    exact = False
    modelled = frozenset({"layer_lr", "output_scale"})  # in the standard variables; no decay

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        modes, _ = self._modes(stats, weights)
        c = stats.whitening_scale
        u, s, v = stats.svd
        m = s.shape[0]
        u_m, v_m, s_hat, s0 = u[:, :m], v[:, :m], s / c, modes.s
        s_t = singular_values(s0[:, None], s_hat, 0.0, c * t[..., None], self.tau)

        def grams(sv: Tensor) -> tuple[Tensor, Tensor]:
            mag = torch.diag_embed(sv.abs())
            return v_m @ mag @ v_m.mT, u_m @ mag @ u_m.mT

        (w1tw1, wwt), (w1tw1_0, wwt_0) = grams(s_t), grams(s0)
        stall = s0 * s_hat <= 0
        final, saddle = _final(stats, torch.where(stall, torch.zeros_like(s0), s_hat.expand_as(s0)), weights)
        notes = ["saxe: λ forced to 0 (Saxe et al. 2014), a comparison curve; Grams are those of a "
                 "zero-balanced net with the same product."]
        return from_grams(stats, u_m @ torch.diag_embed(s_t) @ v_m.mT, w1tw1, wwt, w1tw1_0, wwt_0, t,
                          theory=self.name, final_loss=final, converges_to_saddle=saddle, notes=notes)

