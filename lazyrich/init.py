"""Where the weights start: λ-balanced, task-aligned, re-factorised, Gaussian and deep balanced inits.

Conventions (docs/theory.md §1, §3): W1 is (n_hidden, n_in), W2 is (n_out, n_hidden); the balance of a pair is
W2ᵀW2 − W1W1ᵀ = λI, and λ > 0 means the output layer is the larger one. Every function takes an optional
``batch`` and then returns tensors with a leading batch axis, so one call initialises a whole sweep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from lazyrich.device import DTYPE

__all__ = [
    "VARIANCES",
    "balance",
    "balanced_factors",
    "check_widths",
    "deep_balanced",
    "exact_lam",
    "gaussian",
    "gaussian_lambda",
    "lambda_balanced",
    "pair_rows",
    "perturb",
    "random_orthogonal",
    "refactorise",
    "signed_gram_form",
]


def check_widths(n_in: int, n_hidden: int, n_out: int, lam: float) -> None:
    """Raise ``ValueError`` if no weights of these widths can be λ-balanced (docs/theory.md §3, A3)."""
    for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive width, got {value}.")
    if n_hidden > max(n_in, n_out) and lam != 0:
        raise ValueError(
            f"n_hidden={n_hidden} > max(n_in={n_in}, n_out={n_out}) forces lam = 0 (got lam={lam}): "
            f"use lam=0 or n_hidden <= {max(n_in, n_out)}."
        )
    if n_hidden > n_out and lam > 0:
        raise ValueError(
            f"n_hidden={n_hidden} > n_out={n_out} forces lam <= 0 (got lam={lam}): W2ᵀW2 has rank at most "
            f"n_out, so it cannot exceed W1W1ᵀ by lam·I. Use lam <= 0 or n_hidden <= {n_out}."
        )
    if n_hidden > n_in and lam < 0:
        raise ValueError(
            f"n_hidden={n_hidden} > n_in={n_in} forces lam >= 0 (got lam={lam}): W1W1ᵀ has rank at most "
            f"n_in. Use lam >= 0 or n_hidden <= {n_in}."
        )


def exact_lam(lam: float | Tensor | Sequence[float], dtype: torch.dtype = DTYPE) -> Tensor:
    """λ as a ``dtype`` tensor; a lower-precision float λ is read as the shortest decimal that rounds to it.

    ``torch.tensor(0.8)`` is float32 0.800000011920929: read as 0.8, so that a λ typed in float32 means the
    number that was typed (the precision policy of :mod:`lazyrich.theory.base`), not its float32 rounding.
    """
    if isinstance(lam, Tensor | np.ndarray) and lam.dtype in (torch.float32, torch.float16, np.float32, np.float16):
        values = np.asarray(lam.cpu() if isinstance(lam, Tensor) else lam)
        decimal = [float(str(v)) for v in values.reshape(-1)]
        return torch.tensor(decimal, dtype=dtype).reshape(values.shape)
    if isinstance(lam, Tensor) and lam.is_floating_point() and torch.finfo(lam.dtype).eps > torch.finfo(dtype).eps:
        return exact_lam(lam.to(torch.float32), dtype)  # bfloat16: through its float32 value
    return torch.as_tensor(lam, dtype=dtype)


def balanced_factors(s: Tensor, lam: Tensor | float) -> tuple[Tensor, Tensor]:
    """Per-mode layer singular values (s1, s2) with s2² − s1² = lam and s1·s2 = s (s ≥ 0).

    The smaller square is 2s²/(√(λ²+4s²) + |λ|), never a difference, so |λ| ≫ s loses nothing.
    """
    lam = torch.as_tensor(lam, dtype=s.dtype, device=s.device)
    root = torch.hypot(lam, 2 * s)
    denom = root + lam.abs()
    big = denom / 2
    small = torch.where(denom > 0, 2 * s * s / torch.where(denom > 0, denom, 1), torch.zeros_like(s))
    positive = lam >= 0
    s2_sq = torch.where(positive, big, small)
    s1_sq = torch.where(positive, small, big)
    return s1_sq.sqrt(), s2_sq.sqrt()


def random_orthogonal(n: int, *, batch: int | None = None, generator: torch.Generator | None = None,
                      dtype: torch.dtype = DTYPE, device: torch.device | str | None = None) -> Tensor:
    """Haar-random orthogonal matrix (n, n), or (batch, n, n)."""
    shape = (n, n) if batch is None else (batch, n, n)
    a = torch.randn(shape, generator=generator, dtype=dtype, device=_gen_device(generator, device))
    q, r = torch.linalg.qr(a)
    # The sign fix makes the distribution Haar rather than biased by QR's convention.
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return q.to(device) if device is not None else q


def _gen_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def _complement(basis: Tensor, n_extra: int) -> Tensor:
    """Orthonormal columns (…, n, n_extra) orthogonal to the orthonormal columns of ``basis`` (…, n, k)."""
    n, k = basis.shape[-2], basis.shape[-1]
    if n_extra == 0:
        return basis.new_zeros(*basis.shape[:-1], 0)
    # The full QR of [basis | I] spans ℝⁿ with the first k columns equal to ±basis.
    eye = torch.eye(n, dtype=basis.dtype, device=basis.device).expand(*basis.shape[:-2], n, n)
    q, _ = torch.linalg.qr(torch.cat([basis, eye], dim=-1), mode="complete")
    return q[..., :, k : k + n_extra]


def refactorise(product: Tensor, lam: float | Tensor, *, n_hidden: int | None = None,
                generator: torch.Generator | None = None, rotate: bool = True) -> tuple[Tensor, Tensor]:
    """Factor a product W (…, n_out, n_in) as W2·W1 with W2ᵀW2 − W1W1ᵀ = λI (docs/theory.md §3).

    ``lam`` is a float or a tensor broadcastable to the batch shape. ``n_hidden`` defaults to min(n_in, n_out);
    wider nets pad the extra hidden directions with √λ on W2 (λ ≥ 0) or √(−λ) on W1 (λ ≤ 0); narrower nets keep
    the top n_hidden modes. ``rotate`` applies a random hidden rotation R (the factorisation is unique up to R).
    Returns (W1 (…, n_hidden, n_in), W2 (…, n_out, n_hidden)).
    """
    n_out, n_in = product.shape[-2:]
    m = min(n_in, n_out)
    n_hidden = m if n_hidden is None else int(n_hidden)
    lam_t = exact_lam(lam, product.dtype).to(product.device)
    for value in lam_t.reshape(-1).tolist():
        check_widths(n_in, n_hidden, n_out, value)
    batch_shape = product.shape[:-2]
    lam_t = lam_t.expand(batch_shape) if lam_t.dim() == 0 else lam_t
    u, s, vh = torch.linalg.svd(product, full_matrices=False)
    k = min(m, n_hidden)
    u, s, vh = u[..., :, :k], s[..., :k], vh[..., :k, :]
    s1, s2 = balanced_factors(s, lam_t.unsqueeze(-1))
    w1 = s1.unsqueeze(-1) * vh  # (…, k, n_in)
    w2 = u * s2.unsqueeze(-2)  # (…, n_out, k)
    n_extra = n_hidden - k
    if n_extra > 0:
        # check_widths guarantees room: λ > 0 only if n_out ≥ n_hidden, λ < 0 only if n_in ≥ n_hidden.
        root = lam_t.abs().sqrt()[..., None, None]
        pad_out = product.new_zeros(*batch_shape, n_out, n_extra)
        pad_in = product.new_zeros(*batch_shape, n_extra, n_in)
        if n_out >= n_hidden:
            pad_out = _complement(u, n_extra) * root * (lam_t > 0)[..., None, None]
        if n_in >= n_hidden:
            pad_in = _complement(vh.mT, n_extra).mT * root * (lam_t < 0)[..., None, None]
        w1 = torch.cat([w1, pad_in], dim=-2)
        w2 = torch.cat([w2, pad_out], dim=-1)
    if rotate:
        batch = int(math.prod(batch_shape)) if batch_shape else None
        r = random_orthogonal(n_hidden, batch=batch, generator=generator, dtype=product.dtype)
        r = r.to(product.device).reshape(*batch_shape, n_hidden, n_hidden)
        w1, w2 = r @ w1, w2 @ r.mT
    return w1, w2


def _initial_product(shape: tuple[int, ...], scale: float, align_to: Tensor | None,
                     generator: torch.Generator | None, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The target W_L⋯W_1 (…, n_out, n_in): scale·G (G Gaussian, variance 1/n_in) or scale·Ũ_mṼ_mᵀ if aligned."""
    n_out, n_in = shape[-2:]
    if align_to is None:
        return torch.randn(shape, generator=generator, dtype=dtype, device=device) * (scale / math.sqrt(n_in))
    sigma = torch.as_tensor(align_to, dtype=dtype)
    if sigma.shape != (n_out, n_in):
        raise ValueError(f"align_to must be Σyx of shape (n_out, n_in) = {(n_out, n_in)}, got {tuple(sigma.shape)}.")
    u, _, vh = torch.linalg.svd(sigma.to(device), full_matrices=False)
    return (scale * u @ vh).expand(shape).clone()


