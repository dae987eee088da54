"""Gradient descent against gradient flow: the leading O(η) correction, and the agreement tolerance it implies.

Statement (backward error analysis). GD w_{k+1} = w_k + η f(w_k), f = −∇L, follows to O(η²) per unit time the
*modified flow* ẇ = f − (η/2)·Df·f = −∇(L + (η/4)‖∇L‖²); the theory ``gd_flow`` integrates it for any init,
so its gap to the trainer is O(η²) where every flow theory's is O(η) (two layers, any init and Σxx).

Derived tolerance. −Df is the Hessian H, so the correction moves along the flow at the extra speed
(η/2)·(∇LᵀH∇L)/‖∇L‖² ≤ (η/2)·r with r = λ_max(H): GD runs ahead of the flow by a relative time of at most
(η/2)·r_max. For a two-layer net with Σxx = c·I, r ≤ c(λ_max(W2W2ᵀ) + λ_max(W1ᵀW1) + ‖Σyx/c − W‖₂) (the NTK
plus the residual term). A curve L(t) shifted by δ·t moves by at most δ·max_t|t·L'(t)|, hence
:func:`gd_flow_rtol`: (η r_max/2)(1 + η r_max)·max|t L'|/max|L| (the last factor covers the O(η²) terms), plus a
rounding floor of 1000 u of the training dtype. Measured on hierarchy inits it is 1.0–8× the actual gap. r_max is
the maximum over the log points of the bound on r, found without solving every point (:func:`_largest_rate`).

Training options (docs/theory.md §11). The modified flow is written for GD as the trainer runs it, in W: each layer
steps along F_l = m_l(α·G_l − γW_l), G_l the gradient of the loss of ŷ = α·W2W1x, so ẇ = F − (η/2)DF·F. The
tolerance takes the rate in the standard variables U_l = k_l·W_l, where GD is plain GD at step κ·η, plus the
decay's own rate γ·max_l m_l.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from lazyrich.device import DTYPE
from lazyrich.theory.base import Prediction, TaskStats, Theory
from lazyrich.theory.ode import as_numpy, numerical_prediction, solve_stacked
from lazyrich.theory.registry import register_theory
from lazyrich.train import TRAINING_OPTIONS, TrainOptions, lr_per_network

__all__ = ["DTYPE_FLOOR", "GDFlowTheory", "gd_flow_rtol", "modified_flow"]

DTYPE_FLOOR = 1000
"""Rounding floor of the agreement tolerance, in units u of the training dtype (float64: 2e-13, float32: 1e-4)."""


def _modified_rhs(sigma_xx: np.ndarray, sigma_yx: np.ndarray, half_eta: np.ndarray, n1: int, shapes,
                  options: tuple[np.ndarray, ...] | None = None):
    """ẇ = F − (η/2)DF·F for two layers, in closed form: F = (m1(αW2ᵀE − γW1), m2(αEW1ᵀ − γW2)) with
    E = Σyx − αW2W1Σxx, and along D = F: dE = −α(D2W1 + W2D1)Σxx, dF1 = m1(α(D2ᵀE + W2ᵀdE) − γD1),
    dF2 = m2(α(dE W1ᵀ + E D1ᵀ) − γD2). ``options`` = (m1, m2, α, γ), each (B, 1, 1); None: 1, 1, 1, 0."""
    m1, m2, alpha, decay = options if options is not None else (1.0, 1.0, 1.0, 0.0)

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        w1, w2 = y[:n1].reshape(shapes[0]), y[n1:].reshape(shapes[1])
        w2t = w2.transpose(0, 2, 1)
        err = sigma_yx - alpha * w2 @ w1 @ sigma_xx
        f1, f2 = m1 * (alpha * w2t @ err - decay * w1), m2 * (alpha * err @ w1.transpose(0, 2, 1) - decay * w2)
        d_err = -alpha * (f2 @ w1 + w2 @ f1) @ sigma_xx
        df1 = m1 * (alpha * (f2.transpose(0, 2, 1) @ err + w2t @ d_err) - decay * f1)
        df2 = m2 * (alpha * (d_err @ w1.transpose(0, 2, 1) + err @ f1.transpose(0, 2, 1)) - decay * f2)
        return np.concatenate([(f1 - half_eta * df1).ravel(), (f2 - half_eta * df2).ravel()])

    return rhs


def modified_flow(weights: Sequence[Tensor], sigma_xx: Tensor, sigma_yx: Tensor, lr: Tensor, t: Tensor, *,
                  rtol: float = 1e-10, atol: float = 1e-12, options: TrainOptions | None = None) -> list[Tensor]:
    """Trajectories [W1, W2 (B, T, out, in)] of ẇ = F − (η/2)DF·F from two layers [(B, out, in)], lr (B,), t (B, T);
    ``options``: the training options (layer rates, α, weight decay) GD runs with (None: plain GD)."""
    ws = [as_numpy(w) for w in weights]
    half_eta = (as_numpy(lr) / 2)[:, None, None]
    per_network = None
    if options is not None and options.active:
        batch = ws[0].shape[0]
        rates = as_numpy(options.rates(batch, 2))[:, :, None, None]
        per_network = (rates[:, 0], rates[:, 1], *(as_numpy(x)[:, None, None] for x in
                                                    (options.alpha(batch), options.decay(batch))))
    rhs = _modified_rhs(as_numpy(sigma_xx), as_numpy(sigma_yx), half_eta, ws[0].size, [w.shape for w in ws],
                        per_network)
    return solve_stacked(rhs, ws, t.detach().cpu().numpy(), weights[0].device, rtol=rtol, atol=atol,
                         what="modified-flow")


@register_theory("gd_flow")
class GDFlowTheory(Theory):
    """Any two-layer init, GD at the trainer's lr to O(lr²): the modified flow ẇ = f − (lr/2)Df·f (numerical)."""

    dynamics = "gd"
    exact = False
    modelled = frozenset(TRAINING_OPTIONS)  # written for GD as the trainer runs it, options included

    def __init__(self, lr: float | Sequence[float] | np.ndarray | Tensor | None = None, rtol: float = 1e-10,
                 atol: float = 1e-12) -> None:
        self.lr, self.rtol, self.atol = lr, float(rtol), float(atol)

    def _check(self, stats: TaskStats, weights: list[Tensor]) -> str | None:
        if len(weights) != 2:
            return f"gd_flow's modified flow is written for two layers, got L = {len(weights)}; use theory=ode."
        if self.lr is None:
            return ("gd_flow predicts gradient descent at a given step size: pass the trainer's learning rate, "
                    "get_theory('gd_flow', lr=…) (run_experiment does).")
        return None

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        lr = lr_per_network(self.lr, weights[0].shape[0]).to(t.device)
        traj = modified_flow(weights, stats.sigma_xx, stats.sigma_yx, lr, t, rtol=self.rtol, atol=self.atol,
                             options=self.training)
        extra = f", with {self.training.describe()}" if self.training.active else ""
        return numerical_prediction(stats, weights, traj, t, self.name,
                                    f"gd_flow: modified flow ẇ = f − (lr/2)Df·f at lr = {sorted(set(lr.tolist()))}, "
                                    f"GD to O(lr²){extra}", self.training)


