"""Gradient flow of a two-layer net on its (Ni + No)² Gram (docs/theory.md §12): the ``gram_ode`` theory.

With Q = [W1ᵀ; W2] (N × N_h, N = Ni + No) the flow is dQ/dt = MQ, M = [[0, Eᵀ], [E, 0]], E = (Σyx − AΣxx)/τ and
A = W2W1 the lower-left block of P = QQᵀ. So dP/dt = MP + PM is closed on P: the product, both Grams, the loss and
the NTK of a net of any width N_h follow from the N × N matrix P alone. Exact for any two-layer init and any Σxx;
cost O(N³) per right-hand side, independent of N_h (theory ``ode`` integrates the N·N_h weights instead).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lazyrich.theory.assemble import from_grams
from lazyrich.theory.base import Prediction, TaskStats, Theory, min_width
from lazyrich.theory.ode import ATOL, RTOL, as_numpy, solve_stacked
from lazyrich.theory.registry import register_theory

__all__ = ["GramOdeTheory", "gram_of", "integrate_gram"]


def gram_of(w1: Tensor, w2: Tensor) -> Tensor:
    """P = QQᵀ (…, N, N) of W1 (…, N_h, Ni) and W2 (…, No, N_h): [[W1ᵀW1, W1ᵀW2ᵀ], [W2W1, W2W2ᵀ]]."""
    q = torch.cat([w1.mT, w2], dim=-2)
    return q @ q.mT


def integrate_gram(p0: Tensor, n_in: int, sigma_xx: Tensor, sigma_yx: Tensor, t: Tensor, tau: float = 1.0, *,
                   rtol: float = RTOL, atol: float = ATOL, method: str = "DOP853") -> Tensor:
    """P(t) (B, T, N, N) of the flow dP/dt = MP + PM from P(0) = ``p0`` (B, N, N) on the grids ``t`` (B, T)."""
    sxx, syx = as_numpy(sigma_xx), as_numpy(sigma_yx)
    batch, n, _ = p0.shape

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        p = y.reshape(batch, n, n)
        e = (syx - p[:, n_in:, :n_in] @ sxx) / tau
        mp = np.concatenate([e.transpose(0, 2, 1) @ p[:, n_in:], e @ p[:, :n_in]], axis=1)
        return (mp + mp.transpose(0, 2, 1)).ravel()

    (states,) = solve_stacked(rhs, [as_numpy(p0)], t.detach().cpu().numpy(), p0.device, rtol=rtol, atol=atol,
                              method=method, what="Gram-flow")
    return states


@register_theory("gram_ode")
class GramOdeTheory(Theory):
    """Two-layer nets of any width, init and Σxx: the flow of the (Ni+No)² Gram QQᵀ, cost independent of N_h."""

    def __init__(self, rtol: float = RTOL, atol: float = ATOL, method: str = "DOP853", tau: float = 1.0) -> None:
        self.rtol, self.atol, self.method, self.tau = float(rtol), float(atol), method, float(tau)

    def _check(self, stats: TaskStats, weights: list[Tensor]) -> str | None:
        if len(weights) != 2:
            return (f"the Gram flow closes for two-layer nets only, got L = {len(weights)}; use theory=ode "
                    f"(any depth).")
        return None

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        w1, w2 = weights
        n_in, batch = stats.n_in, w1.shape[0]
        p0 = gram_of(w1, w2)
        p = integrate_gram(p0, n_in, stats.sigma_xx, stats.sigma_yx, t, self.tau, rtol=self.rtol, atol=self.atol,
                           method=self.method)
        rank = min_width(weights)
        final = stats.rank_limited_min_loss(rank).expand(batch).clone()
        note = (f"gram_ode: {self.method} flow of the {p0.shape[-1]}×{p0.shape[-1]} Gram QQᵀ, rtol={self.rtol:g}, "
                f"atol={self.atol:g}; final_loss is the global minimum at rank ≤ {rank} (no saddle detection).")
        return from_grams(stats, p[..., n_in:, :n_in], p[..., :n_in, :n_in], p[..., n_in:, n_in:],
                          p0[:, :n_in, :n_in], p0[:, n_in:, n_in:], t, theory=self.name, final_loss=final,
                          converges_to_saddle=torch.zeros(batch, dtype=torch.bool, device=t.device), notes=[note])