def lambda_balanced(n_in: int, n_hidden: int, n_out: int, lam: float | Tensor | Sequence[float], *,
                    scale: float = 1.0, generator: torch.Generator | None = None, align_to: Tensor | None = None,
                    dtype: torch.dtype = DTYPE, batch: int | None = None,
                    device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """λ-balanced two-layer weights (W1 (n_hidden, n_in), W2 (n_out, n_hidden)), exact to rounding.

    Without ``align_to`` the product W2W1 is ``scale``·G with G Gaussian of variance 1/n_in (random singular
    vectors). With ``align_to`` = a task's Σyx (n_out, n_in) the product is ``scale``·Ũ_mṼ_mᵀ: every mode starts
    at s = scale in the task's singular basis (Saxe et al. 2014). ``lam`` may be a sequence with one value per
    network; then ``batch`` defaults to its length and a leading batch axis is added.
    """
    lam_t = exact_lam(lam, dtype)
    if not bool(torch.isfinite(lam_t).all()):
        raise ValueError(f"lam must be finite, got {lam_t.tolist()}; λ = W2ᵀW2 − W1W1ᵀ is a finite number (λ > 0: the "
                         f"output layer is the larger).")
    if lam_t.dim() == 1 and batch is None:
        batch = lam_t.shape[0]
    if lam_t.dim() == 1 and lam_t.shape[0] != batch:
        raise ValueError(f"lam has {lam_t.shape[0]} values but batch={batch}; give one lam per network.")
    for value in lam_t.reshape(-1).tolist():
        check_widths(n_in, n_hidden, n_out, value)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}.")
    shape = (n_out, n_in) if batch is None else (batch, n_out, n_in)
    dev = _gen_device(generator, device)
    product = _initial_product(shape, scale, align_to, generator, dtype, dev)
    w1, w2 = refactorise(product, lam_t.to(dev), n_hidden=n_hidden, generator=generator)
    target = torch.device(device) if device is not None else dev
    return w1.to(target), w2.to(target)


