"""What we measure, as pure functions of weights and data statistics.

Shapes: weights are [W1, …, WL], each (…, out, in) with any leading batch axes; X is (P, Ni), one sample per row;
x_gram = XᵀX (Ni, Ni). The NTK is output-major (index o·P + p) and, for linear nets (docs/theory.md §6),

    K = Σ_l A_l ⊗ (X G_l Xᵀ),   A_l = W_{L:l+1}W_{L:l+1}ᵀ (No×No),   G_l = W_{l−1:1}ᵀW_{l−1:1} (Ni×Ni).

The trainer only ever needs traces of K, so it keeps the list of (A_l, G_l) "blocks" and uses
⟨A⊗B, C⊗D⟩_F = ⟨A,C⟩_F⟨B,D⟩_F with tr(X G Xᵀ X G' Xᵀ) = tr(G C G' C): cost O(L²(No³ + Ni³)) per network,
independent of P, instead of O((No·P)²) for the kernel itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

Blocks = list[tuple[Tensor, Tensor]]

__all__ = [
    "fastest_rate",
    "loss_floor",
    "backward_transfer",
    "balance_drift",
    "balance_reference",
    "imbalances",
    "balance_law_gap",
    "forgetting",
    "gaussian_balance",
    "gaussian_balance_moments",
    "generalisation_score",
    "loss_matrix",
    "predicted_generalisation",
    "time_to_threshold",
    "kernel_change",
    "two_layer_kernel_change",
    "kernel_distance",
    "kernel_inner",
    "layer_norms",
    "linear_ntk",
    "expected_noise_costs",
    "noise_costs",
    "ntk_from_blocks",
    "representation_similarity",
    "least_squares_optimum",
    "loss_from_product",
    "ntk_blocks",
    "product",
    "task_losses",
    "task_svals",
    "two_layer_ntk",
    "two_layer_ntk_blocks",
    "zero_kernel_convention",
]


def product(weights: Sequence[Tensor]) -> Tensor:
    """Network function W = W_L ⋯ W_1, shape (…, No, Ni)."""
    out = weights[0]
    for w in weights[1:]:
        out = w @ out
    return out


def least_squares_optimum(sigma_xx: Tensor, sigma_yx: Tensor, sigma_yy: Tensor, x: Tensor | None = None,
                          y: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The best linear map W* = Σyx Σxx⁺ (No, Ni) and the loss it leaves, L_min = ½(tr Σyy − tr W*ΣxxW*ᵀ).

    With the data X (P, Ni), Y (P, No), L_min is taken from the residual itself, 1/(2P)‖XW*ᵀ − Y‖², which is
    exactly zero-ish for a realisable task instead of a rounding-level difference of two O(1) traces.
    """
    w_star = sigma_yx @ torch.linalg.pinv(sigma_xx)
    if x is not None and y is not None:
        l_min = 0.5 * torch.sum((x @ w_star.mT - y) ** 2) / x.shape[0]
    else:
        l_min = 0.5 * (torch.trace(sigma_yy) - torch.sum((w_star @ sigma_xx) * w_star)).clamp_min(0.0)
    return w_star, l_min


def fastest_rate(weights: Sequence[Tensor], sigma_xx: Tensor) -> Tensor:
    """The fastest rate of gradient flow at these weights, per network (B,): an upper bound on the top eigenvalue
    of the loss curvature, Σ_l ‖W_{L:l+1}‖₂² ‖W_{l−1:1}‖₂² · ‖Σxx‖₂ (the NTK blocks' spectral norms times the
    input covariance's). GD follows the flow only while lr × this rate ≪ 1; for two layers near a λ-balanced
    solution it is about max(|λ|, s̃₁), for deep nets it grows with the product of the layer scales."""
    norm = torch.linalg.matrix_norm(sigma_xx.to(weights[0]), ord=2)
    return sum(_spectral(a) * _spectral(g) for a, g in ntk_blocks(weights)) * norm


def _spectral(gram: Tensor) -> Tensor:
    """The largest eigenvalue of a symmetric PSD (…, n, n) matrix (…): its spectral norm."""
    return torch.linalg.eigvalsh(gram)[..., -1]


def loss_floor(sigma_xx: Tensor, sigma_yx: Tensor, sigma_yy: Tensor, rank: int | None = None) -> Tensor:
    """The lowest loss a linear map of rank ≤ ``rank`` (None: any rank) reaches on a task, () float64.

    With M = Σyx Σxx^{-1/2} (pseudo-inverse square root), the loss is ½‖W Σxx^{1/2} − M‖² + ½(tr Σyy − ‖M‖²), so
    the best rank-r map keeps M's r largest singular values (Eckart–Young) and leaves
    ½(tr Σyy − Σ_{i ≤ r} σ_i(M)²). Clamped at 0 (a realisable task's floor is rounding).
    """
    evals, evecs = torch.linalg.eigh(sigma_xx)
    keep = evals > evals.amax().clamp_min(1e-300) * sigma_xx.shape[-1] * torch.finfo(evals.dtype).eps
    inv_sqrt = (evecs * torch.where(keep, evals.clamp_min(1e-300).rsqrt(), torch.zeros_like(evals))) @ evecs.mT
    s = torch.linalg.svdvals(sigma_yx @ inv_sqrt)
    kept = s if rank is None else s[: max(int(rank), 0)]
    return (0.5 * (torch.trace(sigma_yy) - torch.sum(kept**2))).clamp_min(0.0)


