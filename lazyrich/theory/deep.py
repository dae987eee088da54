"""Task-aligned deep linear nets (docs/theory.md §7): the ``deep_aligned`` theory.

For a mode-decoupled init (see :mod:`lazyrich.theory.modes`), each mode's layer values keep a_{l+1}² − a_l²
fixed, so one scalar per mode carries its whole state. That scalar is the signed value x of the layer with the
smallest square (the only one that can pass through zero); every other layer is ±√(x² + d_l) and
τ dx/dt = (Π_{l≠*} a_l)(s̃ − s) with s = Π_l a_l (equivalently τ ds/dt = (Σ_l Π_{k≠l} a_k²)(s̃ − s)).
The B·m scalar ODEs are one ``solve_ivp`` system, explicit in x. The weights are then rebuilt exactly (layer by
layer) and every figure comes from them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lazyrich.theory.aligned import _final
from lazyrich.theory.assemble import from_trajectory
from lazyrich.theory.base import Prediction, TaskStats
from lazyrich.theory.modes import (
    Modes,
    ModeTheory,
    rebuild,
    task_modes,
)
from lazyrich.theory.ode import as_numpy, solve_stacked
from lazyrich.theory.registry import register_theory

__all__ = ["DeepAlignedTheory", "integrate_modes", "mode_limit"]


def integrate_modes(a0: Tensor, offsets: Tensor, s_target: Tensor, u: Tensor, tau: float = 1.0, *,
                    rtol: float = 1e-11, atol: float = 1e-12) -> Tensor:
    """Signed layer values a_l(u) (B, T, m, L) of modes starting at a0 (B, m, L) with conserved offsets
    d_l = a_l² − min_k a_k² (B, m, L) and targets s̃ (m,), on grids u (B, T).

    The state is the signed value x of each mode's layer of smallest square (its "star", offset 0): every other
    layer is a_l = sign(a_l(0))·√(x² + d_l), which never vanishes (a tie with the star stays at |x|, and x then
    never crosses zero: the mode stalls at the saddle). Gradient flow on the star's value,
    τ dx/du = (Π_{l≠*} a_l)(s̃ − s), s = Π_l a_l, is explicit in x: no root-find per evaluation.
    """
    a = as_numpy(a0)
    batch, m, _ = a.shape
    d = as_numpy(offsets)
    star = d.argmin(-1)[..., None]  # (B, m, 1): a layer of offset 0
    is_star = np.arange(d.shape[-1]) == star
    sign = np.where(is_star, 1.0, np.sign(a))
    x0 = np.take_along_axis(a, star, -1)[..., 0]
    target = np.broadcast_to(as_numpy(s_target), (batch, m))

    def others(x: np.ndarray) -> np.ndarray:
        """Π_{l≠*} a_l (…, m) at star values x (…, m)."""
        return np.prod(np.where(is_star, 1.0, sign * np.sqrt(x[..., None] ** 2 + d)), -1)

    def rhs(_u: float, y: np.ndarray) -> np.ndarray:
        x = y.reshape(batch, m)
        rest = others(x)
        return (rest * (target - x * rest) / tau).reshape(-1)

    (states,) = solve_stacked(rhs, [x0[:, :, None]], u.detach().cpu().numpy(), a0.device, rtol=rtol,
                              atol=atol, what="mode")
    x = states[..., 0]  # (B, T, m)
    d_t, sign_t = (torch.from_numpy(v).to(x)[:, None] for v in (d, sign))
    star_t = torch.from_numpy(is_star).to(x.device)[:, None]
    return torch.where(star_t, x[..., None], sign_t * torch.sqrt(x[..., None] ** 2 + d_t))


def mode_limit(stats: TaskStats, modes: Modes, weights: list[Tensor]) -> tuple[Tensor, Tensor]:
    """(final_loss (B,), converges_to_saddle (B,)) of mode-decoupled nets as t → ∞, under flow or converging GD.

    s = 0 is a fixed point iff two layers can vanish together (two zero offsets); from the wrong side the mode
    then decays to 0 instead of crossing. Every other mode reaches its target s̃.
    """
    d, s0, s_hat = modes.offsets(), modes.s, stats.svd[1] / stats.whitening_scale
    stuck = ((d == 0).sum(-1) >= 2) & (s0 * s_hat <= 0)
    return _final(stats, torch.where(stuck, torch.zeros_like(s0), s_hat.expand_as(s0)), weights)


@register_theory("deep_aligned")
class DeepAlignedTheory(ModeTheory):
    """Mode-decoupled nets of any depth L ≥ 2 (balanced or per-mode offsets): one scalar ODE per mode."""

    def __init__(self, tau: float = 1.0, rtol: float = 1e-11, atol: float = 1e-12) -> None:
        self.tau, self.rtol, self.atol = float(tau), float(rtol), float(atol)

    def _modes(self, stats: TaskStats, weights: list[Tensor]) -> tuple[Modes | None, str | None]:
        return task_modes(stats, weights)

    def _flow(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        modes, _ = self._modes(stats, weights)
        c = stats.whitening_scale
        s_hat = stats.svd[1] / c
        a_t = integrate_modes(modes.a.mT, modes.offsets(), s_hat, c * t, self.tau, rtol=self.rtol,
                              atol=self.atol)  # (B, T, m, L)
        traj = rebuild(weights, modes, a_t.transpose(-1, -2))
        final, saddle = mode_limit(stats, modes, weights)
        notes = [f"deep_aligned: per-mode scalar ODE (L = {len(weights)}), DOP853 rtol={self.rtol:g}."]
        return from_trajectory(stats, weights, traj, t, theory=self.name, final_loss=final,
                               converges_to_saddle=saddle, notes=notes)