VARIANCES = ("fan_in", "hidden")
"""What divides a Gaussian layer's variance σ_l² (:func:`gaussian`): its fan-in (LeCun), or the hidden width."""


def gaussian(widths: Sequence[int], scale: float | Sequence[float] = 1.0, *, lecun: bool = True,
             variance: str = "fan_in", generator: torch.Generator | None = None, dtype: torch.dtype = DTYPE,
             batch: int | None = None, device: torch.device | str | None = None) -> list[Tensor]:
    """Independent Gaussian layers for widths [n_in, n_1, …, n_out]; W_l ~ N(0, σ_l²/n) if ``lecun``, else N(0, σ_l²).

    ``scale`` is σ, one value or one per layer. ``variance`` says which width n divides σ_l²: ``"fan_in"``
    (LeCun: each layer's fan-in; W1ᵀW1 ≈ (N_h/N_i)σ₁²I grows with the width) or ``"hidden"`` (W1 by its fan-out
    N_h, every later layer by its fan-in: W1ᵀW1 ≈ σ₁²I, W2W2ᵀ ≈ σ₂²I at any width, the initial Grams of
    theory ``wide``). A two-layer init [n_in, n_h, n_out] has E[W2ᵀW2 − W1W1ᵀ] = λI with λ from
    :func:`gaussian_lambda`; one draw deviates from λI by O(1/√width) (measure it with :func:`balance`).
    """
    n_layers = len(widths) - 1
    if n_layers < 1:
        raise ValueError(f"widths needs at least [n_in, n_out], got {list(widths)}.")
    if variance not in VARIANCES:
        raise ValueError(f"variance={variance!r} is unknown; choose one of {list(VARIANCES)}.")
    if variance == "hidden" and n_layers < 2:
        raise ValueError("variance='hidden' divides by the hidden width, and one layer has none; use 'fan_in'.")
    scales = [float(scale)] * n_layers if isinstance(scale, int | float) else [float(s) for s in scale]
    if len(scales) != n_layers:
        raise ValueError(f"scale has {len(scales)} values for {n_layers} layers; give one per layer or one.")
    dev = _gen_device(generator, device)
    weights = []
    for l, (fan_in, fan_out, sigma) in enumerate(zip(widths[:-1], widths[1:], scales, strict=True)):
        shape = (fan_out, fan_in) if batch is None else (batch, fan_out, fan_in)
        width = fan_out if variance == "hidden" and l == 0 else fan_in
        std = sigma / math.sqrt(width) if lecun else sigma
        weights.append(torch.randn(shape, generator=generator, dtype=dtype, device=dev) * std)
    return [w.to(device) for w in weights] if device is not None else weights