def loss_from_product(w: Tensor, sigma_xx: Tensor, sigma_yx: Tensor, sigma_yy: Tensor, *,
                      optimum: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Loss 1/(2P)‖W Xᵀ − Yᵀ‖² of a linear map W (…, No, Ni) from the data statistics, shape (…).

    Written as ½tr(E Σxx Eᵀ) + L_min with E = W − W*: no cancellation between large terms, so the curve stays
    accurate down to the rounding floor of L_min even when the loss goes to zero. Pass ``optimum`` (from
    :func:`least_squares_optimum`) to skip the pseudo-inverse in a loop.
    """
    w_star, l_min = optimum if optimum is not None else least_squares_optimum(sigma_xx, sigma_yx, sigma_yy)
    err = w - w_star
    return 0.5 * torch.sum((err @ sigma_xx) * err, dim=(-2, -1)) + l_min


def task_svals(w: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Signed singular values of W (…, No, Ni) in the task basis: diag(Ũ_mᵀ W Ṽ_m), shape (…, m).

    ``u`` (No, ≥m) and ``v`` (Ni, ≥m) are the task's singular vectors; only the first m columns are used.
    """
    m = min(w.shape[-2], w.shape[-1])
    return torch.einsum("om,...oi,im->...m", u[:, :m], w, v[:, :m])


def layer_norms(weights: Sequence[Tensor]) -> Tensor:
    """Frobenius norm of each layer, shape (…, L)."""
    return torch.stack([torch.linalg.matrix_norm(w) for w in weights], dim=-1)


def balance_drift(weights: Sequence[Tensor], init_weights: Sequence[Tensor],
                  reference: Sequence[tuple] | None = None,
                  imbalance: Sequence[Tensor | None] | None = None) -> Tensor:
    """Relative drift of each pair's conserved quantity D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ since init, (…, L−1).

    ‖D_l(t) − D_l(0)‖_F / (‖W_{l+1}ᵀW_{l+1}‖_F + ‖W_lW_lᵀ‖_F) at init: gradient flow conserves D_l exactly,
    so this is a direct measure of discretisation error, relative to the size of the terms it is made of.
    A hidden layer wider than 2(in + out) of its pair is never formed (n × n): the change is read in the row
    space of [W_lᵀ; W_{l+1}; W_l(0)ᵀ; W_{l+1}(0)] (:func:`lazyrich.init.signed_gram_form`), equal to rounding.
    ``reference`` (:func:`balance_reference` of ``init_weights``) and ``imbalance`` (the D_l(t) already formed,
    :func:`imbalances`) save recomputing what a loop over log points shares; the values are the same bits.
    """
    from lazyrich.init import signed_gram_form  # local: init imports nothing from here

    reference = balance_reference(init_weights) if reference is None else reference
    drifts = []
    for l, (lo, hi) in enumerate(zip(weights[:-1], weights[1:], strict=True)):
        ref, scale = reference[l]
        if _narrow_pair(lo, hi):
            d = imbalance[l] if imbalance is not None and imbalance[l] is not None else hi.mT @ hi - lo @ lo.mT
            delta = torch.linalg.matrix_norm(d - ref)
        else:
            from lazyrich.init import pair_rows

            rows, signs = pair_rows(lo, hi)
            rows, rows0 = torch.broadcast_tensors(rows, ref)
            delta = torch.linalg.matrix_norm(signed_gram_form(torch.cat([rows, rows0], -2),
                                                              torch.cat([signs, -signs])))
        drifts.append(delta / scale.clamp_min(torch.finfo(scale.dtype).tiny))
    return torch.stack(drifts, dim=-1)


def _narrow_pair(lo: Tensor, hi: Tensor) -> bool:
    """Whether the pair's n × n imbalance is formed (n ≤ 2(in + out)) rather than read in its rows' space."""
    return lo.shape[-2] <= 2 * (lo.shape[-1] + hi.shape[-2])


def balance_reference(init_weights: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """Per pair of ``init_weights``: (D_l(0), or the rows [W_lᵀ; W_{l+1}] of a wide pair; the drift's scale
    ‖W_{l+1}ᵀW_{l+1}‖_F + ‖W_lW_lᵀ‖_F): what :func:`balance_drift` compares with at every log point."""
    from lazyrich.init import pair_rows  # local: init imports nothing from here

    out = []
    for lo0, hi0 in zip(init_weights[:-1], init_weights[1:], strict=True):
        if _narrow_pair(lo0, hi0):
            hi_gram0, lo_gram0 = hi0.mT @ hi0, lo0 @ lo0.mT
            out.append((hi_gram0 - lo_gram0,
                        torch.linalg.matrix_norm(hi_gram0) + torch.linalg.matrix_norm(lo_gram0)))
        else:
            out.append((pair_rows(lo0, hi0)[0],
                        torch.linalg.matrix_norm(hi0 @ hi0.mT) + torch.linalg.matrix_norm(lo0.mT @ lo0)))
    return out


def imbalances(weights: Sequence[Tensor]) -> list[Tensor | None]:
    """D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ (…, n, n) of every pair whose n × n matrix :func:`balance_drift` forms,
    None for a wide pair: formed once for :func:`lazyrich.init.balance` and :func:`balance_drift` both."""
    return [hi.mT @ hi - lo @ lo.mT if _narrow_pair(lo, hi) else None
            for lo, hi in zip(weights[:-1], weights[1:], strict=True)]


def balance_law_gap(t: Tensor, lam_hat: Tensor, decay: Tensor, size: Tensor) -> Tensor:
    """max_t |λ̂(t) − λ̂(0)·e^{−2·decay·t}| / size, per network (B,): how far a measured balance λ̂ (B, T) on the
    grid t (B, T) strays from the law of gradient flow with weight decay (decay (B,) = γ·m, the decay rate of each
    layer; 0 without decay: the conservation law), relative to ``size`` (B,), the size of the terms λ̂ is made of.
    Log points where λ̂ is NaN (a diverged network) are skipped; none left gives NaN."""
    law = lam_hat[:, :1] * torch.exp(-2 * decay.to(lam_hat)[:, None] * t.to(lam_hat))
    gap = (lam_hat - law).abs()
    worst = torch.where(gap.isnan(), torch.zeros_like(gap), gap).amax(-1)
    worst = torch.where(gap.isnan().all(-1), torch.full_like(worst, float("nan")), worst)
    return worst / size.to(lam_hat).clamp_min(torch.finfo(lam_hat.dtype).tiny)


def ntk_blocks(weights: Sequence[Tensor]) -> Blocks:
    """The NTK of a linear net as [(A_l, G_l)] for l = 1..L (see module docstring)."""
    n_in, n_out = weights[0].shape[-1], weights[-1].shape[-2]
    like = weights[0]
    eye_in = torch.eye(n_in, dtype=like.dtype, device=like.device)
    eye_out = torch.eye(n_out, dtype=like.dtype, device=like.device)
    prefixes = [None]  # W_{l-1:1}; None stands for the identity
    for w in weights[:-1]:
        prefixes.append(w if prefixes[-1] is None else w @ prefixes[-1])
    suffixes = [None]  # W_{L:l+1}, built from the top
    for w in reversed(weights[1:]):
        suffixes.append(w if suffixes[-1] is None else suffixes[-1] @ w)
    suffixes.reverse()
    blocks = []
    for pre, suf in zip(prefixes, suffixes, strict=True):
        a = eye_out if suf is None else suf @ suf.mT
        g = eye_in if pre is None else pre.mT @ pre
        blocks.append((a, g))
    return blocks


def two_layer_ntk_blocks(w1tw1: Tensor, wwt_out: Tensor) -> Blocks:
    """NTK blocks of a two-layer linear net from its Gram matrices W1ᵀW1 (…, Ni, Ni) and W2W2ᵀ (…, No, No)."""
    eye_in = torch.eye(w1tw1.shape[-1], dtype=w1tw1.dtype, device=w1tw1.device)
    eye_out = torch.eye(wwt_out.shape[-1], dtype=wwt_out.dtype, device=wwt_out.device)
    return [(wwt_out, eye_in), (eye_out, w1tw1)]


class _Inner:
    """The sums ⟨A1, A2⟩ and tr(G1 C G2 C) of :func:`kernel_inner`, each formed once per pair of tensors however
    many inner products ask for it: the same expressions on the same tensors, so the same bits."""

    def __init__(self, x_gram: Tensor) -> None:
        self.x_gram = x_gram
        self.memo: dict[tuple, Tensor] = {}
        self.kept: list[Tensor] = []  # the tensors keyed by id stay alive, so no id is reused meanwhile

    def _get(self, key: tuple, make) -> Tensor:
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def h(self, g: Tensor) -> Tensor:
        self.kept.append(g)
        return self._get(("h", id(g)), lambda: g @ self.x_gram)

    def a_sum(self, a1: Tensor, a2: Tensor) -> Tensor:
        self.kept += [a1, a2]  # a1 * a2 and a2 * a1 are the same products: one key for both orders
        return self._get(("a", *sorted((id(a1), id(a2)))), lambda: torch.sum(a1 * a2, dim=(-2, -1)))

    def h_sum(self, g1: Tensor, g2: Tensor) -> Tensor:
        return self._get(("g", id(g1), id(g2)), lambda: torch.sum(self.h(g1) * self.h(g2).mT, dim=(-2, -1)))

    def inner(self, blocks1: Blocks, blocks2: Blocks) -> Tensor:
        total = None
        for a1, g1 in blocks1:
            for a2, g2 in blocks2:
                term = self.a_sum(a1, a2) * self.h_sum(g1, g2)
                total = term if total is None else total + term
        return total


def kernel_inner(blocks1: Blocks, blocks2: Blocks, x_gram: Tensor) -> Tensor:
    """Frobenius inner product ⟨K1, K2⟩ of two kernels given as blocks, shape (…)."""
    return _Inner(x_gram).inner(blocks1, blocks2)


def _same_shared(x: Tensor, y: Tensor) -> bool:
    """Whether x and y are one shared (unbatched) matrix with equal entries, e.g. the identity block of both NTKs:
    their difference is exactly zero, and so is every term it enters (a term 0·s adds nothing to a sum)."""
    return x.dim() == 2 and y.dim() == 2 and (x is y or torch.equal(x, y))


def kernel_change(blocks0: Blocks, blocks_t: Blocks, x_gram: Tensor) -> tuple[Tensor, Tensor]:
    """Kernel distance S = 1 − ⟨K0,Kt⟩/(‖K0‖‖Kt‖) and relative change ‖Kt − K0‖/‖K0‖, each (…).

    Kt − K0 is expanded as Σ_l [(A_l^t − A_l^0) ⊗ B_l^t + A_l^0 ⊗ (B_l^t − B_l^0)], whose terms are small when
    the kernel barely moves, so neither figure loses precision to cancellation in the lazy regime.
    A zero kernel (e.g. a zero init) has no direction: see :func:`zero_kernel_convention` for the values then.

    Cost: a term of ΔK whose factor is an unchanged shared block (the identity ends of the chain) is exactly zero
    and left out, and every pair sum is formed once (:class:`_Inner`); the figures are those of the full
    expansion, bit for bit, for finite weights.
    """
    delta = []
    for (a0, g0), (at, gt) in zip(blocks0, blocks_t, strict=True):
        delta += [] if _same_shared(a0, at) else [(at - a0, gt)]
        delta += [] if _same_shared(g0, gt) else [(a0, gt - g0)]
    sums = _Inner(x_gram)
    n0 = sums.inner(blocks0, blocks0).clamp_min(0).sqrt()
    nt = sums.inner(blocks_t, blocks_t).clamp_min(0).sqrt()
    if not delta:  # nothing moved: every term of ΔK is zero
        delta = [(torch.zeros_like(blocks0[0][0]), blocks0[0][1])]
    d_sq = sums.inner(delta, delta).clamp_min(0)
    # nt − n0 = (nt² − n0²)/(nt + n0) with nt² − n0² = ⟨ΔK, K0 + Kt⟩.
    dn = sums.inner(delta, list(blocks0) + list(blocks_t)) / (nt + n0)
    distance = ((d_sq - dn * dn) / (2 * n0 * nt)).clamp(0.0, 2.0)
    return zero_kernel_convention(distance, d_sq.sqrt() / n0, n0, nt)


def zero_kernel_convention(distance: Tensor, rel: Tensor, n0: Tensor, nt: Tensor) -> tuple[Tensor, Tensor]:
    """Kernel distance and relative change where ‖K0‖ or ‖Kt‖ is 0, where the cosine is undefined (0/0).

    Defined as: a zero kernel shares no direction with any kernel, so S = 1 when exactly one of K0, Kt is zero
    and S = 0 when both are (nothing moved); ‖Kt − K0‖/‖K0‖ is +inf from K0 = 0 to Kt ≠ 0 and 0 when both are 0.
    A zero init (W = 0, a saddle of every linear net) therefore records S = 0 while it stays there.
    """
    zero0, zerot = n0 == 0, nt == 0
    one = torch.ones_like(distance)
    distance = torch.where(zero0 | zerot, torch.where(zero0 & zerot, 0 * one, one), distance)
    rel = torch.where(zero0, torch.where(zerot, 0 * one, torch.full_like(rel, float("inf"))), rel)
    return distance, rel


def _frob(a: Tensor, b: Tensor) -> Tensor:
    """⟨a, b⟩_F over the last two axes, broadcasting the leading ones."""
    return torch.einsum("...ij,...ij->...", a, b)


def _trace(a: Tensor) -> Tensor:
    return torch.diagonal(a, dim1=-2, dim2=-1).sum(-1)


def _two_layer_inner(a1: Tensor, g1: Tensor, a2: Tensor, g2: Tensor, x_gram: Tensor,
                     scale: float | None) -> Tensor:
    """⟨K1, K2⟩_F of two-layer kernels K = A ⊗ XXᵀ + I ⊗ XGXᵀ (C = XᵀX = ``x_gram``, A and G symmetric).

    The four block pairs of :func:`kernel_inner`: ⟨A1,A2⟩⟨C,C⟩ + tr A1·⟨C², G2⟩ + tr A2·⟨C², G1⟩
    + No·tr(G1 C G2 C); with C = c·I (``scale`` = c) that is c²(Ni⟨A1,A2⟩ + tr A1 tr G2 + tr A2 tr G1
    + No⟨G1,G2⟩), with no matrix product at all.
    """
    n_out = a1.shape[-1]
    if scale is not None:
        return scale * scale * (_frob(a1, a2) * x_gram.shape[-1] + _trace(a1) * _trace(g2)
                                + _trace(a2) * _trace(g1) + n_out * _frob(g1, g2))
    c_sq = (x_gram @ x_gram).flatten()  # ⟨C², G⟩ as one matrix-vector product per G
    return (_frob(a1, a2) * float(torch.sum(x_gram * x_gram)) + _trace(a1) * (g2.flatten(-2) @ c_sq)
            + _trace(a2) * (g1.flatten(-2) @ c_sq) + n_out * _frob(g1 @ x_gram, x_gram @ g2))


def two_layer_kernel_change(wwt_out0: Tensor, w1tw1_0: Tensor, wwt_out: Tensor, w1tw1: Tensor,
                            x_gram: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`kernel_change` for two-layer nets from their Grams W2W2ᵀ (…, No, No) and W1ᵀW1 (…, Ni, Ni).

    The same two figures, as free of cancellation (ΔK is formed from ΔA = A_t − A_0 and ΔG = G_t − G_0, and
    ⟨ΔK, K0 + Kt⟩ as 2⟨ΔK, K0⟩ + ‖ΔK‖²), in a dozen reductions per network and time instead of the forty
    block pairs of the general form: the theories evaluate it on every point of a (B, T) grid.
    """
    c = float(x_gram[0, 0])
    eye = torch.eye(x_gram.shape[-1], dtype=x_gram.dtype, device=x_gram.device)
    scale = c if torch.equal(x_gram, c * eye) else None
    d_a, d_g = wwt_out - wwt_out0, w1tw1 - w1tw1_0
    n0 = _two_layer_inner(wwt_out0, w1tw1_0, wwt_out0, w1tw1_0, x_gram, scale).clamp_min(0).sqrt()
    nt = _two_layer_inner(wwt_out, w1tw1, wwt_out, w1tw1, x_gram, scale).clamp_min(0).sqrt()
    d_sq = _two_layer_inner(d_a, d_g, d_a, d_g, x_gram, scale).clamp_min(0)
    dn = (2 * _two_layer_inner(d_a, d_g, wwt_out0, w1tw1_0, x_gram, scale) + d_sq) / (nt + n0)
    distance = ((d_sq - dn * dn) / (2 * n0 * nt)).clamp(0.0, 2.0)
    return zero_kernel_convention(distance, d_sq.sqrt() / n0, n0, nt)


def linear_ntk(weights: Sequence[Tensor], x: Tensor) -> Tensor:
    """The full NTK of a linear net, (…, No·P, No·P), output-major (index o·P + p). For tests and small P."""
    return ntk_from_blocks(ntk_blocks(weights), x)


def kernel_distance(k0: Tensor, k1: Tensor) -> Tensor:
    """Kernel distance 1 − ⟨K0,K1⟩_F/(‖K0‖_F‖K1‖_F) between full kernels (…, n, n) (Fort et al. 2020).

    Zero kernels follow :func:`zero_kernel_convention`."""
    inner = torch.sum(k0 * k1, dim=(-2, -1))
    n0, n1 = torch.linalg.matrix_norm(k0), torch.linalg.matrix_norm(k1)
    return zero_kernel_convention(1.0 - inner / (n0 * n1), n0, n0, n1)[0]


def snapshot(weights: Sequence[Tensor], init_weights: Sequence[Tensor], init_blocks: Blocks | None,
             sigma_xx: Tensor, sigma_yx: Tensor, sigma_yy: Tensor, task_u: Tensor, task_v: Tensor, *,
             optimum: tuple[Tensor, Tensor] | None = None, loss: Tensor | None = None,
             with_matrices: bool = True, heldout: tuple | None = None, test_loss: Tensor | None = None,
             reference: Sequence[tuple] | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Every metric the trainer records, for a batch of linear nets (weights (B, out, in)).

    Returns (scalars, matrices): scalars maps stable names to (B,) tensors — ``loss``, ``test_loss`` (with
    ``heldout`` = (Σxx*, Σyx*, Σyy*, its least-squares optimum), the held-out statistics), ``kernel_distance``,
    ``ntk_rel_change``, ``sval_k`` (k = 1..m), ``lam_hat_l``, ``balance_dev_l``, ``balance_drift_l`` (pairs
    l = 1..L−1) and ``norm_Wl``; matrices maps ``product`` (B, No, Ni), ``w1tw1`` (B, Ni, Ni) and ``wwt_out``
    (B, No, No). ``init_blocks=None`` (nonlinear nets) leaves the NTK figures NaN; ``loss`` and ``test_loss``
    override the linear-map losses; ``reference`` is :func:`balance_reference` of ``init_weights`` (computed here
    when None).
    """
    from lazyrich.init import balance  # local: init imports nothing from here, keep the graph one-way

    w = product(weights)
    if loss is None:
        loss = loss_from_product(w, sigma_xx, sigma_yx, sigma_yy, optimum=optimum)
    scalars: dict[str, Tensor] = {"loss": loss}
    if test_loss is None and heldout is not None:
        test_loss = loss_from_product(w, *heldout[:3], optimum=heldout[3])
    if test_loss is not None:
        scalars["test_loss"] = test_loss
    if init_blocks is not None:
        x_gram = sigma_xx * 1.0  # kernel distance and relative change are invariant to the scale P
        dist, rel = kernel_change(init_blocks, ntk_blocks(weights), x_gram)
    else:
        dist = rel = torch.full_like(loss, float("nan"))
    scalars["kernel_distance"], scalars["ntk_rel_change"] = dist, rel
    for k, s in enumerate(task_svals(w, task_u, task_v).unbind(-1), start=1):
        scalars[f"sval_{k}"] = s
    pairs = imbalances(weights)
    lam, dev = balance(weights, pairs)
    drift = balance_drift(weights, init_weights, reference, pairs)
    for l in range(len(weights) - 1):
        scalars[f"lam_hat_{l + 1}"] = lam[..., l]
        scalars[f"balance_dev_{l + 1}"] = dev[..., l]
        scalars[f"balance_drift_{l + 1}"] = drift[..., l]
    for l, n in enumerate(layer_norms(weights).unbind(-1), start=1):
        scalars[f"norm_W{l}"] = n
    matrices: dict[str, Tensor] = {}
    if with_matrices:
        matrices = {"product": w, "w1tw1": weights[0].mT @ weights[0], "wwt_out": weights[-1] @ weights[-1].mT}
    return scalars, matrices


# --- Continual and transfer metrics. Losses, not accuracies: lower is better everywhere below. -------------


def loss_matrix(weights_after: Sequence[Sequence[Tensor]], tasks: Sequence) -> Tensor:
    """R (…, K, K) with R[i, j] = loss on task i after training phase j, for K phases of linear nets.

    ``weights_after[j]`` is [W1, …, WL] at the end of phase j; ``tasks[i]`` has sigma_xx, sigma_yx, sigma_yy.
    """
    rows = []
    for task in tasks:
        row = []
        for ws in weights_after:
            dev = ws[0].device
            row.append(loss_from_product(product(ws), task.sigma_xx.to(dev), task.sigma_yx.to(dev),
                                         task.sigma_yy.to(dev)))
        rows.append(torch.stack(row, -1))
    return torch.stack(rows, -2)


def forgetting(r: Tensor) -> Tensor:
    """Forgetting of each earlier task, (…, K−1): F_i = R[i, K−1] − R[i, i].

    Positive means the loss on task i rose between just after learning it and the end of the sequence.
    """
    k = r.shape[-1]
    idx = torch.arange(k - 1, device=r.device)
    return r[..., idx, k - 1] - r[..., idx, idx]


def backward_transfer(r: Tensor) -> Tensor:
    """Backward transfer (…): BWT = mean_{i<K−1} (R[i, i] − R[i, K−1]) = −mean forgetting.

    The sign follows Lopez-Paz & Ranzato (2017) with −loss in place of accuracy: negative BWT is forgetting,
    positive BWT means later tasks helped earlier ones.
    """
    return -forgetting(r).mean(-1)


def time_to_threshold(t: Tensor, loss: Tensor, threshold: float | Tensor, *, relative: bool = True) -> Tensor:
    """First t (…) at which the loss reaches ``threshold`` (× its initial value if ``relative``); NaN if never.

    ``t`` and ``loss`` are (…, T) on a common grid; ``threshold`` is a number or one per curve (…). The crossing
    is linearly interpolated between the two log points that bracket it, so the answer does not snap to the
    logging grid.
    """
    t = t.expand_as(loss)
    if isinstance(threshold, Tensor):
        threshold = threshold.to(loss).unsqueeze(-1)
    target = threshold * loss[..., :1] if relative else torch.zeros_like(loss[..., :1]) + threshold
    below = loss <= target
    never = torch.full(below.shape[:-1], -1, dtype=torch.long, device=loss.device)
    first = torch.where(below.any(-1), below.to(torch.int8).argmax(-1), never)
    prev = (first - 1).clamp_min(0)

    def at(x: Tensor, i: Tensor) -> Tensor:
        return torch.gather(x, -1, i.clamp_min(0).unsqueeze(-1)).squeeze(-1)

    t0, t1, l0, l1 = at(t, prev), at(t, first), at(loss, prev), at(loss, first)
    frac = torch.where(l0 > l1, (l0 - target.squeeze(-1)) / (l0 - l1).clamp_min(1e-300), torch.zeros_like(l0))
    out = torch.where(first > 0, t0 + frac.clamp(0, 1) * (t1 - t0), t1)
    return torch.where(first >= 0, out, torch.full_like(out, float("nan")))


def generalisation_score(outputs: Tensor, trained_item: int) -> Tensor:
    """How a new output feature trained on one item generalises: outputs / outputs[trained_item], (…, P).

    ``outputs`` (…, P) is the new feature's value on every item. 1 on the trained item; the value on item j is
    the fraction of the trained response that j receives (property generalisation, Saxe et al. 2019).
    """
    return outputs / outputs[..., trained_item : trained_item + 1]


def predicted_generalisation(w1tw1: Tensor, x: Tensor, trained_item: int) -> Tensor:
    """The theory's generalisation profile (…, P): row ``trained_item`` of X W1ᵀW1 Xᵀ, normalised to 1 there.

    With the rest of the network frozen, one GD step on the new output moves its value on item j by
    ∝ x_jᵀ W1ᵀW1 x_i (docs/theory.md §10): the input-side representation decides how the new property spreads.
    """
    k = x @ w1tw1 @ x.mT
    row = k[..., trained_item, :]
    return row / row[..., trained_item : trained_item + 1]


# --- Sweep-level figures used by the benchmark suites (lazyrich.suites). -----------------------------------

__all__ += ["relative_change", "time_in_band"]


def time_in_band(t: Tensor, loss: Tensor, level: Tensor | float, band: float) -> Tensor:
    """Time (…) the loss spends within ``band``·|level| of ``level``: the length of a plateau at that level.

    ``t`` and ``loss`` are (…, T) on a common grid; ``level`` is a number or (…). Each interval between two
    log points counts by the trapezoid rule on the indicator: Δt if both ends are in the band, Δt/2 if one is.
    """
    t = t.expand_as(loss)
    level = torch.as_tensor(level, dtype=loss.dtype, device=loss.device)
    level = level.unsqueeze(-1) if level.dim() else level
    inside = ((loss - level).abs() <= band * level.abs()).to(loss.dtype)
    return (0.5 * (inside[..., 1:] + inside[..., :-1]) * (t[..., 1:] - t[..., :-1])).sum(-1)


def relative_change(before: Tensor, after: Tensor) -> Tensor:
    """‖after − before‖_F / ‖before‖_F over the last two axes, (…): how far a matrix (e.g. W1ᵀW1) moved."""
    return torch.linalg.matrix_norm(after - before) / torch.linalg.matrix_norm(before)


# --- Figure and suite helpers: losses along a trajectory, NTK from Grams, representations, noise ------------


def task_losses(product: Tensor, tasks: Sequence) -> Tensor:
    """The loss of the linear map ``product`` (…, No, Ni) on each of ``tasks``, (…, K): e.g. every task's loss
    along a trajectory of W2W1 (…, T, No, Ni) of a continual sequence. Each task has sigma_xx/yx/yy."""
    dev = product.device
    return torch.stack([loss_from_product(product, t.sigma_xx.to(dev), t.sigma_yx.to(dev), t.sigma_yy.to(dev))
                        for t in tasks], -1)


def ntk_from_blocks(blocks: Blocks, x: Tensor) -> Tensor:
    """The full NTK K = Σ_l A_l ⊗ (X G_l Xᵀ), (…, No·P, No·P), output-major, from its blocks (:func:`ntk_blocks`
    for weights, :func:`two_layer_ntk_blocks` for the Grams of a two-layer net) and X (P, Ni). For small P·No."""
    kernel = None
    for a, g in blocks:
        b = x @ g @ x.mT
        term = torch.einsum("...ij,...pq->...ipjq", a, b)
        term = term.reshape(*term.shape[:-4], a.shape[-1] * b.shape[-1], a.shape[-1] * b.shape[-1])
        kernel = term if kernel is None else kernel + term
    return kernel


def two_layer_ntk(w1tw1: Tensor, wwt_out: Tensor, x: Tensor) -> Tensor:
    """The full NTK (…, No·P, No·P) of a two-layer linear net from its Grams W1ᵀW1 (…, Ni, Ni) and W2W2ᵀ
    (…, No, No): K = W2W2ᵀ ⊗ X Xᵀ + I ⊗ X W1ᵀW1 Xᵀ (docs/theory.md §6; :func:`ntk_from_blocks`)."""
    return ntk_from_blocks(two_layer_ntk_blocks(w1tw1, wwt_out), x)


def representation_similarity(w1tw1: Tensor, wwt_out: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The representational similarity matrices (…, P, P) of a two-layer net from its Grams (docs/theory.md §6):
    RSM_I = X W1ᵀW1 Xᵀ (the Gram of the hidden activations) and RSM_O = Y (W2W2ᵀ)⁺ Yᵀ; X (P, Ni), Y (P, No)."""
    return x @ w1tw1 @ x.mT, y @ torch.linalg.pinv(wwt_out, hermitian=True) @ y.mT


def noise_costs(weights: Sequence[Tensor], task, sigma: float, n_draws: int,
                seed: int = 0) -> tuple[Tensor, Tensor]:
    """Monte Carlo excess loss (B,) under input noise x → x + ε and under parameter noise W_l → W_l + E_l,
    every entry N(0, σ²), ``n_draws`` draws, for two-layer nets ``weights`` [W1 (B, Nh, Ni), W2 (B, No, Nh)]
    on ``task`` (X, Y, P and its statistics). :func:`expected_noise_costs` is the exact expectation."""
    gen = torch.Generator().manual_seed(seed)
    w1, w2 = weights
    x, y = task.X, task.Y
    product = w2 @ w1
    clean = 0.5 * ((x @ product.mT - y) ** 2).sum((-2, -1)) / task.P
    eps = sigma * torch.randn(n_draws, *x.shape, generator=gen, dtype=x.dtype)
    noisy_in = 0.5 * (((x + eps)[None] @ product.mT[:, None] - y) ** 2).sum((-2, -1)).mean(-1) / task.P
    e1 = sigma * torch.randn(n_draws, *w1.shape, generator=gen, dtype=w1.dtype)
    e2 = sigma * torch.randn(n_draws, *w2.shape, generator=gen, dtype=w2.dtype)
    stats = (task.sigma_xx, task.sigma_yx, task.sigma_yy)
    noisy_par = loss_from_product((w2 + e2) @ (w1 + e1), *stats).mean(0)
    return noisy_in - clean, noisy_par - loss_from_product(product, *stats)


def expected_noise_costs(product: Tensor, w1tw1: Tensor, wwt_out: Tensor, sigma: float,
                         n_hidden: int) -> tuple[Tensor, Tensor]:
    """The exact expected excess losses (…) of :func:`noise_costs`, for any two-layer weights given through
    W2W1 (…, No, Ni) and the Grams: input noise ½σ²‖W2W1‖²_F (the noise enters with zero mean), parameter noise
    ½E‖E2W1 + W2E1 + E2E1‖²_F = ½σ²(No‖W1‖²_F + Ni‖W2‖²_F) + ½σ⁴ No·Nh·Ni (whitened inputs, Σxx = I)."""
    n_out, n_in = product.shape[-2], product.shape[-1]
    s2 = sigma**2
    w1_sq = torch.diagonal(w1tw1, dim1=-2, dim2=-1).sum(-1)
    w2_sq = torch.diagonal(wwt_out, dim1=-2, dim2=-1).sum(-1)
    return (0.5 * s2 * (product**2).sum((-2, -1)),
            0.5 * s2 * (n_out * w1_sq + n_in * w2_sq) + 0.5 * s2**2 * n_out * n_hidden * n_in)


def gaussian_balance_moments(n_in: int, n_hidden: int, n_out: int, s1: float = 1.0,
                             s2: float = 1.0) -> tuple[float, float, float, float]:
    """Exact E‖D − λ̂I‖²_F, E‖W2ᵀW2‖²_F, E‖W1W1ᵀ‖²_F and E λ̂ for LeCun Gaussian layers W1 (Nh, Ni) with
    variance σ1²/Ni and W2 (No, Nh) with variance σ2²/Nh (σ1 = ``s1``, σ2 = ``s2``); D = W2ᵀW2 − W1W1ᵀ,
    λ̂ = tr D / Nh (:func:`lazyrich.init.balance`).

    A = W2ᵀW2 sums No outer products of N(0, v_A I) vectors of length d = Nh (v_A = σ2²/Nh), B = W1W1ᵀ sums Ni
    of variance v_B = σ1²/Ni. A Wishart sum of n draws of variance v has E tr A² = v² d n (d + n + 1); A and B
    are independent, so E‖D − λ̂I‖² = E‖D‖² − E(tr D)²/d = (d − 1)(d + 2)(v_A² n_A + v_B² n_B).
    """
    d = n_hidden
    va, na, vb, nb = s2**2 / n_hidden, n_out, s1**2 / n_in, n_in
    dev = (d - 1) * (d + 2) * (va**2 * na + vb**2 * nb)
    return dev, va**2 * d * na * (d + na + 1), vb**2 * d * nb * (d + nb + 1), na * va - nb * vb


def gaussian_balance(shapes: Sequence[tuple[int, int, int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Measured and predicted closeness of LeCun Gaussian inits (σ1 = σ2 = 1) to λ-balance, per (Ni, Nh, No).

    ``r_sim``: RMS‖D − λ̂I‖_F / (RMS‖W2ᵀW2‖_F + RMS‖W1W1ᵀ‖_F) over seeds, ``lam_sim`` the mean λ̂;
    ``r_theory`` and ``lam_theory`` the same from :func:`gaussian_balance_moments` (E λ̂ = No σ2²/Nh − σ1²,
    docs/theory.md §3); ``n_seeds`` the draws per shape.
    """
    from lazyrich import init as inits

    out: dict[str, list[float]] = {k: [] for k in ("r_sim", "r_theory", "lam_sim", "lam_theory", "n_seeds")}
    gen = torch.Generator().manual_seed(seed)
    for n_in, n_hidden, n_out in shapes:
        # Enough seeds for a ~1% Monte Carlo error on λ̂ at small widths, bounded memory at large ones.
        n_seeds = int(np.clip(2**22 // (n_hidden * (n_in + n_out) + n_hidden**2), 16, 1024))
        w1, w2 = inits.gaussian([n_in, n_hidden, n_out], 1.0, lecun=True, generator=gen, batch=n_seeds)
        lam, dev = inits.balance([w1, w2])
        a_norm, b_norm = torch.linalg.matrix_norm(w2.mT @ w2), torch.linalg.matrix_norm(w1 @ w1.mT)
        out["r_sim"].append(float(_rms(dev[:, 0]) / (_rms(a_norm) + _rms(b_norm))))
        e_dev, e_a, e_b, lam_pred = gaussian_balance_moments(n_in, n_hidden, n_out)
        out["r_theory"].append(math.sqrt(e_dev) / (math.sqrt(e_a) + math.sqrt(e_b)))
        out["lam_sim"].append(float(lam[:, 0].mean()))
        out["lam_theory"].append(lam_pred)
        out["n_seeds"].append(n_seeds)
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def _rms(x: Tensor) -> Tensor:
    return torch.sqrt(torch.mean(x**2))
