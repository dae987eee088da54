"""The lazy limit: a linearised net whose NTK stays at its initial value (docs/theory.md §5–6, |λ| → ∞).

With Σxx = c·I and E = W − Σ̂ (Σ̂ = Σyx/c), a fixed kernel gives τ dE/dt = −c Σ_l A_l E G_l with the NTK blocks
(A_l, G_l) of the initial weights: a linear ODE solved in the kernel's eigenbasis (``kernel="ntk"``, default).
For two layers the operator is A ⊗ I + I ⊗ G, diagonal in the eigenbases of W2W2ᵀ and W1ᵀW1; as |λ| → ∞ every
rate tends to |λ| and this becomes ``kernel="lambda"``: W(t) = Σ̂ + (W(0) − Σ̂)e^{−c|λ|t/τ}.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lazyrich import metrics
from lazyrich.init import balance
from lazyrich.theory.base import Prediction, TaskStats, Theory, balance_magnitude, loss_from_product, whitening_advice
from lazyrich.theory.registry import register_theory

__all__ = ["LazyTheory"]

_MAX_DENSE = 4096  # No·Ni above which the deep-net operator (dense eigh, O((No·Ni)³)) is refused


LAMBDA_MIN_RTOL = 1e-8
"""kernel='lambda' refuses |λ̂| ≤ 1e-8·(‖W1‖² + ‖W2‖²): its rate c|λ| is then rounding, not a kernel."""


def _lambda_reason(weights: list[Tensor]) -> str | None:
    """Why kernel='lambda' (rate c|λ|, the |λ| → ∞ limit) does not apply: λ ≈ 0 for some network."""
    lam, scale = balance_magnitude(weights)
    bad = (lam <= LAMBDA_MIN_RTOL * scale).nonzero().flatten().tolist()
    if not bad:
        return None
    return (f"kernel='lambda' is the |λ| → ∞ limit, but λ̂ ≈ 0 for network(s) {bad} (|λ̂| = "
            f"{float(lam[bad[0]]):.2g} ≤ {LAMBDA_MIN_RTOL:g}·(‖W1‖² + ‖W2‖²)): its rate c|λ| would be 0 and no "
            f"loss would ever decay; use kernel='ntk' (the initial NTK) or theory=exact.")


@register_theory("lazy")
class LazyTheory(Theory):
    """Fixed-kernel (linearised) dynamics; ``kernel="lambda"`` is the pure |λ| → ∞ rate of docs/theory.md §5."""

    exact = False

    def __init__(self, tau: float = 1.0, kernel: str = "ntk") -> None:
        if kernel not in ("ntk", "lambda"):
            raise ValueError(f"kernel must be 'ntk' (initial NTK) or 'lambda' (rate c|λ|), not {kernel!r}.")
        self.tau, self.kernel = float(tau), kernel

    def _check(self, stats: TaskStats, weights: list[Tensor]) -> str | None:
        if stats.whitening_scale is None:
            return whitening_advice(stats.sigma_xx)
        if self.kernel == "lambda" and len(weights) != 2:
            return f"kernel='lambda' needs a two-layer net for its λ, not L = {len(weights)}; use 'ntk'."
        if self.kernel == "lambda":
            return _lambda_reason(weights)
        if len(weights) > 2 and stats.n_in * stats.n_out > _MAX_DENSE:
            return (f"the fixed-kernel operator of a deep net is dense (No·Ni = {stats.n_in * stats.n_out} > "
                    f"{_MAX_DENSE}); use theory=ode.")
        return None

    def _error(self, stats: TaskStats, weights: list[Tensor], u: Tensor, e0: Tensor) -> tuple[Tensor, Tensor]:
        """E(u) (B, T, No, Ni) and E(∞) (B, No, Ni) at scaled times u = c·t/τ (B, T)."""
        if self.kernel == "lambda":
            lam = balance(weights)[0][..., 0].abs()  # _check refused λ̂ ≈ 0, so every rate is > 0
            decay = torch.exp(-lam[:, None] * u)[..., None, None]
            return e0[:, None] * decay, torch.zeros_like(e0)
        if len(weights) == 2:
            alpha, p = torch.linalg.eigh(weights[1] @ weights[1].mT)
            gamma, q = torch.linalg.eigh(weights[0].mT @ weights[0])
            rates = alpha[:, :, None] + gamma[:, None, :]  # (B, No, Ni)
            coef = p.mT @ e0 @ q
            tol = 1e-12 * rates.abs().amax((-2, -1), keepdim=True)
            e_inf = p @ (coef * (rates <= tol)) @ q.mT
            decay = torch.exp(-rates[:, None] * u[..., None, None])  # (B, T, No, Ni)
            return p[:, None] @ (coef[:, None] * decay) @ q[:, None].mT, e_inf
        batch, n_out, n_in = e0.shape
        op = sum(torch.einsum("bij,bkl->bikjl", a.expand(batch, n_out, n_out), g.expand(batch, n_in, n_in))
                 .reshape(batch, n_out * n_in, n_out * n_in)
                 for a, g in metrics.ntk_blocks(weights))  # the first and last blocks are unbatched identities
        rates, vecs = torch.linalg.eigh(op)
        coef = (vecs.mT @ e0.reshape(batch, -1, 1))[..., 0]  # (B, No·Ni)
        keep = rates <= 1e-12 * rates.abs().amax(-1, keepdim=True)
        e_inf = (vecs @ (coef * keep)[..., None]).reshape(batch, n_out, n_in)
        e_t = (vecs[:, None] @ (coef[:, None] * torch.exp(-rates[:, None] * u[..., None]))[..., None])
        return e_t.reshape(*u.shape, n_out, n_in), e_inf

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        c = stats.whitening_scale
        target = stats.sigma_yx / c
        e0 = metrics.product(weights) - target
        e_t, e_inf = self._error(stats, weights, c * t / self.tau, e0)
        product = target + e_t
        u, _, v = stats.svd
        shape = (*t.shape, 0, 0)
        w1tw1 = (weights[0].mT @ weights[0])[:, None].expand(*shape[:2], -1, -1)
        wwt = (weights[-1] @ weights[-1].mT)[:, None].expand(*shape[:2], -1, -1)
        zeros = torch.zeros_like(t)
        note = (f"lazy: fixed kernel ({self.kernel}); Grams stay at their initial values, so the kernel "
                f"distance is 0 by construction.")
        return Prediction(t=t, product=product, w1tw1=w1tw1, wwt_out=wwt,
                          loss=loss_from_product(product, stats), kernel_distance=zeros,
                          ntk_rel_change=zeros.clone(),
                          svals=metrics.task_svals(product, u, v),
                          converges_to_saddle=torch.zeros(t.shape[0], dtype=torch.bool, device=t.device),
                          final_loss=loss_from_product(target + e_inf, stats), theory=self.name, notes=[note])
