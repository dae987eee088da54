"""The theory plug-in interface: task statistics in, a :class:`Prediction` out.

Conventions (docs/theory.md §1): Σxx = XᵀX/P (Ni, Ni), Σyx = YᵀX/P (No, Ni), loss = 1/(2P)‖ŷ − Y‖², time
t = step·lr. Weights are a list [W1, …, WL] with W_l (B, out_l, in_l), batch first; unbatched (out, in) layers
are treated as B = 1. A time grid is (T,), shared by the batch, or (B, T), one grid per network.

Precision policy (for the whole project; lazyrich.train follows point 2):
1. init builds float64 weights and reads a float32 λ as the decimal it was typed as; metrics keep their inputs' dtype.
2. The trainer trains and reports in the dtype of the weights it is given (``trainer.dtype``); it never promotes.
3. Theories compute in float64: lower-precision inputs are promoted with one PrecisionWarning, a check that fails on
   them names precision as the cause, and the experiment layer warns on a float32 run and adds 1000·u to the
   agreement tolerance (``theory_rtol``).

NaN or inf in any input is a ``ValueError`` that names the input.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import torch
from torch import Tensor

from lazyrich import metrics
from lazyrich.device import DTYPE, resolve_device
from lazyrich.train import TrainOptions

__all__ = [
    "WHITENING_RTOL",
    "PrecisionWarning",
    "Prediction",
    "TaskStats",
    "Theory",
    "TheoryNotApplicable",
    "as_batched",
    "exprel",
    "finite_or_raise",
    "loss_from_product",
    "low_precision_reason",
    "min_width",
    "promote",
    "weight_scale",
    "time_grid",
    "whitening_advice",
]

WHITENING_RTOL = 1e-10
"""Σxx counts as c·I when max|Σxx − cI| ≤ 1e-10·c: the same test as ``Task.whitening_scale``."""


class TheoryNotApplicable(ValueError):
    """A theory's assumptions fail for these weights or this task; the message says which, and the fix."""


class PrecisionWarning(UserWarning):
    """A lower-precision input was promoted to float64 for a theory (the precision policy above)."""


def finite_or_raise(name: str, value: Tensor) -> Tensor:
    """``value`` unchanged; a ValueError naming ``name`` if it holds NaN or inf."""
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        bad = "NaN" if bool(torch.isnan(value).any()) else "inf"
        raise ValueError(f"{name} contains {bad}; a theory needs finite inputs (check the task and the weights).")
    return value


def promote(value: Any, name: str) -> Tensor:
    """``value`` as a finite float64 tensor; a lower-precision float input gives one :class:`PrecisionWarning`."""
    value = torch.as_tensor(value) if hasattr(value, "dtype") else torch.as_tensor(value, dtype=DTYPE)
    if value.is_floating_point() and value.dtype != DTYPE:
        warnings.warn(f"{name} is {str(value.dtype).removeprefix('torch.')}; the theory promotes it to float64, "
                      f"so it predicts the dynamics of the rounded values (pass float64 to avoid this).",
                      PrecisionWarning, stacklevel=3)
    return finite_or_raise(name, value.to(DTYPE))


def low_precision_reason(dtypes: Sequence[torch.dtype]) -> str | None:
    """The precision cause to name first when a check fails on weights that arrived below float64."""
    low = sorted({str(d).removeprefix("torch.") for d in dtypes if d != DTYPE})
    if not low:
        return None
    eps = max(torch.finfo(d).eps for d in dtypes)
    return (f"{'/'.join(low)} weights: promote to float64 (init and train in float64); their rounding "
            f"(~{eps:.1g} relative) exceeds the theories' 1e-8 tolerances; the check said: ")


def exprel(z: Tensor) -> Tensor:
    """expm1(z)/z, equal to 1 at z = 0; finite for every z ≤ 0 (the only arguments the theories pass)."""
    zero = z == 0
    z_safe = torch.where(zero, torch.ones_like(z), z)
    return torch.where(zero, torch.ones_like(z), torch.expm1(z_safe) / z_safe)