def gd_flow_rtol(prediction: Prediction, stats: TaskStats, lr: Tensor | float, dtype: torch.dtype = DTYPE, *,
                 curve: str = "loss", options: TrainOptions | None = None, balanced: bool = False) -> Tensor:
    """Derived tolerance (B,) for max|C_GD − C_flow|/max|C_flow| of a two-layer flow prediction (module doc), C the
    curve ``curve`` of the prediction (``loss`` or ``test_loss``); ``options``: the training options it ran with.
    ``balanced``: the prediction's networks are λ-balanced in the standard variables (theory ``exact``), so the top
    eigenvalues of their two Grams differ by a constant (:func:`_balance_shift`)."""
    c = stats.whitening_scale or float(torch.linalg.eigvalsh(stats.sigma_xx)[-1])
    lr = torch.as_tensor(lr, dtype=DTYPE, device=prediction.t.device).reshape(-1)
    batch = prediction.t.shape[0]
    options = options or TrainOptions()
    kappa, k = (x.to(prediction.t) for x in options.standard(batch, 2))
    target = stats.sigma_yx @ torch.linalg.pinv(stats.sigma_xx)
    grams = (prediction.wwt_out * (k[:, 1] ** 2)[:, None, None, None],  # U's Grams: GD there is plain GD at κ·lr
             prediction.w1tw1 * (k[:, 0] ** 2)[:, None, None, None])
    rate = c * _largest_rate(*grams, target, prediction.product, balanced=balanced)
    decay = (options.decay(batch) * options.rates(batch, 2).amax(-1)).to(prediction.t)
    eta_r = lr * (kappa * rate + decay)
    t, values = prediction.t, getattr(prediction, curve)
    slope = torch.diff(values, dim=-1) / torch.diff(t, dim=-1).clamp_min(torch.finfo(DTYPE).tiny)
    shift = ((t[:, 1:] + t[:, :-1]) / 2 * slope).abs().amax(-1)
    scale = values.abs().amax(-1).clamp_min(torch.finfo(DTYPE).tiny)
    return eta_r / 2 * (1 + eta_r) * shift / scale + DTYPE_FLOOR * torch.finfo(dtype).eps


