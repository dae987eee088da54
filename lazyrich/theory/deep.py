"""Task-aligned deep linear nets (docs/theory.md §7): the ``deep_aligned`` theory.

For a mode-decoupled init (see :mod:`lazyrich.theory.modes`), each mode's layer values keep a_{l+1}² − a_l²
fixed, so they are functions of s = Π_l a_l alone and s obeys the scalar ODE
τ ds/dt = (Σ_l Π_{k≠l} a_k²)(s̃ − s).
The B·m scalar ODEs are one ``solve_ivp`` system; the a_l come from a monotone root-find at every evaluation.
The weights are then rebuilt exactly (layer by layer) and every figure comes from them.
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
    layer_squares,
    layer_squares_np,
    rebuild,
    signed_layer_values,
    task_modes,
)
from lazyrich.theory.ode import as_numpy, solve_stacked
from lazyrich.theory.registry import register_theory

__all__ = ["DeepAlignedTheory", "integrate_modes", "mode_limit"]


def integrate_modes(s0: Tensor, s_target: Tensor, offsets: Tensor, u: Tensor, tau: float = 1.0, *,
                    rtol: float = 1e-11, atol: float = 1e-12) -> Tensor:
    """s(u) for modes s0 (B, m) with targets (m,), offsets (B, m, L), on grids u (B, T): (B, T, m)."""
    batch, m = s0.shape
    d = as_numpy(offsets)
    target = np.broadcast_to(as_numpy(s_target), (batch, m))
    n_layers = d.shape[-1]
    last = {"y": None}  # the previous root: RK stages are close together, so Newton restarts near it

    def rhs(_u: float, y: np.ndarray) -> np.ndarray:
        s = y.reshape(batch, m)
        sq = layer_squares_np(np.abs(s), d, guess=last["y"])
        last["y"] = sq.min(-1)
        rate = sum(np.prod(np.delete(sq, l, axis=-1), axis=-1) for l in range(n_layers))
        return (rate * (target - s) / tau).reshape(-1)

    (states,) = solve_stacked(rhs, [as_numpy(s0)[:, :, None]], u.detach().cpu().numpy(), s0.device, rtol=rtol,
                              atol=atol, what="mode")
    return states[..., 0]  # (B, T, m)


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
        d, s0 = modes.offsets(), modes.s  # (B, m, L), (B, m)
        s_t = integrate_modes(s0, s_hat, d, c * t, self.tau, rtol=self.rtol, atol=self.atol)
        squares = layer_squares(s_t.abs(), d[:, None])
        a_t = signed_layer_values(squares, s_t, d[:, None], modes.a.mT[:, None])  # (B, T, m, L)
        traj = rebuild(weights, modes, a_t.transpose(-1, -2))
        final, saddle = mode_limit(stats, modes, weights)
        notes = [f"deep_aligned: per-mode scalar ODE (L = {len(weights)}), DOP853 rtol={self.rtol:g}."]
        return from_trajectory(stats, weights, traj, t, theory=self.name, final_loss=final,
                               converges_to_saddle=saddle, notes=notes)