def whitening_advice(sigma_xx: Tensor) -> str:
    """The human reason a theory that needs Σxx = c·I (A1) refuses this Σxx."""
    c = float(torch.diagonal(sigma_xx).mean())
    dev = float((sigma_xx - c * torch.eye(sigma_xx.shape[-1], dtype=sigma_xx.dtype,
                                          device=sigma_xx.device)).abs().max())
    return (f"inputs are not whitened (A1): Σxx is not a multiple of I (max |Σxx − cI| = {dev:.3g} with "
            f"c = tr Σxx/Ni = {c:.3g}). Whiten the task first (task.whiten(), or config task.whiten=true), "
            f"or use theory=ode, which handles any Σxx.")


def _svd_with_signs(sigma_yx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    # The sign convention of Task.svd (largest |entry| of each of V's first m columns positive), so that a
    # TaskStats built from raw data sees the same task basis as the Task it came from.
    u, s, vh = torch.linalg.svd(sigma_yx, full_matrices=True)
    v, u = vh.mT.clone(), u.clone()
    m = s.shape[0]
    idx = v[:, :m].abs().argmax(dim=0)
    sign = torch.sign(v[idx, torch.arange(m, device=v.device)])
    sign[sign == 0] = 1.0
    v[:, :m] *= sign
    u[:, :m] *= sign
    return u, s, v


@dataclass(eq=False)
class TaskStats:
    """The second-order statistics a theory needs: Σxx (Ni, Ni), Σyx (No, Ni), Σyy (No, No) and P.

    ``task_svd`` = (U (No, No), S (m,), V (Ni, Ni)), Σyx = U_m diag(S) V_mᵀ; taken from the task when it has
    one, so that "aligned" means aligned in the very basis the trainer reports singular values in. ``heldout``:
    the statistics Σxx*, Σyx*, Σyy* of held-out data (a TaskStats), from which a theory's ``test_loss`` comes.
    """

    sigma_xx: Tensor
    sigma_yx: Tensor
    sigma_yy: Tensor
    P: int
    task_svd: tuple[Tensor, Tensor, Tensor] | None = field(default=None, repr=False)
    heldout: TaskStats | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        dev = torch.as_tensor(self.sigma_yx).device
        self.sigma_xx = promote(self.sigma_xx, "Σxx (sigma_xx)").to(dev)
        self.sigma_yx = promote(self.sigma_yx, "Σyx (sigma_yx)").to(dev)
        self.sigma_yy = promote(self.sigma_yy, "Σyy (sigma_yy)").to(dev)
        self.P = int(self.P)
        no, ni = self.sigma_yx.shape
        if self.sigma_xx.shape != (ni, ni) or self.sigma_yy.shape != (no, no):
            raise ValueError(f"inconsistent statistics: Σyx {tuple(self.sigma_yx.shape)}, Σxx "
                             f"{tuple(self.sigma_xx.shape)}, Σyy {tuple(self.sigma_yy.shape)}.")
        if self.task_svd is None:
            self.task_svd = _svd_with_signs(self.sigma_yx)
        else:
            self.task_svd = tuple(torch.as_tensor(x, dtype=DTYPE, device=dev) for x in self.task_svd)

    @classmethod
    def from_data(cls, X: Tensor, Y: Tensor) -> TaskStats:
        """Statistics of X (P, Ni) and Y (P, No), one sample per row."""
        X, Y = torch.as_tensor(X, dtype=DTYPE), torch.as_tensor(Y, dtype=DTYPE)
        P = X.shape[0]
        return cls(X.mT @ X / P, Y.mT @ X / P, Y.mT @ Y / P, P)

    @classmethod
    def from_task(cls, task: Any) -> TaskStats:
        """Statistics of any object with sigma_xx, sigma_yx, sigma_yy and P (and maybe svd)."""
        if isinstance(task, TaskStats):
            return task
        missing = [a for a in ("sigma_xx", "sigma_yx", "sigma_yy", "P") if not hasattr(task, a)]
        if missing:
            raise TypeError(f"{type(task).__name__} has no {', '.join(missing)}; a theory needs the task's "
                            f"sigma_xx, sigma_yx, sigma_yy and P (see TaskStats.from_data).")
        svd = getattr(task, "svd", None)
        held = getattr(task, "heldout", None)
        return cls(task.sigma_xx, task.sigma_yx, task.sigma_yy, task.P,
                   task_svd=tuple(svd) if isinstance(svd, tuple | list) and len(svd) == 3 else None,
                   heldout=None if held is None else cls.from_task(held))

    def to(self, device: torch.device | str) -> TaskStats:
        """The same statistics on ``device``."""
        if self.sigma_yx.device == torch.device(device):
            return self
        return TaskStats(self.sigma_xx.to(device), self.sigma_yx.to(device), self.sigma_yy.to(device), self.P,
                         task_svd=tuple(x.to(device) for x in self.task_svd),
                         heldout=None if self.heldout is None else self.heldout.to(device))

    @property
    def n_in(self) -> int:
        return self.sigma_yx.shape[1]

    @property
    def n_out(self) -> int:
        return self.sigma_yx.shape[0]

    @property
    def svd(self) -> tuple[Tensor, Tensor, Tensor]:
        """(U (No, No), S (m,) descending, V (Ni, Ni)) with Σyx = U_m diag(S) V_mᵀ."""
        return self.task_svd

    @cached_property
    def whitening_scale(self) -> float | None:
        """c if Σxx = c·I (max-abs, relative ``WHITENING_RTOL``) with c > 0, else None."""
        c = float(torch.diagonal(self.sigma_xx).mean())
        if not c > 0:
            return None
        eye = torch.eye(self.n_in, dtype=DTYPE, device=self.sigma_xx.device)
        return c if float((self.sigma_xx - c * eye).abs().max()) <= WHITENING_RTOL * c else None

    @cached_property
    def optimum(self) -> tuple[Tensor, Tensor]:
        """(W* = Σyx Σxx⁺, L_min), cached for :func:`loss_from_product`."""
        return metrics.least_squares_optimum(self.sigma_xx, self.sigma_yx, self.sigma_yy)

    def rank_limited_min_loss(self, rank: int) -> Tensor:
        """Least loss at rank ≤ ``rank``: L_min + ½Σ_{i>rank} σ_i², σ the singular values of Σyx Σxx^{+½}."""
        evals, evecs = torch.linalg.eigh(self.sigma_xx)
        keep = evals > evals.abs().max() * self.n_in * torch.finfo(DTYPE).eps
        inv_sqrt = torch.where(keep, evals.clamp_min(torch.finfo(DTYPE).tiny).rsqrt(), 0.0)
        sig = torch.linalg.svdvals(self.sigma_yx @ (evecs * inv_sqrt) @ evecs.mT)
        return self.optimum[1] + 0.5 * (sig[rank:] ** 2).sum()


def loss_from_product(product: Tensor, stats: TaskStats) -> Tensor:
    """Loss ½tr(WΣxxWᵀ) − tr(WΣyxᵀ) + ½tr Σyy = 1/(2P)‖WXᵀ − Yᵀ‖² of W (…, No, Ni), shape (…); any Σxx.

    Evaluated as ½tr(EΣxxEᵀ) + L_min with E = W − W* (``metrics.loss_from_product``), free of cancellation.
    """
    return metrics.loss_from_product(product, stats.sigma_xx, stats.sigma_yx, stats.sigma_yy,
                                     optimum=stats.optimum)


def as_batched(weights: Sequence[Tensor]) -> list[Tensor]:
    """Weights as float64 (B, out, in) layers; unbatched (out, in) layers get B = 1; NaN/inf is refused."""
    ws = [torch.as_tensor(w) for w in weights]
    if len(ws) < 2:
        raise ValueError(f"a theory needs at least two layers, got {len(ws)}.")
    if all(w.dim() == 2 for w in ws):
        ws = [w.unsqueeze(0) for w in ws]
    if any(w.dim() != 3 for w in ws) or len({w.shape[0] for w in ws}) != 1:
        raise ValueError(f"weights must all be (B, out, in) with one B, got {[tuple(w.shape) for w in ws]}.")
    for lo, hi in zip(ws[:-1], ws[1:], strict=True):
        if hi.shape[-1] != lo.shape[-2]:
            raise ValueError(f"layer widths do not chain: {[tuple(w.shape[1:]) for w in ws]}.")
    low = sorted({str(w.dtype).removeprefix("torch.") for w in ws if w.is_floating_point() and w.dtype != DTYPE})
    if low:  # one warning for the whole list, not one per layer
        warnings.warn(f"weights are {'/'.join(low)}; the theory promotes them to float64, so it predicts the "
                      f"dynamics of the rounded values (init and train in float64 to avoid this).",
                      PrecisionWarning, stacklevel=3)
    return [finite_or_raise(f"weights W{l}", w.to(DTYPE)) for l, w in enumerate(ws, start=1)]


def time_grid(t: Tensor | Sequence[float] | float, batch: int, device: torch.device | None = None) -> Tensor:
    """A time grid as a (B, T) float64 tensor: (T,) is shared by the batch, (B, T) is per network."""
    t = promote(t, "t").to(device) if hasattr(t, "dtype") else torch.as_tensor(t, dtype=DTYPE, device=device)
    if t.dim() == 0:
        t = t.reshape(1)
    if t.dim() == 1:
        t = t.unsqueeze(0).expand(batch, -1)
    if t.dim() != 2 or t.shape[0] not in (1, batch):
        raise ValueError(f"t must be (T,) or (B, T) with B = {batch}, got shape {tuple(t.shape)}.")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError("t must be finite and ≥ 0 (time t = step·lr from the initial weights).")
    return t.expand(batch, -1).contiguous()


@dataclass
class Prediction:
    """A theory's prediction for a batch of B networks on a (B, T) time grid; float64, batch first.

    ``product`` (B,T,No,Ni) = W_L⋯W_1; ``w1tw1`` (B,T,Ni,Ni) = W1ᵀW1; ``wwt_out`` (B,T,No,No) = W_LW_Lᵀ;
    ``loss``, ``kernel_distance`` (1 − cos(K(0), K(t)), Fort et al.) and ``ntk_rel_change``
    (‖K(t)−K(0)‖/‖K(0)‖) are (B,T); ``svals`` (B,T,m) = diag(Ũ_mᵀ W(t) Ṽ_m), signed;
    ``converges_to_saddle`` (B,) bool and ``final_loss`` (B,) describe t → ∞; ``ode_fallback`` (B,) bool, when
    set, marks the networks a closed-form theory handed to the ode theory (its notes say why); ``escape_time``
    (B, m), when set (theory ``escape``), is when each saddle-bound mode leaves the saddle under GD (NaN: never
    bound); ``expected_error`` (B,), when set (an approximate theory such as ``wide``), is the product error the
    theory expects of itself (relative, Frobenius, max over t); ``test_loss`` (B, T), when the task has held-out
    data, is the held-out loss of ``product`` (:meth:`Theory.predict` computes it, the same way for every theory).
    """

    t: Tensor
    product: Tensor
    w1tw1: Tensor
    wwt_out: Tensor
    loss: Tensor
    kernel_distance: Tensor
    ntk_rel_change: Tensor
    svals: Tensor
    converges_to_saddle: Tensor
    final_loss: Tensor
    theory: str
    notes: list[str] = field(default_factory=list)
    ode_fallback: Tensor | None = None
    escape_time: Tensor | None = None
    expected_error: Tensor | None = None
    test_loss: Tensor | None = None

    _TENSORS: ClassVar[tuple[str, ...]] = ("t", "product", "w1tw1", "wwt_out", "loss", "kernel_distance",
                                           "ntk_rel_change", "svals", "converges_to_saddle", "final_loss")

    @property
    def batch(self) -> int:
        return self.t.shape[0]

    @classmethod
    def scatter(cls, parts: Sequence[tuple[Tensor, Prediction]], batch: int, theory: str) -> Prediction:
        """Merge predictions for disjoint index sets (idx (b,), part) of a batch of ``batch`` networks."""
        first = parts[0][1]
        notes = [n for _, part in parts for n in part.notes]
        fallback = first.t.new_zeros(batch, dtype=torch.bool)
        for idx, part in parts:
            if part.ode_fallback is not None:
                fallback[idx] = part.ode_fallback.to(fallback.device)
        if len(parts) == 1 and torch.equal(parts[0][0].cpu(), torch.arange(batch)):  # one part: no copies
            out = {name: getattr(first, name) for name in cls._TENSORS}
        else:
            out = {name: getattr(first, name).new_zeros((batch, *getattr(first, name).shape[1:]))
                   for name in cls._TENSORS}
            for idx, part in parts:
                for name in cls._TENSORS:
                    out[name][idx] = getattr(part, name)
        return cls(**out, theory=theory, notes=list(dict.fromkeys(notes)), ode_fallback=fallback)


class Theory:
    """A prediction of the learning dynamics. Subclasses set ``name``, implement ``_check`` and ``_predict``.

    ``check`` returns None when the theory applies, else the human reason (which assumption failed, and the
    fix); ``predict`` raises :class:`TheoryNotApplicable` with that reason.

    Every theory also states what it predicts, so that it can be held to it (tests/test_theory_contract.py runs
    every registered theory, plug-ins included, through the same checks): ``dynamics`` is ``"flow"`` (gradient
    flow, the lr → 0 limit of full-batch GD) or ``"gd"`` (full-batch GD at the step passed as its ``lr``), and
    ``exact`` says whether it equals those dynamics up to numerical error wherever ``check`` accepts (True) or is an
    approximation or a comparison curve (False).

    Training options (:class:`lazyrich.train.TrainOptions`: layer rates, an output multiplier α, weight decay)
    reach every theory as ``training``: the registry sets it from the options ``layer_lr``, ``output_scale`` and
    ``weight_decay`` (:func:`lazyrich.theory.registry.get_theory`). ``modelled`` names the ones a theory predicts;
    ``check`` refuses any other that is set, in one line. With ``rescaled``, layer rates and α go through the
    change of variables U_l = k_l·W_l in time κ·t (docs/theory.md §11): ``_check`` and ``_predict`` see U on the
    grid κ·t, predict the plain dynamics, and the Grams are mapped back to W. Weight decay never goes through it:
    a theory that models it reads ``training`` in ``_predict``, on the weights W themselves.
    """

    name: ClassVar[str] = ""
    dynamics: ClassVar[str] = "flow"
    exact: ClassVar[bool] = True
    modelled: ClassVar[frozenset[str]] = frozenset()
    rescaled: ClassVar[bool] = False
    training: TrainOptions = TrainOptions()  # an instance's own once the registry sets it

    def check(self, stats: Any, weights: Sequence[Tensor], *, device: str | None = None) -> str | None:
        """None when the theory applies to these weights on this task, else the reason (a low input precision
        that the failure comes from is named first)."""
        dtypes = [torch.as_tensor(w).dtype for w in weights]
        stats, weights = _prepare(stats, weights, device)
        return self._unmodelled() or self._reason(stats, self._standard(weights)[0], dtypes)

    def _unmodelled(self) -> str | None:
        """The one-line reason this theory refuses the training options it does not model, or None."""
        missing = [name for name in self.training.active if name not in self.modelled]
        if not missing:
            return None
        return (f"{self.name} does not model {self.training.describe(missing)}: use theory=auto (it picks one "
                f"that does) or theory=ode (every option, any init).")

    def _reason(self, stats: TaskStats, weights: list[Tensor], dtypes: list[torch.dtype]) -> str | None:
        """``_check`` on prepared inputs, a low input precision named first as the likely cause."""
        reason = self._check(stats, weights)
        cause = low_precision_reason(dtypes) if reason is not None else None
        return reason if cause is None else cause + reason

    def predict(self, stats: Any, weights: Sequence[Tensor], t: Tensor | Sequence[float], *,
                device: str | None = None) -> Prediction:
        """The prediction on the grid t ((T,) or (B, T)); ``device`` (auto | cpu | cuda) moves the computation,
        which otherwise runs where the weights are. With held-out statistics (``stats.heldout``) it carries
        ``test_loss``, the held-out loss of the predicted product."""
        dtypes = [torch.as_tensor(w).dtype for w in weights]
        stats, weights = _prepare(stats, weights, device)
        reason = self._unmodelled() or self._reason(stats, self._standard(weights)[0], dtypes)
        if reason is not None:
            raise TheoryNotApplicable(f"theory {self.name!r} does not apply: {reason}")
        pred = self._solve(stats, weights, time_grid(t, weights[0].shape[0], weights[0].device))
        if stats.heldout is not None:
            pred.test_loss = loss_from_product(pred.product, stats.heldout)
        return pred

    def _standard(self, weights: list[Tensor]) -> tuple[list[Tensor], Tensor | None, Tensor | None]:
        """(U, κ (B,), k (B, L)) when layer rates or α go through the change of variables, else (W, None, None)."""
        options = self.training
        if not (self.rescaled and options.rescales and options.weight_decay is None):
            return weights, None, None
        kappa, k = (x.to(weights[0]) for x in options.standard(weights[0].shape[0], len(weights)))
        return [w * k[:, l, None, None] for l, w in enumerate(weights)], kappa, k

    def _solve(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        """``_predict``, through the change of variables when it applies (class docstring)."""
        standard, kappa, k = self._standard(weights)
        if kappa is None:
            return self._predict(stats, weights, t)
        pred = grams_of_weights(self._predict(stats, standard, kappa[:, None] * t), k)
        pred.t = t
        pred.notes.append(f"{self.name}: {self.training.describe()} by the change of variables U_l = k_l·W_l, time "
                          f"κ·t with κ in [{float(kappa.min()):.4g}, {float(kappa.max()):.4g}] (docs: theory §11).")
        return pred

    def _check(self, stats: TaskStats, weights: list[Tensor]) -> str | None:
        raise NotImplementedError

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def grams_of_weights(pred: Prediction, k: Tensor) -> Prediction:
    """``pred`` of the standard variables U_l = k_l·W_l (k (B, L)) with its Grams turned into those of W, in place:
    W1ᵀW1 = U1ᵀU1/k_1², W_LW_Lᵀ = U_LU_Lᵀ/k_L² (the product, losses and kernel figures are U's by definition)."""
    pred.w1tw1 = pred.w1tw1 / (k[:, 0] ** 2)[:, None, None, None]
    pred.wwt_out = pred.wwt_out / (k[:, -1] ** 2)[:, None, None, None]
    return pred


def _prepare(stats: Any, weights: Sequence[Tensor], device: str | None = None) -> tuple[TaskStats, list[Tensor]]:
    weights = as_batched(weights)
    if device is not None:
        target = resolve_device(device)
        weights = [w.to(target) for w in weights]
    stats = TaskStats.from_task(stats).to(weights[0].device)
    if weights[0].shape[-1] != stats.n_in or weights[-1].shape[-2] != stats.n_out:
        raise ValueError(f"weights map {weights[0].shape[-1]} → {weights[-1].shape[-2]} but the task has "
                         f"Ni = {stats.n_in}, No = {stats.n_out}.")
    return stats, weights


def min_width(weights: Sequence[Tensor]) -> int:
    """The largest rank the product of these layers can have."""
    return min(min(w.shape[-2:]) for w in weights)


def squared_size(weights: Sequence[Tensor]) -> Tensor:
    """Σ_l ‖W_l‖_F² per network, (B,): the size a balance λ̂ is compared with."""
    return sum(torch.sum(w * w, dim=(-2, -1)) for w in weights)


def weight_scale(weights: Sequence[Tensor]) -> Tensor:
    """√(Σ_l ‖W_l‖_F²) per network, (B,): the size that relative tolerances refer to."""
    return torch.sqrt(squared_size(weights))


def balance_magnitude(weights: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """(|λ̂| (B,), Σ_l ‖W_l‖_F² (B,)) of two-layer nets: how far from λ = 0, and the size that is relative to."""
    from lazyrich.init import balance  # local: init does not import the theories

    return balance(weights)[0][..., 0].abs(), squared_size(weights)