ANCHOR_EVERY = 10
""":func:`_largest_rate` solves the eigenproblems at every this-many log points first (and at the last)."""

ALIGN = 8
"""LAPACK's and BLAS's last bits depend on where a matrix sits in memory, modulo 64 bytes (8 float64 entries):
:func:`_solved` places the matrix of log point t where its network's own grid would."""


def _largest_rate(wwt_out: Tensor, w1tw1: Tensor, target: Tensor, product: Tensor, *, balanced: bool) -> Tensor:
    """max over t of r(t) = λ_max(W2W2ᵀ) + λ_max(W1ᵀW1) + ‖target − W2W1‖₂ per network (B,), from the Grams
    (B, T, ·, ·) and the product (B, T, No, Ni): the value that solving the eigenproblems at every log point gives.

    Each term moves by at most the Frobenius norm of its matrix's change (a top eigenvalue and a spectral norm are
    1-Lipschitz), so between two log points r changes by at most the sum of those norms, D. r is solved at the
    anchors (every :data:`ANCHOR_EVERY`-th point and the last) first; a point between two anchors lies below the
    bounds they give, r(anchor) + D along the way, and is solved only where a bound reaches the anchors' largest
    value (or is not finite). Every network's value is that of its own grid solved alone (:func:`_solved`).
    """
    (batch, n_t), device = w1tw1.shape[:2], w1tw1.device
    moved_in = torch.linalg.matrix_norm(torch.diff(w1tw1, dim=1))
    moved_out = moved_in if balanced else torch.linalg.matrix_norm(torch.diff(wwt_out, dim=1))
    step = moved_out + moved_in + torch.linalg.matrix_norm(torch.diff(product, dim=1))
    walked = torch.cat([step.new_zeros(batch, 1), step.cumsum(1)], 1)  # D from the first point to each
    anchors = torch.unique(torch.cat([torch.arange(0, n_t, ANCHOR_EVERY, device=device),
                                      torch.tensor([n_t - 1], device=device)]))
    n_out, n_in = product.shape[-2:]
    period = _period(n_in * n_in, n_out * n_out, n_out * n_in, min(n_out, n_in) ** 2)
    shift = _balance_shift(wwt_out, w1tw1, period) if balanced else None

    def rate_at(net: Tensor, point: Tensor) -> Tensor:
        return _rate_at(wwt_out[net, point], w1tw1[net, point], target, product[net, point],
                        None if shift is None else shift[net])

    rate = torch.full((batch, n_t), -torch.inf, dtype=w1tw1.dtype, device=device)
    net, point = (x.reshape(-1) for x in torch.meshgrid(torch.arange(batch, device=device), anchors, indexing="ij"))
    rate[net, point] = _solved(rate_at, net, point, period)
    best = rate[:, anchors].amax(-1, keepdim=True)
    below = torch.searchsorted(anchors, torch.arange(n_t, device=device), right=True) - 1  # anchor at or before
    lo, hi = anchors[below], anchors[(below + 1).clamp_max(len(anchors) - 1)]
    bound = torch.minimum(rate[:, lo] + (walked - walked[:, lo]), rate[:, hi] + (walked[:, hi] - walked))
    slack = 1e-9 * (best.abs() + walked[:, -1:])  # more than the bound's own rounding
    net, point = torch.nonzero(~(bound <= best - slack) & (rate == -torch.inf), as_tuple=True)
    if len(net):
        rate[net, point] = _solved(rate_at, net, point, period)
    return rate.amax(-1)


