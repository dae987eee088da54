"""Fukumizu's (1998) solution of the QQᵀ Riccati equation, taken literally (docs/theory.md §4).

QQᵀ(t) = e^{Ft} Q₀ [I + ½ Q₀ᵀ(e^{Ft}F⁻¹e^{Ft} − F⁻¹)Q₀]⁻¹ Q₀ᵀ e^{Ft}, with a matrix exponential and an
inverse at every time point. Correct, but e^{Ft} grows like e^{εt}: it overflows once ε₁t reaches a few
hundred (t ≈ 50 at λ = 20), and F⁻¹ does not exist at λ = 0 when Ni ≠ No. Kept as a short-time cross-check of
:func:`lazyrich.theory.exact.qqt` and as the naive baseline of the benchmark.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lazyrich.device import DTYPE
from lazyrich.init import balance
from lazyrich.theory.base import time_grid

__all__ = ["fukumizu_qqt", "riccati_generator"]


def riccati_generator(sigma_yx: Tensor, lam: Tensor) -> Tensor:
    """F = [[−λ/2 I, Σyxᵀ], [Σyx, λ/2 I]] for each λ in ``lam`` (B,): (B, Ni+No, Ni+No)."""
    n_out, n_in = sigma_yx.shape
    half = (lam / 2)[:, None, None]
    top = torch.cat([-half * torch.eye(n_in, dtype=DTYPE, device=lam.device).expand(lam.shape[0], -1, -1),
                     sigma_yx.mT.expand(lam.shape[0], -1, -1)], dim=-1)
    bottom = torch.cat([sigma_yx.expand(lam.shape[0], -1, -1),
                        half * torch.eye(n_out, dtype=DTYPE, device=lam.device)], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def fukumizu_qqt(W1: Tensor, W2: Tensor, sigma_yx: Tensor, t: Tensor, tau: float = 1.0) -> Tensor:
    """QQᵀ(t) by Fukumizu's formula; same shapes and conventions as :func:`lazyrich.theory.exact.qqt`.

    Whitened inputs only. Raises ValueError where F is singular (λ = 0 with Ni ≠ No, or s̃ = 0 at λ = 0).
    Gives inf/NaN, by design, where e^{Ft} overflows.
    """
    batched = W1.dim() == 3
    w1 = torch.as_tensor(W1, dtype=DTYPE) if batched else torch.as_tensor(W1, dtype=DTYPE).unsqueeze(0)
    w2 = torch.as_tensor(W2, dtype=DTYPE) if batched else torch.as_tensor(W2, dtype=DTYPE).unsqueeze(0)
    sigma_yx = torch.as_tensor(sigma_yx, dtype=DTYPE, device=w1.device)
    lam = balance([w1, w2])[0][..., 0]
    f = riccati_generator(sigma_yx, lam)
    f_inv, info = torch.linalg.inv_ex(f)
    # F's eigenvalues are ±√(s̃² + λ²/4) and ±λ/2: a zero one makes F⁻¹ meaningless even if LAPACK returns.
    smallest = torch.linalg.eigvalsh(f).abs().amin(-1)
    if bool((info != 0).any()) or bool((smallest <= 1e-12 * torch.linalg.matrix_norm(f, ord=2)).any()):
        raise ValueError("F is singular (λ = 0 with Ni ≠ No, or a zero target singular value at λ = 0): "
                         "Fukumizu's formula needs F⁻¹; use lazyrich.theory.exact.qqt.")
    q0 = torch.cat([w1.mT, w2], dim=-2)[:, None]  # (B, 1, N, Nh)
    grid = time_grid(t, w1.shape[0], w1.device) / tau
    e_ft = torch.linalg.matrix_exp(f[:, None] * grid[..., None, None])  # (B, T, N, N)
    f_inv = f_inv[:, None]
    eye = torch.eye(w1.shape[-2], dtype=DTYPE, device=w1.device)
    middle = eye + 0.5 * q0.mT @ (e_ft @ f_inv @ e_ft - f_inv) @ q0
    left = e_ft @ q0
    out = left @ torch.linalg.inv(middle) @ left.mT
    return out if batched else out[0]