def gaussian_lambda(widths: Sequence[int], scale: float | Sequence[float] = 1.0, *, lecun: bool = True,
                    variance: str = "fan_in") -> float:
    """The expected λ of a two-layer :func:`gaussian` init: E[W2ᵀW2 − W1W1ᵀ] = λI, that is
    N_oσ₂²/N_h − σ₁² (``fan_in``), (N_oσ₂² − N_iσ₁²)/N_h (``hidden``) or N_oσ₂² − N_iσ₁² (no ``lecun``)."""
    if len(widths) != 3:
        raise ValueError(f"gaussian_lambda is for two layers, widths [n_in, n_h, n_out]; got {list(widths)}.")
    n_in, n_h, n_out = (int(w) for w in widths)
    s1, s2 = (float(scale), float(scale)) if isinstance(scale, int | float) else (float(x) for x in scale)
    if not lecun:
        return n_out * s2**2 - n_in * s1**2
    return (n_out * s2**2 - n_in * s1**2) / n_h if variance == "hidden" else n_out * s2**2 / n_h - s1**2


def _deep_layer_values(s: Tensor, lams: Tensor) -> Tensor:
    """Layer singular values a (…, L) with a_{l+1}² − a_l² = λ_l and Π a_l = s, per mode (s ≥ 0)."""
    offsets = torch.cat([lams.new_zeros(*lams.shape[:-1], 1), torch.cumsum(lams, -1)], -1)  # Λ_l, (…, L)
    lo = torch.clamp(-offsets.min(-1).values, min=0.0)  # a_1² must keep every a_l² ≥ 0
    target = 2 * torch.log(s.clamp_min(torch.finfo(s.dtype).tiny))

    def log_prod(x: Tensor) -> Tensor:
        return torch.log((x.unsqueeze(-1) + offsets.unsqueeze(-2)).clamp_min(torch.finfo(s.dtype).tiny)).sum(-1)

    hi = lo + (s.abs() ** (2 / offsets.shape[-1])) + offsets.abs().amax(-1, keepdim=True) + 1.0
    lo = lo.unsqueeze(-1).expand_as(s).clone()
    while bool((log_prod(hi) < target).any()):
        hi = torch.where(log_prod(hi) < target, 2 * hi, hi)
    # Bisection on a monotone function: 200 halvings reach float64 resolution for any bracket.
    for _ in range(200):
        mid = (lo + hi) / 2
        below = log_prod(mid) < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    a1_sq = (lo + hi) / 2
    return (a1_sq.unsqueeze(-1) + offsets.unsqueeze(-2)).clamp_min(0).sqrt()


