"""Escape from the λ = 0 saddle: how long gradient descent sits on the plateau, and the curve after it.

At λ = 0 a mode α whose product starts on the wrong side (s₀·s̃ ≤ 0: a reversal, or a wrong-sign determinant)
has column α of B (docs/theory.md §4) at 0, and gradient flow never leaves the saddle: ``exact`` reports it so. Any
seed β_α = ‖B e_α‖ in that direction grows like e^{c s̃_α t} near the saddle, so GD, which always carries one,
escapes after a finite plateau. The seed is read off the weights as the trainer holds them (rounded to its
dtype; for λ-balanced weights at λ̂ ≈ 0, B = (W2ᵀŨ + W1Ṽ)/√2), and is never below u/2·‖Q‖_F, the rounding
that every GD step adds (u the dtype's machine epsilon, Q = [W1ᵀ; W2]).

Model: mode α is a two-variable system (x, y) with s = xy; a seed β is an imbalance λ_α = y² − x² of size
2√2·√|s₀|·β, and the flow from (s₀, λ_α) is the aligned closed form (:func:`~lazyrich.theory.singular_values`),
which gives the whole curve: the plateau, the escape (s reaching s̃/2) at

    t_α = ln((s̃ − s₀)/(N·g*)) / (2ε c),   g* = 2s̃/(b + √(b² + s̃²λ_α²)),   b = 4ε² − 2s̃²,   ε = √(s̃² + λ_α²/4),

with N as in the aligned theory and c the whitening scale, and the rise after it (t_α ≈ ln(1/β_α)/(c s̃_α)).
Measured (tests/test_theory_escape.py, 3×3 reversal): the plateau within 4–14% of GD's for float64 and float32
rounding and for perturbations δ ∈ {1e-10, 1e-6, 1e-3}; on the hierarchy reversal within 2–11%. GD runs slightly
behind the flow here (its growth factor 1 + η s̃ per step is below e^{η s̃}), so the model errs short.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lazyrich import metrics
from lazyrich.device import DTYPE
from lazyrich.theory.aligned import singular_values
from lazyrich.theory.assemble import from_grams
from lazyrich.theory.base import (
    Prediction,
    TaskStats,
    Theory,
    balance_magnitude,
    loss_from_product,
    weight_scale,
    whitening_advice,
)
from lazyrich.theory.registry import register_theory

__all__ = ["EscapeTheory", "escape_times", "mode_imbalance", "saddle_seeds"]


def saddle_seeds(stats: TaskStats, weights: list[Tensor], dtype: torch.dtype = DTYPE) -> Tensor:
    """Seeds β (B, m) = ‖B e_α‖ of the weights rounded to ``dtype``, floored at that dtype's per-step rounding."""
    w1, w2 = (w.to(dtype).to(DTYPE) for w in weights)
    u, s, v = stats.svd
    m = s.shape[0]
    b = (w2.mT @ u[:, :m] + w1 @ v[:, :m]) / math.sqrt(2)
    q_norm = weight_scale([w1, w2])
    return b.norm(dim=-2).clamp_min((torch.finfo(dtype).eps / 2 * q_norm)[:, None])


def mode_imbalance(s0: Tensor, seeds: Tensor) -> Tensor:
    """The per-mode imbalance |λ_α| = 2√2·√|s₀|·β that a seed β gives a mode at s₀ (module docstring)."""
    return 2 * math.sqrt(2) * s0.abs().sqrt() * seeds


def escape_times(s0: Tensor, s_target: Tensor, lam: Tensor, c: float = 1.0) -> Tensor:
    """Escape time (s reaches s̃/2) of each mode from s₀ ≤ 0 towards s̃ > 0 at imbalance λ ≠ 0 (module doc);
    NaN for modes that start on the right side (nothing to escape) or at λ = 0 (they never do)."""
    half = lam.abs() / 2
    eps = torch.hypot(s_target, half)
    r0 = torch.hypot(s0, half)
    # N = s̃s₀ + c² + ε√(s₀² + c²), cancellation-free for s̃s₀ < 0 (as in the aligned theory).
    norm = half**2 * (1 + (s0 * s0 + s_target * s_target + half**2) / (eps * r0 - s_target * s0))
    b = 4 * eps * eps - 2 * s_target * s_target
    g_star = 2 * s_target / (b + torch.sqrt(b * b + 4 * (s_target * half) ** 2))
    t = torch.log((s_target - s0) / (norm * g_star)) / (2 * eps * c)
    wrong = (s0 * s_target <= 0) & (half > 0) & (s_target > 0)
    return torch.where(wrong, t.clamp_min(0.0), torch.full_like(t, math.nan))


@register_theory("escape")
class EscapeTheory(Theory):
    """Two-layer nets at λ ≈ 0 trained by GD: each wrong-sign mode leaves the saddle after a seeded plateau."""

    dynamics = "gd"
    exact = False

    def __init__(self, dtype: str | torch.dtype = "float64", lam_rtol: float = 1e-2) -> None:
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a torch float dtype such as 'float64' or 'float32', not {dtype!r}.")
        self.lam_rtol = float(lam_rtol)

    def _check(self, stats: TaskStats, weights: list[Tensor]) -> str | None:
        if len(weights) != 2:
            return f"the escape model is for two-layer nets, got L = {len(weights)}; use theory=ode."
        if stats.whitening_scale is None:
            return whitening_advice(stats.sigma_xx)
        lam, scale = balance_magnitude(weights)
        bad = (lam > self.lam_rtol * scale).nonzero().flatten().tolist()
        if bad:
            return (f"the escape model is for λ ≈ 0 (|λ̂| ≤ {self.lam_rtol:g}·(‖W1‖² + ‖W2‖²)), not network(s) "
                    f"{bad}: at λ ≠ 0 the exact theory already predicts the crossing; use theory=exact.")
        return None

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        c = stats.whitening_scale
        u, s, v = stats.svd
        m = s.shape[0]
        u_m, v_m, s_hat = u[:, :m], v[:, :m], s / c
        s0 = metrics.task_svals(metrics.product(weights), u, v)  # (B, m), signed
        lam = mode_imbalance(s0, saddle_seeds(stats, weights, self.dtype))
        s_t = singular_values(s0[:, None], s_hat, lam[:, None], c * t[..., None])

        def grams(sv: Tensor) -> tuple[Tensor, Tensor]:
            mag = torch.diag_embed(sv.abs())
            return v_m @ mag @ v_m.mT, u_m @ mag @ u_m.mT

        (w1tw1, wwt), (w1tw1_0, wwt_0) = grams(s_t), grams(s0)
        wrong = s0 * s_hat <= 0
        flow_final = torch.where(wrong, torch.zeros_like(s0), s_hat.expand_as(s0))
        final = loss_from_product(u_m @ torch.diag_embed(flow_final) @ v_m.mT, stats)
        notes = [f"escape: λ = 0 saddle seeded by B at the start and {str(self.dtype).removeprefix('torch.')} "
                 f"rounding; per-mode closed form at the seeded imbalance; the flow's saddle verdict is kept "
                 f"(converges_to_saddle, final_loss) and escape_time says when GD leaves it."]
        pred = from_grams(stats, u_m @ torch.diag_embed(s_t) @ v_m.mT, w1tw1, wwt, w1tw1_0, wwt_0, t,
                          theory=self.name, final_loss=final, converges_to_saddle=wrong.any(-1), notes=notes)
        pred.escape_time = escape_times(s0, s_hat, lam, c)
        return pred
