"""Task-aligned nets as independent modes (docs/theory.md §5): read the modes off the weights, and rebuild weights.

A net is *mode-decoupled* when every layer acts on each task mode α through one hidden direction per level:
W_l r^{l−1}_α = a_{l,α} r^l_α and W_lᵀ r^l_α = a_{l,α} r^{l−1}_α, with r^0_α = ṽ_α, r^L_α = ũ_α and the r^l
orthonormal. Then the product is Ũ_m diag(Π_l a_l) Ṽ_mᵀ, each mode follows its own scalar flow, and the
differences a_{l+1}² − a_l² are conserved per mode (for a λ-balanced init they all equal λ_l). Whatever else
is in the weights (e.g. √λ padding of wider nets) is orthogonal to the modes and gradient flow never moves it;
weight decay only shrinks it, by e^{−γ m_l t} in layer l.

With training options (layer rates m_l, an output multiplier α, weight decay γ; :class:`lazyrich.train.TrainOptions`)
the modes stay decoupled and each obeys da_l/dt = m_l(α·Π_{k≠l}a_k·(σ − αcΠ_k a_k) − γa_l) (docs/theory.md §11):
:func:`integrate_layer_modes` integrates that for the mode theories under weight decay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lazyrich.device import DTYPE
from lazyrich.theory.base import Prediction, TaskStats, Theory, whitening_advice
from lazyrich.theory.ode import as_numpy, numerical_prediction, solve_stacked
from lazyrich.train import TRAINING_OPTIONS

__all__ = ["ALIGN_RTOL", "ModeTheory", "Modes", "extract_modes", "integrate_layer_modes", "layer_squares",
           "other_layers", "rebuild", "signed_layer_values", "task_modes"]

ALIGN_RTOL = 1e-8
"""Relative residual allowed in the mode structure: far above rounding, far below any real misalignment."""

_DEFINED_RTOL = 1e-10  # a hidden direction below this relative size is rounding noise, not a direction
_SNAP_RTOL = 1e-12  # offsets this close (relative to a_l²) are equal; λ = 0 measured from weights is ~1e-16


@dataclass
class Modes:
    """Modes of B nets: signed layer values ``a`` (B, L, m); directions ``r`` (B, n_l, m) for l = 0..L."""

    a: Tensor
    r: list[Tensor]

    @property
    def s(self) -> Tensor:
        """Signed singular values of the product in the task basis, (B, m)."""
        return self.a.prod(dim=1)

    def offsets(self) -> Tensor:
        """Conserved d_l = a_l² − min_k a_k² ≥ 0 per mode, (B, m, L), snapped to 0 within rounding."""
        sq = (self.a * self.a).transpose(1, 2)
        d = sq - sq.amin(-1, keepdim=True)
        return torch.where(d <= _SNAP_RTOL * sq.amax(-1, keepdim=True), torch.zeros_like(d), d)


def _fail(what: str, rel: Tensor, rtol: float) -> str | None:
    bad = (rel > rtol).nonzero().flatten().tolist()
    if not bad:
        return None
    return (f"the weights are not task-aligned: {what} is {float(rel[bad[0]]):.3g} (relative) > {rtol:g} for "
            f"network(s) {bad}. Aligned theories need each layer to act on the task modes Ũ, Ṽ one by one "
            f"(e.g. init.lambda_balanced(..., align_to=task.sigma_yx)); use theory=exact or ode instead.")


def extract_modes(weights: Sequence[Tensor], u_m: Tensor, v_m: Tensor,
                  rtol: float = ALIGN_RTOL) -> tuple[Modes | None, str | None]:
    """Modes of [W_l (B, out, in)] in the task basis u_m (No, m), v_m (Ni, m), or (None, reason)."""
    n_layers, batch = len(weights), weights[0].shape[0]
    tiny = torch.finfo(DTYPE).tiny
    norms = torch.stack([torch.linalg.matrix_norm(w, ord=2) for w in weights], dim=-1)  # (B, L)
    fwd = [v_m.expand(batch, -1, -1)]
    for w in weights:
        fwd.append(w @ fwd[-1])  # W_{l:1} Ṽ_m
    bwd = [u_m.expand(batch, -1, -1)]
    for w in reversed(weights):
        bwd.append(w.mT @ bwd[-1])
    bwd.reverse()  # W_{L:l+1}ᵀ Ũ_m
    r = [fwd[0]]
    for l in range(1, n_layers):
        nf, nb = fwd[l].norm(dim=-2), bwd[l].norm(dim=-2)  # (B, m)
        rf = nf / norms[:, :l].prod(-1, keepdim=True).clamp_min(tiny)
        rb = nb / norms[:, l:].prod(-1, keepdim=True).clamp_min(tiny)
        use_f = rf >= rb
        vec = torch.where(use_f[:, None], fwd[l] / nf.clamp_min(tiny)[:, None],
                          bwd[l] / nb.clamp_min(tiny)[:, None])
        r.append(vec * (torch.maximum(rf, rb) > _DEFINED_RTOL)[:, None])
    r.append(bwd[-1])
    a = torch.stack([torch.einsum("bim,bij,bjm->bm", r[l + 1], w, r[l]) for l, w in enumerate(weights)], 1)
    for l, w in enumerate(weights):
        scale = norms[:, l].clamp_min(tiny)
        res_in = (w @ r[l] - a[:, l, None, :] * r[l + 1]).norm(dim=-2).amax(-1) / scale
        res_out = (w.mT @ r[l + 1] - a[:, l, None, :] * r[l]).norm(dim=-2).amax(-1) / scale
        reason = _fail(f"layer {l + 1}'s action off the mode directions", res_in.maximum(res_out), rtol)
        if reason:
            return None, reason
    for l in range(1, n_layers):
        gram = r[l].mT @ r[l]
        target = torch.diag_embed((r[l].norm(dim=-2) > 0.5).to(DTYPE))
        overlap = (gram - target).abs().amax((-2, -1))
        reason = _fail(f"the overlap of hidden mode directions at level {l}", overlap, rtol)
        if reason:
            return None, reason
    product = weights[0]
    for w in weights[1:]:
        product = w @ product
    mode_part = u_m @ torch.diag_embed(a.prod(1)) @ v_m.mT
    rel = torch.linalg.matrix_norm(product - mode_part) / norms.prod(-1).clamp_min(tiny)
    reason = _fail("the product's part outside diag(Ũ_mᵀWṼ_m)", rel, rtol)
    return (None, reason) if reason else (Modes(a=a, r=r), None)


def task_modes(stats: TaskStats, weights: list[Tensor]) -> tuple[Modes | None, str | None]:
    """(modes, None) of mode-decoupled weights of any depth in the task basis, or (None, the reason they are not)."""
    if stats.whitening_scale is None:
        return None, whitening_advice(stats.sigma_xx)
    u, s, v = stats.svd
    m = s.shape[0]
    return extract_modes(weights, u[:, :m], v[:, :m])


def layer_squares(s_abs: Tensor, offsets: Tensor) -> Tensor:
    """Layer values a_l² = y + d_l (…, 2) of two-layer modes with a_1²a_2² = s², from |s| (…) and offsets d (…, 2),
    min d = 0, in closed form (deeper modes: :func:`lazyrich.theory.deep.integrate_modes` carries them itself)."""
    if offsets.shape[-1] != 2:
        raise ValueError(f"layer_squares is the two-layer closed form, got L = {offsets.shape[-1]} layers.")
    s_abs, _ = torch.broadcast_tensors(s_abs, offsets[..., 0])
    d = offsets.expand(*s_abs.shape, 2)
    gap = d.sum(-1)  # = |λ|, one of the two offsets is 0
    root = torch.hypot(gap, 2 * s_abs)
    y = torch.where(root > 0, 2 * s_abs * s_abs / torch.where(root > 0, root + gap, 1.0), 0.0)
    return y[..., None] + d


def signed_layer_values(squares: Tensor, s: Tensor, offsets: Tensor, a0: Tensor) -> Tensor:
    """Signed a_l (…, L) from a_l² (…, L), the signed product s (…) and the initial signed values a0 (…, L).

    Only the layer with the unique smallest offset can pass through zero; it takes the sign that makes
    Π a_l = s. All others keep their initial sign (with ties no layer can reach zero: the mode stalls).
    """
    sign0 = torch.sign(a0).expand_as(squares)
    d = offsets.expand_as(squares)
    star = d.argmin(-1, keepdim=True)
    zeros = (d == 0).sum(-1, keepdim=True)
    others = torch.where(torch.arange(d.shape[-1], device=d.device) == star, torch.ones_like(sign0), sign0)
    star_sign = torch.sign(s)[..., None] * others.prod(-1, keepdim=True)
    is_star = torch.arange(d.shape[-1], device=d.device) == star
    sign = torch.where(is_star & (zeros == 1), star_sign, sign0)
    return sign * squares.sqrt()


def rebuild(weights0: Sequence[Tensor], modes: Modes, a_t: Tensor, rest: Tensor | None = None) -> list[Tensor]:
    """W_l(t) = W_l(0) + Σ_α (a_{l,α}(t) − a_{l,α}(0)) r^l_α r^{l−1}_αᵀ, a_t (B,T,L,m) → [(B,T,out,in)].

    ``rest`` (B, T, L): the factor by which the part of W_l outside the modes has shrunk (weight decay), 1 if None.
    """
    out = []
    for l, w in enumerate(weights0):
        factor = None if rest is None else rest[:, :, l]
        a0 = modes.a[:, None, l, :]
        delta = a_t[:, :, l, :] - (a0 if factor is None else factor[..., None] * a0)
        kept = w[:, None] if factor is None else factor[..., None, None] * w[:, None]
        out.append(kept + torch.einsum("bim,btm,bjm->btij", modes.r[l + 1], delta, modes.r[l]))
    return out


def other_layers(a: Tensor, dim: int) -> Tensor:
    """Π_{k≠l} a_k along ``dim`` for every l, without dividing (an a_l may be 0): prefix times suffix products."""
    ones = torch.ones_like(a.narrow(dim, 0, 1))
    before = torch.cumprod(torch.cat([ones, a.narrow(dim, 0, a.shape[dim] - 1)], dim), dim)
    flipped = a.flip(dim)
    after = torch.cumprod(torch.cat([ones, flipped.narrow(dim, 0, a.shape[dim] - 1)], dim), dim).flip(dim)
    return before * after


def integrate_layer_modes(a0: Tensor, sigma: Tensor, c: float, rates: Tensor, alpha: Tensor, decay: Tensor,
                          t: Tensor, tau: float = 1.0, *, rtol: float = 1e-12, atol: float = 1e-14) -> Tensor:
    """Layer values a (B, T, L, m) from a0 (B, L, m) on the grids t (B, T) of the per-mode flow with training
    options: τ da_l/dt = m_l(α·Π_{k≠l}a_k·(σ − αcΠ_k a_k) − γa_l), with ``sigma`` (m,) Σyx's singular values, c the
    whitening scale, ``rates`` m (B, L), ``alpha`` (B,) and ``decay`` γ (B,). One DOP853 solve for the batch."""
    batch, n_layers, m = a0.shape
    sig, m_l = as_numpy(sigma), as_numpy(rates)[:, :, None]
    al, ga = as_numpy(alpha)[:, None, None], as_numpy(decay)[:, None, None]

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        a = torch.from_numpy(y.reshape(batch, n_layers, m))
        err = sig - al * c * a.prod(1, keepdim=True).numpy()
        return (m_l * (al * err * other_layers(a, 1).numpy() - ga * a.numpy()) / tau).ravel()

    (states,) = solve_stacked(rhs, [as_numpy(a0)], t.detach().cpu().numpy(), a0.device, rtol=rtol, atol=atol,
                              what="mode")
    return states


class ModeTheory(Theory):
    """A theory of mode-decoupled nets: it applies exactly when :meth:`_modes` finds the nets' modes.

    It models every training option: layer rates and α through the change of variables (``rescaled``), weight
    decay by integrating each mode's layer values (:meth:`_decayed`)."""

    modelled = frozenset(TRAINING_OPTIONS)
    rescaled = True
    tau: float = 1.0

    def _modes(self, stats: TaskStats, weights: list[Tensor]) -> tuple[Modes | None, str | None]:
        """(the nets' modes, None), or (None, why the theory does not apply)."""
        raise NotImplementedError

    def _check(self, stats: TaskStats, weights: list[Tensor]) -> str | None:
        return self._modes(stats, weights)[1]

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        """:meth:`_decayed` under weight decay, else :meth:`_flow` (the plain flow, or U's: ``rescaled``)."""
        return self._decayed(stats, weights, t) if self.training.weight_decay is not None else \
            self._flow(stats, weights, t)

    def _flow(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        """The prediction of the plain flow (the mode theory's own solution)."""
        raise NotImplementedError

    def _decayed(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        """The prediction under weight decay (with any layer rates and α), integrated per mode in the weights W:
        :func:`integrate_layer_modes`, the rest of each layer shrinking by e^{−γ m_l t}."""
        modes, _ = self._modes(stats, weights)
        batch, n_layers = weights[0].shape[0], len(weights)
        options = self.training
        rates, alpha, decay = (x.to(t) for x in (options.rates(batch, n_layers), options.alpha(batch),
                                                  options.decay(batch)))
        a_t = integrate_layer_modes(modes.a, stats.svd[1], stats.whitening_scale, rates, alpha, decay, t, self.tau)
        rest = torch.exp(-(decay[:, None] * rates)[:, None, :] * t[..., None] / self.tau)
        traj = rebuild(weights, modes, a_t, rest)
        note = (f"{self.name}: {options.describe()}: per-mode flow τ da_l/dt = m_l(α·Π_(k≠l) a_k·(σ − αcΠa) − γa_l) "
                f"integrated by DOP853 (docs/theory.md §11); λ(t) = λ(0)·e^(−2γmt) for equal layer rates m")
        return numerical_prediction(stats, weights, traj, t, self.name, note, options)