def _period(*sizes: int) -> int:
    """The least p such that batch positions k and k + p align alike for matrices of every one of ``sizes``
    (entries per matrix): 1 when each size is a multiple of :data:`ALIGN`."""
    return max(ALIGN // math.gcd(ALIGN, size) for size in sizes)


def _solved(solve: Callable[[Tensor, Tensor], Tensor], net: Tensor, point: Tensor, period: int) -> Tensor:
    """``solve(nets, points)`` of the (network, log point) pairs given, in their order, each pair solved at a batch
    position ≡ its point (mod ``period``, :func:`_period`), padded with copies of the first pair, so that its last
    bits are those of its network's whole grid solved alone, whatever else is solved beside it."""
    if period == 1:
        return solve(net, point)
    residue = point % period
    rank = torch.empty_like(point)
    for r in range(period):
        members = residue == r
        rank[members] = torch.arange(int(members.sum()), device=point.device)
    slot = rank * period + residue
    nets, points = net[:1].repeat(int(slot.max()) + 1), point[:1].repeat(int(slot.max()) + 1)
    nets[slot], points[slot] = net, point
    return solve(nets, points)[slot]


def _rate_at(wwt_out: Tensor, w1tw1: Tensor, target: Tensor, product: Tensor, shift: Tensor | None) -> Tensor:
    """r = λ_max(W2W2ᵀ) + λ_max(W1ᵀW1) + ‖target − W2W1‖₂ of a batch of matrices (K, ·, ·); ``shift`` (K,):
    λ_max(W2W2ᵀ) − λ_max(W1ᵀW1) of λ-balanced networks (:func:`_balance_shift`), None to solve both Grams."""
    inner = torch.linalg.eigvalsh(w1tw1)[..., -1]
    outer = torch.linalg.eigvalsh(wwt_out)[..., -1] if shift is None else inner + shift
    return outer + inner + _spectral_norm(target - product)


def _balance_shift(wwt_out: Tensor, w1tw1: Tensor, period: int) -> Tensor:
    """λ_max(W2W2ᵀ) − λ_max(W1ᵀW1) at the first log point (B,): for λ-balanced networks (W2ᵀW2 = W1W1ᵀ + λI, kept
    by the flow) a constant, since the nonzero spectra of W2W2ᵀ and W1ᵀW1 are those of W2ᵀW2 and W1W1ᵀ, which
    differ by λ; it agrees with the direct eigensolve to the rounding of the prediction's balance."""
    def solve(net: Tensor, point: Tensor) -> Tensor:
        return (torch.linalg.eigvalsh(wwt_out[net, point])[..., -1]
                - torch.linalg.eigvalsh(w1tw1[net, point])[..., -1])

    first = torch.arange(w1tw1.shape[0], device=w1tw1.device)
    return _solved(solve, first, torch.zeros_like(first), period)


def _spectral_norm(a: Tensor) -> Tensor:
    """‖a‖₂ over the last two axes, as √λ_max of the smaller Gram (a symmetric eigenproblem costs half an SVD)."""
    gram = a @ a.mT if a.shape[-2] <= a.shape[-1] else a.mT @ a
    return torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0).sqrt()