def deep_balanced(widths: Sequence[int], lams: float | Sequence[float], *, scale: float = 1.0,
                  generator: torch.Generator | None = None, align_to: Tensor | None = None,
                  dtype: torch.dtype = DTYPE, batch: int | None = None,
                  device: torch.device | str | None = None) -> list[Tensor]:
    """Deep λ-balanced weights [W1, …, WL] with W_{l+1}ᵀW_{l+1} − W_lW_lᵀ = λ_l I for each adjacent pair.

    ``widths`` = [n_in, n_1, …, n_out]; every hidden width must equal min(n_in, n_out). ``lams`` has L−1 values
    (or one, used for every pair). The product's modes are those of :func:`lambda_balanced`; each mode is split
    into layer values a_l solving a_{l+1}² − a_l² = λ_l, Π a_l = s (docs/theory.md §7).
    """
    widths = [int(w) for w in widths]
    n_layers = len(widths) - 1
    if n_layers < 2:
        raise ValueError(f"deep_balanced needs at least two layers, got widths={widths}; use gaussian for one.")
    n_in, n_out = widths[0], widths[-1]
    m = min(n_in, n_out)
    if any(w != m for w in widths[1:-1]):
        raise ValueError(f"deep_balanced needs every hidden width = min(n_in, n_out) = {m}, got {widths[1:-1]}.")
    lam_list = [float(lams)] * (n_layers - 1) if isinstance(lams, int | float) else [float(x) for x in lams]
    if len(lam_list) != n_layers - 1:
        raise ValueError(f"lams needs {n_layers - 1} values (one per adjacent pair), got {len(lam_list)}.")
    dev = _gen_device(generator, device)
    shape = (n_out, n_in) if batch is None else (batch, n_out, n_in)
    product = _initial_product(shape, scale, align_to, generator, dtype, dev)
    u, s, vh = torch.linalg.svd(product, full_matrices=False)
    a = _deep_layer_values(s, torch.tensor(lam_list, dtype=dtype, device=dev))  # (…, m, L)
    bshape = product.shape[:-2]
    nb = int(math.prod(bshape)) if bshape else None
    rotations = [random_orthogonal(m, batch=nb, generator=generator, dtype=dtype).reshape(*bshape, m, m)
                 for _ in range(n_layers - 1)]
    left = rotations + [u]  # R_1 … R_{L-1}, U
    right = [vh.mT] + rotations  # V, R_1 … R_{L-1}
    weights = [lft * a[..., l].unsqueeze(-2) @ rgt.mT for l, (lft, rgt) in enumerate(zip(left, right, strict=True))]
    return [w.to(device) for w in weights] if device is not None else weights


