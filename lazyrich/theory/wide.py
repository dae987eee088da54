"""Wide two-layer nets from i.i.d. inits (docs/theory.md §12): the ``wide`` theory, the closed form at λ = ±(c₁ + c₂).

Gradient flow acts on P = QQᵀ = [[G1, Aᵀ], [A, G2]] alone (G1 = W1ᵀW1, G2 = W2W2ᵀ, A = W2W1; see
:mod:`lazyrich.theory.gram_ode`), and P + αJ with J = diag(I_Ni, −I_No) is a solution whenever P is: the shift
leaves A(t) and the NTK unchanged. A wide i.i.d. init has P(0) ≈ diag(c₁I, c₂I) plus A(0) off the diagonal, with
c₁ = ‖W1‖²_F/Ni and c₂ = ‖W2‖²_F/No. The shift α = −c₁ makes it the P(0) of a λ-balanced width-m net with
λ = +(c₁ + c₂) and product A(0); α = +c₂ gives λ = −(c₁ + c₂). A width-m net can carry a zero Gram block only on
the side with more than m directions, hence the sign rule: λ > 0 for a funnel (Ni > No), λ < 0 for an inverted
funnel, either for a square net (there the product depends on |λ| only; + is used).

What is left is the finite width: G1(0) − c₁I and G2(0) − c₂I are Wishart fluctuations that no balanced net carries.
The product's error (Frobenius, max over t, relative to max_t ‖A‖_F) was measured as k(S)·√(n_eff/N_h) with
S = c₁ + c₂ and n_eff = ((c₁√Ni + c₂√No)/S)² (:func:`expected_error`); ``check`` refuses a net too narrow for
``target_error`` by that law's worst measured constant.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lazyrich.init import balance, refactorise
from lazyrich.theory.assemble import from_grams
from lazyrich.theory.base import Prediction, TaskStats, Theory, squared_size, whitening_advice
from lazyrich.theory.exact import BALANCE_RTOL, ExactTheory
from lazyrich.theory.registry import register_theory

__all__ = ["ISOTROPY_TOL", "K_MAX", "TARGET_ERROR", "WideTheory", "expected_error", "required_width",
           "wide_lambda", "wide_scales"]

K_MAX = 0.35
"""The check's worst case for k in err = k·√(n_eff/N_h): measured k ≤ 0.31 (median 0.22) over the 17 cases of
``python -m benchmarks.wide_init --part law`` (shapes 4→4 … 32→32 and funnels, unequal splits, three spectra,
S = 0.02 … 8 at N_h = 4096), and ≤ 0.33 in the wider study (80 cases) that set the fit of k(S)."""

TARGET_ERROR = 0.05
"""Default accuracy asked of ``wide``: its worst-case product error K_MAX·√(n_eff/N_h) ≤ 5% (N_h ≥ 392 for 8→8),
the project's agreement tolerance (``lazyrich.results.tables.AGREEMENT_RTOL``)."""

ISOTROPY_TOL = 3.0
"""An i.i.d. init has ‖G − cI‖_F/(c√n) ≈ √((n+1)/N_h) (Wishart); beyond 3× that the init is structured (low rank,
pretrained, correlated) and the law does not apply."""


def wide_scales(w1: Tensor, w2: Tensor) -> tuple[Tensor, Tensor]:
    """(c₁, c₂) = (‖W1‖²_F/Ni, ‖W2‖²_F/No) per network, (B,) each: the initial Grams are ≈ c₁I and c₂I."""
    return (w1 * w1).sum((-2, -1)) / w1.shape[-1], (w2 * w2).sum((-2, -1)) / w2.shape[-2]


def wide_lambda(n_in: int, n_out: int, c1: Tensor, c2: Tensor) -> Tensor:
    """λ = ±(c₁ + c₂) by the sign rule: + unless the net is an inverted funnel (No > Ni)."""
    return (c1 + c2) * (-1.0 if n_out > n_in else 1.0)


def _n_eff(n_in: int, n_out: int, c1: Tensor, c2: Tensor) -> Tensor:
    return ((c1 * math.sqrt(n_in) + c2 * math.sqrt(n_out)) / (c1 + c2)) ** 2


def expected_error(n_in: int, n_out: int, n_hidden: int, c1: Tensor, c2: Tensor, *, bound: bool = False) -> Tensor:
    """The product's expected relative error k(S)·√(n_eff/N_h) (B,): k(S) = 0.25 − 0.13/(1 + S/0.3), the median
    fit of the calibration (0.12 rich … 0.25 lazy); ``bound`` uses the worst measured k, :data:`K_MAX`."""
    s = c1 + c2
    k = torch.full_like(s, K_MAX) if bound else 0.25 - 0.13 / (1 + s / 0.3)
    return k * torch.sqrt(_n_eff(n_in, n_out, c1, c2) / n_hidden)


def required_width(n_in: int, n_out: int, c1: Tensor, c2: Tensor, target: float) -> Tensor:
    """The N_h (B,) at which the worst-case error K_MAX·√(n_eff/N_h) reaches ``target``."""
    return torch.ceil(_n_eff(n_in, n_out, c1, c2) * (K_MAX / target) ** 2)


def _span(x: Tensor, fmt: str) -> str:
    lo, hi = format(float(x.min()), fmt), format(float(x.max()), fmt)
    return lo if lo == hi else f"{lo} … {hi}"


def _anisotropy(gram: Tensor, c: Tensor) -> Tensor:
    """‖G − cI‖_F/(c√n) (B,) of Grams (B, n, n): 0 for c·I."""
    n = gram.shape[-1]
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    return torch.linalg.matrix_norm(gram - c[:, None, None] * eye) / (c.clamp_min(torch.finfo(c.dtype).tiny)
                                                                      * math.sqrt(n))


