"""Gradient flow from a λ-balanced init with singular B, held on the manifold it never leaves (docs/theory.md §4).

With Q = [W1ᵀ; W2], balance gives τ dQ/dt = FQ − QK(t) with K symmetric, so B(t)ᵀ = √2·P₊ᵀQ(t) obeys
τ dBᵀ/dt = S_λBᵀ − BᵀK: its rank never changes and the flow ends at a saddle. A plain ODE solve does not stay
there: rounding seeds B's null directions, which grow like e^{2εt} and let the net escape after t ~ 36/ε.
So the solve runs in segments of length ≤ 4τ/(c·ε_max) and, after each, removes B's k smallest singular
directions (a change at the level of rounding), which keeps the trajectory on the true, saddle-bound path.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from lazyrich.theory.ode import integrate_flow

__all__ = ["project_rank", "saddle_flow"]


def project_rank(w1: Tensor, w2: Tensor, plus: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Remove the k smallest singular directions of B = √2·Qᵀplus from one net (W1 (Nh, Ni), W2 (No, Nh)).

    ``plus`` (Ni + No, m) holds F's orthonormal +ε eigenvectors (1/√2)[Ṽ_m A₋; Ũ_m A₊].
    """
    n_in = w1.shape[-1]
    q = torch.cat([w1.mT, w2], dim=-2)
    b = math.sqrt(2) * q.mT @ plus
    u_b, s_b, vh_b = torch.linalg.svd(b)
    drop = (u_b[:, -k:] * s_b[-k:]) @ vh_b[-k:]
    q = q - plus @ drop.mT / math.sqrt(2)
    return q[:n_in].mT, q[n_in:]


def saddle_flow(w1: Tensor, w2: Tensor, sigma_xx: Tensor, sigma_yx: Tensor, plus: Tensor, nullity: Tensor,
                rate: Tensor, t: Tensor, tau: float = 1.0, **ode_options: Any) -> tuple[Tensor, Tensor]:
    """Trajectories (B, T, ·, ·) of W1, W2 from singular-B inits (B, ·, ·) on grids t (B, T).

    ``plus`` (B, Ni + No, m): +ε eigenvectors; ``nullity`` (B,): k per net; ``rate`` (B,): c·ε_max, the
    fastest growth rate of a rounding error, which sets the segment length.
    """
    out1, out2 = [], []
    for b in range(w1.shape[0]):
        k = int(nullity[b])
        times, inverse = torch.unique(t[b], return_inverse=True)
        max_gap = 4 * tau / max(float(rate[b]), 1e-12)
        cur1, cur2 = project_rank(w1[b], w2[b], plus[b], k)
        now, rec1, rec2 = 0.0, [], []
        for target in times.tolist():
            while now < target:
                step = min(target - now, max_gap)
                seg = torch.tensor([0.0, step], dtype=t.dtype, device=t.device)
                traj1, traj2 = integrate_flow([cur1, cur2], sigma_xx, sigma_yx, seg, tau, **ode_options)
                cur1, cur2 = project_rank(traj1[-1], traj2[-1], plus[b], k)
                now = now + step if target - now > max_gap else target
            rec1.append(cur1)
            rec2.append(cur2)
        out1.append(torch.stack(rec1)[inverse])
        out2.append(torch.stack(rec2)[inverse])
    return torch.stack(out1), torch.stack(out2)
