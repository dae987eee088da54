"""Gradient flow integrated numerically: the reference the closed forms are tested against, and the fallback.

τ dW_l/dt = W_{L:l+1}ᵀ (Σyx − W Σxx) W_{l−1:1}ᵀ for any depth, any init and any Σxx (docs/theory.md §1). The whole
batch is one state vector for ``scipy.integrate.solve_ivp``; the right-hand side is batched numpy matmuls. The
training options are integrated as they are, in the weights W (no change of variables): layer rates m_l, an output
multiplier α and weight decay γ give τ dW_l/dt = m_l(α·W_{L:l+1}ᵀ(Σyx − αWΣxx)W_{l−1:1}ᵀ − γW_l) (§11).
Cost: O(steps · L · B · n³) with steps set by the tolerance and by the fastest rate, about max(|λ|, s̃₁).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from lazyrich.device import DTYPE
from lazyrich.theory.assemble import from_trajectory, standard_trajectory
from lazyrich.theory.base import Prediction, TaskStats, Theory, grams_of_weights, min_width, time_grid
from lazyrich.theory.registry import register_theory
from lazyrich.train import TRAINING_OPTIONS, TrainOptions

__all__ = ["OdeTheory", "as_numpy", "integrate_flow", "numerical_prediction", "solve_stacked"]

RTOL, ATOL = 1e-11, 1e-12


def _flow_rhs(shapes: list[tuple[int, ...]], sigma_xx: np.ndarray, sigma_yx: np.ndarray, tau: float,
              options: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None):
    """ẏ of the flow of L layers of ``shapes`` [(B, out, in)]; ``options`` = (m (B, L), α (B,), γ (B,)) or None."""
    sizes = [int(np.prod(s)) for s in shapes]
    bounds = np.cumsum([0, *sizes])
    if options is not None:
        rates, alpha, decay = (np.asarray(x, dtype=np.float64) for x in options)
        alpha = alpha[:, None, None]

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        w = [y[a:b].reshape(s) for a, b, s in zip(bounds[:-1], bounds[1:], shapes, strict=True)]
        prefix: list[np.ndarray | None] = [None]  # prefix[l] = W_{l:1}; None stands for I
        for wl in w[:-1]:
            prefix.append(wl if prefix[-1] is None else wl @ prefix[-1])
        product = w[-1] @ prefix[-1]
        if options is None:
            back = (sigma_yx - product @ sigma_xx) / tau  # becomes W_{L:l+1}ᵀ(Σyx − WΣxx) going down
        else:
            back = alpha * (sigma_yx - alpha * product @ sigma_xx) / tau
        grads: list[np.ndarray] = [back] * len(w)
        for l in range(len(w) - 1, -1, -1):
            grads[l] = back if prefix[l] is None else back @ prefix[l].transpose(0, 2, 1)
            back = w[l].transpose(0, 2, 1) @ back
            if options is not None:
                grads[l] = rates[:, l, None, None] * (grads[l] - (decay[:, None, None] / tau) * w[l])
        return np.concatenate([g.ravel() for g in grads])

    return rhs


def as_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    """``x`` as a float64 numpy array on the CPU (the integrators' working copy)."""
    return torch.as_tensor(x).detach().to("cpu", DTYPE).numpy()


def solve_stacked(rhs: Callable[[float, np.ndarray], np.ndarray], arrays: Sequence[np.ndarray], grid: np.ndarray,
                  device: torch.device | str, *, rtol: float, atol: float, method: str = "DOP853",
                  what: str = "gradient-flow") -> list[Tensor]:
    """Integrate ẏ = rhs(t, y) from y0 = the ``arrays`` [(B, out, in)] flattened one after another, and return
    each array's trajectory (B, T, out, in) on ``device`` at its network's own times ``grid`` (B, T).

    One solve covers the batch, evaluated at the union of all grids (the error control is then shared); a
    grid that ends at t = 0 returns the initial state. ``what`` names the flow in the error of a failed solve.
    """
    shapes = [a.shape for a in arrays]
    union = np.unique(grid)
    y0 = np.concatenate([a.ravel() for a in arrays])
    if union[-1] > 0:
        sol = solve_ivp(rhs, (0.0, float(union[-1])), y0, method=method, t_eval=union, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"{what} integration failed: {sol.message}")
        states = sol.y
    else:
        states = np.repeat(y0[:, None], union.size, axis=1)
    idx = np.searchsorted(union, grid)  # (B, T): each network's own grid inside the union
    rows = np.arange(grid.shape[0])[:, None]
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        layer = states[start:start + size].reshape(*shape, -1).transpose(0, 3, 1, 2)[rows, idx]
        start += size
        out.append(torch.from_numpy(np.ascontiguousarray(layer)).to(device))
    return out


def integrate_flow(weights: Sequence[Tensor], sigma_xx: Tensor, sigma_yx: Tensor,
                   t: Tensor | Sequence[float], tau: float = 1.0, *, rtol: float = RTOL, atol: float = ATOL,
                   method: str = "DOP853", options: TrainOptions | None = None) -> list[Tensor]:
    """Gradient-flow weight trajectories from ``weights`` [W_l (B, out, in)] at times ``t`` (T,) or (B, T).

    Returns [W_l(t) (B, T, out, in)] on the weights' device; unbatched (out, in) weights give (T, out, in).
    One solve covers the batch (:func:`solve_stacked`). ``options``: the training options to integrate with
    (layer rates, α, weight decay; None or none set: the plain flow).
    """
    batched = weights[0].dim() == 3
    ws = [torch.as_tensor(w) if batched else torch.as_tensor(w).unsqueeze(0) for w in weights]
    device, batch = ws[0].device, ws[0].shape[0]
    grid = time_grid(t, batch).cpu().numpy()
    arrays = [as_numpy(w) for w in ws]
    per_network = None
    if options is not None and options.active:
        per_network = tuple(as_numpy(x) for x in (options.rates(batch, len(ws)), options.alpha(batch),
                                                   options.decay(batch)))
    rhs = _flow_rhs([a.shape for a in arrays], as_numpy(sigma_xx), as_numpy(sigma_yx), float(tau), per_network)
    out = solve_stacked(rhs, arrays, grid, device, rtol=rtol, atol=atol, method=method)
    return out if batched else [traj[0] for traj in out]


@register_theory("ode")
class OdeTheory(Theory):
    """Numerical gradient flow (DOP853 by default): any depth, init and Σxx; the reference and fallback."""

    modelled = frozenset(TRAINING_OPTIONS)

    def __init__(self, rtol: float = RTOL, atol: float = ATOL, method: str = "DOP853",
                 tau: float = 1.0) -> None:
        self.rtol, self.atol, self.method, self.tau = float(rtol), float(atol), method, float(tau)

    def _check(self, stats: TaskStats, weights: list[Tensor]) -> str | None:
        return None

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        traj = integrate_flow(weights, stats.sigma_xx, stats.sigma_yx, t, self.tau, rtol=self.rtol,
                              atol=self.atol, method=self.method, options=self.training)
        note = f"ode: {self.method} gradient flow, rtol={self.rtol:g}, atol={self.atol:g}"
        return numerical_prediction(stats, weights, traj, t, self.name,
                                    note + (f", with {self.training.describe()}" if self.training.active else ""),
                                    self.training)


def numerical_prediction(stats: TaskStats, weights: list[Tensor], traj: list[Tensor], t: Tensor, theory: str,
                         note: str, options: TrainOptions | None = None) -> Prediction:
    """The Prediction of an integrated trajectory [W_l (B, T, out, in)] of the weights W: final_loss is the global
    minimum at the nets' rank (under weight decay, whose limit has no closed form here, the loss at the grid's last
    time), no saddle is flagged (a numerical solve does not detect them); ``note`` says which solve it was.
    ``options``: the training options it was integrated with; the figures are taken in the standard variables
    U_l = k_l·W_l (the network's function, the kernel that drives it; docs/theory.md §11) and the Grams of W."""
    batch = weights[0].shape[0]
    weights, traj, k = standard_trajectory(weights, traj, options)
    decays = options is not None and options.weight_decay is not None
    final = stats.rank_limited_min_loss(min_width(weights)).expand(batch).clone()
    limit = (f"the loss at t = {float(t[:, -1].max()):.4g} (weight decay: no closed-form limit)" if decays else
             f"the global minimum at rank ≤ {min_width(weights)} (no saddle detection)")
    pred = from_trajectory(stats, weights, traj, t, theory=theory, final_loss=final,
                           converges_to_saddle=torch.zeros(batch, dtype=torch.bool, device=t.device),
                           notes=[f"{note}; final_loss is {limit}."])
    if decays:
        pred.final_loss = pred.loss[:, -1].clone()
    return pred if k is None else grams_of_weights(pred, k)