@register_theory("wide")
class WideTheory(Theory):
    """Wide two-layer nets from i.i.d. inits: the closed form at λ = ±(c₁ + c₂), with a stated finite-width error.

    ``target_error``: the largest product error asked for; ``check`` refuses nets narrower than
    :func:`required_width` (8→8 at c₁ = c₂: N_h ≥ 392 at the default 5%).
    """

    exact = False

    def __init__(self, tau: float = 1.0, target_error: float = TARGET_ERROR) -> None:
        if not target_error > 0:
            raise ValueError(f"target_error must be positive, got {target_error}; e.g. 0.05 (5% product error).")
        self.tau, self.target_error = float(tau), float(target_error)

    def _check(self, stats: TaskStats, weights: list[Tensor]) -> str | None:
        if len(weights) != 2:
            return (f"theory wide is for two-layer nets, got L = {len(weights)}: deep wide nets follow a balanced "
                    f"chain only approximately (docs/theory.md §12); use theory=ode.")
        if stats.whitening_scale is None:
            return whitening_advice(stats.sigma_xx)
        w1, w2 = weights
        n_in, n_out, n_hidden = stats.n_in, stats.n_out, w1.shape[-2]
        if n_hidden <= max(n_in, n_out):
            return (f"N_h = {n_hidden} is not wide (theory wide needs N_h ≫ max(Ni, No) = {max(n_in, n_out)}); "
                    f"use theory=exact for λ-balanced nets with N_h = m, else theory=ode.")
        _, dev = balance(weights)
        if bool((dev[:, 0] <= BALANCE_RTOL * squared_size(weights)).any()):
            return ("the init is λ-balanced (W2ᵀW2 − W1W1ᵀ = λ̂I), not i.i.d.: its flow needs no width correction; "
                    "use theory=aligned if it is task-aligned, else theory=ode (or gram_ode).")
        c1, c2 = wide_scales(w1, w2)
        if bool(((c1 == 0) | (c2 == 0)).any()):
            return "a layer is zero (c₁ or c₂ = 0): the flow stays at that saddle; nothing to re-factorise."
        return self._isotropy_reason(w1, w2, c1, c2) or self._width_reason(n_in, n_out, n_hidden, c1, c2)

    def _isotropy_reason(self, w1: Tensor, w2: Tensor, c1: Tensor, c2: Tensor) -> str | None:
        n_hidden = w1.shape[-2]
        for gram, c, name in ((w1.mT @ w1, c1, "W1ᵀW1"), (w2 @ w2.mT, c2, "W2W2ᵀ")):
            n = gram.shape[-1]
            allowed = ISOTROPY_TOL * math.sqrt((n + 1) / n_hidden)
            rel = _anisotropy(gram, c)
            if bool((rel > allowed).any()):
                i = int(rel.argmax())
                return (f"{name} is not ≈ c·I (relative deviation {float(rel[i]):.3g} > {allowed:.3g}, network {i}): "
                        f"the init is not i.i.d.-like, so the wide map does not apply; use theory=gram_ode or ode.")
        return None

    def _width_reason(self, n_in: int, n_out: int, n_hidden: int, c1: Tensor, c2: Tensor) -> str | None:
        need = required_width(n_in, n_out, c1, c2, self.target_error)
        if bool((need <= n_hidden).all()):
            return None
        i = int(need.argmax())
        worst = float(expected_error(n_in, n_out, n_hidden, c1, c2, bound=True)[i])
        return (f"N_h = {n_hidden} is too narrow for target_error = {self.target_error:g}: the finite-width error "
                f"may reach {worst:.2g} (law K·√(n_eff/N_h), docs/theory.md §12); theory wide needs N_h ≥ "
                f"{int(need[i])} here, or a looser target_error; else use theory=gram_ode (exact at any width).")

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        w1, w2 = weights
        n_in, n_out, n_hidden = stats.n_in, stats.n_out, w1.shape[-2]
        c1, c2 = wide_scales(w1, w2)
        lam = wide_lambda(n_in, n_out, c1, c2)
        a0, g1_0, g2_0 = w2 @ w1, w1.mT @ w1, w2 @ w2.mT
        b1, b2 = refactorise(a0, lam, n_hidden=min(n_in, n_out), rotate=False)
        inner = ExactTheory(tau=self.tau)._predict(stats, [b1, b2], t)
        # The αJ shift cancels in a Gram's change: the wide net's own G(0) plus the balanced net's change.
        w1tw1 = g1_0[:, None] + (inner.w1tw1 - inner.w1tw1[:, :1])
        wwt_out = g2_0[:, None] + (inner.wwt_out - inner.wwt_out[:, :1])
        err = expected_error(n_in, n_out, n_hidden, c1, c2)
        sign = "−" if n_out > n_in else "+"
        note = (f"wide: A(0) re-factorised at λ = {sign}(c₁ + c₂) = {_span(lam, '.4g')} (c₁ = ‖W1‖²/Ni, "
                f"c₂ = ‖W2‖²/No) with N_h = m, closed form of theory exact; expected product error "
                f"{_span(err, '.2g')} at N_h = {n_hidden} (theory_expected_err; law k·√(n_eff/N_h), "
                f"docs/theory.md §12).")
        pred = from_grams(stats, inner.product, w1tw1, wwt_out, g1_0, g2_0, t, theory=self.name,
                          final_loss=inner.final_loss, converges_to_saddle=inner.converges_to_saddle,
                          notes=[note, *inner.notes])
        pred.expected_error = err
        pred.ode_fallback = inner.ode_fallback
        return pred