def perturb(weights: Sequence[Tensor], delta: float, *, generator: torch.Generator | None = None) -> list[Tensor]:
    """[W_l + δ·G_l], G_l with independent N(0, 1) entries: an explicit seed of size δ for leaving a saddle.

    A λ = 0 init with singular B sits on a saddle that gradient flow never leaves; δ sets how soon GD does
    (after t ≈ ln(1/δ)/s̃, see :mod:`lazyrich.theory.escape`). δ = 0 returns copies of the weights.
    """
    if not (math.isfinite(delta) and delta >= 0):
        raise ValueError(f"perturb delta must be a finite number ≥ 0, got {delta}.")
    if delta == 0:
        return [w.clone() for w in weights]
    return [w + delta * torch.randn(w.shape, generator=generator, dtype=w.dtype, device=_gen_device(generator, None)
                                    ).to(w.device) for w in weights]


def signed_gram_form(rows: Tensor, signs: Tensor) -> Tensor:
    """The (…, k, k) matrix R diag(signs) Rᵀ, with rowsᵀ = O R the reduced QR of rows (…, k, n): the n × n matrix
    rowsᵀ diag(signs) rows equals O (R diag(signs) Rᵀ) Oᵀ, so both have the same nonzero spectrum and Frobenius
    norm. ``signs`` is (k,). Cost O(n k²), against O(n² k) for the n × n matrix; backward stable, so both carry
    the same ~u·‖rows‖² rounding (no difference of large squares is formed)."""
    r = torch.linalg.qr(rows.mT, mode="r").R  # (…, min(n, k), k)
    return (r * signs) @ r.mT


def pair_rows(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Rows M = [W_lᵀ; W_{l+1}] (…, in + out, n) and signs (−1 ×in, +1 ×out): D_l = Mᵀ diag(signs) M."""
    signs = torch.cat([-torch.ones(lo.shape[-1], dtype=lo.dtype, device=lo.device),
                       torch.ones(hi.shape[-2], dtype=hi.dtype, device=hi.device)])
    return torch.cat([lo.mT, hi], dim=-2), signs


def balance(weights: Sequence[Tensor], imbalance: Sequence[Tensor | None] | None = None) -> tuple[Tensor, Tensor]:
    """Estimated λ and deviation for each adjacent pair of [W1, …, WL] (each (…, out, in)).

    λ̂_l = tr(D_l)/n_l and dev_l = ‖D_l − λ̂_l I‖_F with D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ (n_l × n_l).
    Returns (lam (…, L−1), deviation (…, L−1)). A hidden layer wider than in + out of its pair (a wide net) is
    never formed: D_l is read in the k = in + out dimensional row space of its factors
    (:func:`signed_gram_form`), ‖D_l − λ̂I‖² = ‖R diag(±1) Rᵀ − λ̂I_k‖² + (n_l − k)λ̂², equal to rounding.
    ``imbalance``: the D_l already formed as W_{l+1}ᵀW_{l+1} − W_lW_lᵀ (None where not), e.g. by the trainer's
    recorder, which also needs them for the drift.
    """
    if len(weights) < 2:
        raise ValueError("balance needs at least two layers.")
    lams, devs = [], []
    for l, (w_lo, w_hi) in enumerate(zip(weights[:-1], weights[1:], strict=True)):
        n, k = w_lo.shape[-2], w_lo.shape[-1] + w_hi.shape[-2]
        given = None if imbalance is None else imbalance[l]
        d = (given if given is not None else w_hi.mT @ w_hi - w_lo @ w_lo.mT) if n <= k else \
            signed_gram_form(*pair_rows(w_lo, w_hi))
        lam = torch.diagonal(d, dim1=-2, dim2=-1).sum(-1) / n
        eye = torch.eye(d.shape[-1], dtype=d.dtype, device=d.device)
        dev = torch.linalg.matrix_norm(d - lam[..., None, None] * eye)
        devs.append(dev if n <= k else torch.sqrt(dev**2 + (n - k) * lam**2))
        lams.append(lam)
    return torch.stack(lams, -1), torch.stack(devs, -1)
