"""How a batch of networks moves: one gradient step for B stacked networks, a log schedule in t, divergence.

Weights are [W1, …, WL] with W_l of shape (B, out_l, in_l): the batch axis is the sweep (λ × seed × lr), and each
step is a handful of batched matmuls, never a Python loop over networks. Time is t = step·lr; every network logs
on the same t grid, so networks with different learning rates line up (and stop at the same t_max).

Linear nets trained full-batch use the sufficient statistics Σxx, Σyx, so a step costs O(L·No·Ni·Nh) whatever P
is. Nonlinear nets (``activation``) and minibatch SGD (``batch_size``) take the data path with autograd.

Beyond plain GD on the loss (:class:`TrainOptions`, each per network): per-layer step multipliers, an output
multiplier α (ŷ = α·W_L⋯W_1x) and weight decay (L2 in the loss). Without them the step is the plain one, unchanged.
With rates or α, the recorder measures the network in its standard variables U_l = k_l·W_l (docs/theory.md §11),
the variables every theory predicts: the product logged is the network's function α·W_L⋯W_1, the kernel the
one that drives it; the Grams and norms are mapped back to the weights W.

:func:`train` is a few parts, one job each: the input checks, the schedule (:func:`log_grid` → :func:`plan_steps`
→ the steps at which each network logs and stops), the task on the training device, the recorder, the divergence
guard, the step (fused statistics path or autograd) and a short loop that ties them together.

Precision: the trainer trains and reports in the dtype of the weights it is given (``trainer.dtype``) and
never promotes; the whole policy, theories included, is in :mod:`lazyrich.theory.base`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from lazyrich import metrics
from lazyrich.device import resolve_device

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": torch.relu, "tanh": torch.tanh}

__all__ = ["ACTIVATIONS", "DEFAULT_MAX_STEPS", "TRAINING_OPTIONS", "TrainOptions", "Trajectory", "log_events",
           "log_grid", "lr_per_network", "plan_steps", "renumbered", "step_budget", "train"]


DEFAULT_MAX_STEPS = 10_000_000
"""Refuse a training run past this many GD steps per network (≈ minutes at tens of µs a step) unless raised."""

_BUDGET: ContextVar[int] = ContextVar("lazyrich_max_steps", default=DEFAULT_MAX_STEPS)


@contextmanager
def step_budget(max_steps: int | None) -> Iterator[None]:
    """Within the block, :func:`train` calls without ``max_steps`` refuse runs past ``max_steps`` (None: keep)."""
    token = _BUDGET.set(int(max_steps)) if max_steps is not None else None
    try:
        yield
    finally:
        if token is not None:
            _BUDGET.reset(token)


def plan_steps(grid: Tensor, lr: Tensor, max_steps: int | None = None) -> Tensor:
    """The GD step (B, T) at which each network logs each t of ``grid``, refused when the run is impossible.

    Refused: an lr whose first step already passes t_max (nothing would be trained), and more than
    ``max_steps`` steps per network (default: the current :func:`step_budget`).
    """
    t_max = float(grid[-1])
    worst = float(lr.max())
    if worst > t_max:
        raise ValueError(f"lr={worst:g} overshoots: one step already passes t_max={t_max:g}, so nothing would be "
                         f"trained; lower lr well below t_max (GD follows the flow only for small lr), or raise "
                         f"t_max.")
    budget = _BUDGET.get() if max_steps is None else int(max_steps)
    need = t_max / float(lr.min())
    if need > budget:
        raise ValueError(f"training to t_max={t_max:g} at lr={float(lr.min()):g} takes {need:.3g} steps per "
                         f"network, past the budget max_steps={budget:.3g}: raise the budget (trainer.max_steps, "
                         f"or max_steps for lazyrich bench), or raise lr / lower t_max.")
    return torch.round(grid.unsqueeze(0) / lr.unsqueeze(1)).long()


def log_grid(t_max: float, n_log: int = 101, spacing: str = "linear", t_min: float | None = None) -> Tensor:
    """The t values (n_log,) at which metrics are recorded; starts at 0. ``log`` spacing is geometric from t_min."""
    if not (t_max > 0 and math.isfinite(t_max)):
        raise ValueError(f"t_max must be positive and finite, got {t_max}.")
    if n_log < 2:
        raise ValueError(f"n_log must be at least 2 (t = 0 and t_max), got {n_log}.")
    if spacing == "linear":
        return torch.linspace(0.0, t_max, n_log, dtype=torch.float64)
    if spacing == "log":
        t_min = t_max * 1e-3 if t_min is None else t_min
        return torch.cat([torch.zeros(1, dtype=torch.float64),
                          torch.logspace(math.log10(t_min), math.log10(t_max), n_log - 1, dtype=torch.float64)])
    raise ValueError(f"spacing must be 'linear' or 'log', got {spacing!r}.")


@dataclass
class Trajectory:
    """What one training run recorded, batch first.

    ``scalars`` maps metric names (see :func:`lazyrich.metrics.snapshot`) to (B, T); ``matrices`` maps
    ``product``, ``w1tw1``, ``wwt_out`` to (B, Tm, …) at the log points ``matrix_index`` (Tm,). ``t`` and ``step``
    are (B, T); ``status`` is "ok" or "diverged" per network, with ``diverged_step`` (−1 when it did not).
    """

    t: Tensor
    step: Tensor
    scalars: dict[str, Tensor]
    matrices: dict[str, Tensor]
    matrix_index: Tensor
    lr: Tensor
    status: list[str]
    diverged_step: Tensor
    init_weights: list[Tensor]
    final_weights: list[Tensor]
    messages: list[str] = field(default_factory=list)

    @property
    def batch(self) -> int:
        return self.t.shape[0]

    def rows(self, start: int, stop: int) -> Trajectory:
        """Networks ``start`` … ``stop − 1`` as a trajectory of their own (views, not copies), numbered from 0,
        with the messages about them."""
        part = slice(start, stop)
        about = [m for m in self.messages if start <= _network_of(m) < stop]
        return Trajectory(t=self.t[part], step=self.step[part],
                          scalars={k: v[part] for k, v in self.scalars.items()},
                          matrices={k: v[part] for k, v in self.matrices.items()}, matrix_index=self.matrix_index,
                          lr=self.lr[part], status=self.status[part], diverged_step=self.diverged_step[part],
                          init_weights=[w[part] for w in self.init_weights],
                          final_weights=[w[part] for w in self.final_weights],
                          messages=[renumbered(m, -start) for m in about])


_NETWORK = re.compile(r"^network (\d+)")


def _network_of(message: str) -> int:
    """The network a divergence message is about (its index in the batch that trained it)."""
    return int(_NETWORK.match(message)[1])


def renumbered(message: str, shift: int) -> str:
    """A divergence message about network b as one about network b + ``shift`` (e.g. batch-wide, from a chunk's
    own numbering)."""
    return _NETWORK.sub(lambda m: f"network {int(m[1]) + shift}", message, count=1)


def _checked_weights(task, weights: Sequence[Tensor], device: str | torch.device | None) -> list[Tensor]:
    """Detached copies of [W1, …, WL] on the training device; refused unless they chain from n_in to n_out."""
    target = resolve_device(device) if device is not None else None
    weights = [torch.as_tensor(w) for w in weights]  # numpy arrays too
    dtypes = sorted({str(w.dtype).removeprefix("torch.") for w in weights})
    if any(not w.is_floating_point() for w in weights) or len(dtypes) > 1:
        raise TypeError(f"weights must share one floating dtype (float64 to compare with a theory), got "
                        f"{'/'.join(dtypes)}; convert every layer, e.g. [w.double() for w in weights].")
    weights = [w.detach().to(target).clone() if target is not None else w.detach().clone() for w in weights]
    if len(weights) < 1 or any(w.dim() != 3 for w in weights):
        raise ValueError("weights must be a list of stacked layers, each (B, out, in); add a batch axis.")
    n_batch = weights[0].shape[0]
    if n_batch == 0:
        raise ValueError("the batch is empty (weights have B = 0 networks); pass at least one network.")
    for l, (lo, hi) in enumerate(zip(weights[:-1], weights[1:], strict=True), start=1):
        if hi.shape[2] != lo.shape[1] or hi.shape[0] != n_batch:
            raise ValueError(f"layer shapes do not chain: W{l} is {tuple(lo.shape)}, W{l + 1} is {tuple(hi.shape)}.")
    if weights[0].shape[2] != task.n_in or weights[-1].shape[1] != task.n_out:
        raise ValueError(f"the network maps {weights[0].shape[2]} → {weights[-1].shape[1]} but task "
                         f"{task.name!r} has n_in={task.n_in}, n_out={task.n_out}.")
    return weights


def _activation(name: str | None) -> Callable[[Tensor], Tensor] | None:
    """The hidden-layer nonlinearity named ``name``; None for a linear network (None, "none" or "linear")."""
    if name in (None, "none", "linear"):
        return None
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r} is unknown; choose one of {['none', *ACTIVATIONS]}.")
    return ACTIVATIONS[name]


def lr_per_network(lr: float | Sequence[float] | Tensor, n_batch: int) -> Tensor:
    """The learning rate of each network, float64 (B,): one value broadcast, or one per network."""
    lr_t = torch.tensor(np.asarray(lr, dtype=np.float64)).reshape(-1)
    lr_t = lr_t.expand(n_batch).clone() if lr_t.numel() == 1 else lr_t
    if lr_t.shape != (n_batch,) or not bool((lr_t > 0).all() & torch.isfinite(lr_t).all()):
        raise ValueError(f"lr must be positive and finite, one value or one per network (B={n_batch}); got {lr}.")
    return lr_t


TRAINING_OPTIONS = ("layer_lr", "output_scale", "weight_decay")
"""The step options beyond plain GD (:class:`TrainOptions`), by their trainer key (``trainer.<name>``)."""

_PLAIN = {"layer_lr": 1.0, "output_scale": 1.0, "weight_decay": 0.0}
_WHAT = {"layer_lr": "per-layer learning rates", "output_scale": "an output multiplier",
         "weight_decay": "weight decay"}


def _option_tensor(name: str, value: Any) -> Tensor | None:
    """``value`` as a float64 tensor, checked; None when it is the plain setting everywhere (or None)."""
    if value is None:
        return None
    out = torch.tensor(np.array(value.detach().cpu().numpy() if isinstance(value, Tensor) else value,
                                dtype=np.float64))
    positive = name != "weight_decay"
    if not bool(torch.isfinite(out).all()) or bool((out <= 0).any() if positive else (out < 0).any()):
        raise ValueError(f"trainer.{name} must be finite and {'positive' if positive else '≥ 0'}, got {value}.")
    return None if bool((out == _PLAIN[name]).all()) else out


def _expand(name: str, value: Tensor | None, shape: tuple[int, ...]) -> Tensor | None:
    """``value`` broadcast to ``shape`` ((B, L): one value, one per layer or one row per network; (B,): one value
    or one per network); None stays None."""
    if value is None:
        return None
    if value.numel() == 1:
        return value.reshape(()).expand(shape).clone()
    if len(shape) == 2 and value.shape == shape[1:]:
        return value.expand(shape).clone()
    if value.shape != shape:
        each = "one value per layer, " if len(shape) == 2 else ""
        raise ValueError(f"trainer.{name} has shape {tuple(value.shape)}: give one value, {each}or one per network "
                         f"(shape {shape}).")
    return value


@dataclass(frozen=True)
class TrainOptions:
    """What a step does besides plain full-batch GD on the loss; None is the plain setting.

    ``layer_lr`` (L,) or (B, L): the multiplier m_l of layer l's step (it moves by lr·m_l; t = step·lr is kept);
    ``output_scale`` () or (B,): α in ŷ = α·W_L⋯W_1x; ``weight_decay`` () or (B,): γ of the L2 term
    (γ/2)Σ_l‖W_l‖²_F in the loss, so a GD step is W_l ← W_l − lr·m_l(∇_l L + γW_l).

    The change of variables (docs/theory.md §11): with κ = α^{2/L}(Π_l m_l)^{1/L} and k_l = √(κ/m_l), the
    weights U_l = k_l·W_l have U_L⋯U_1 = α·W_L⋯W_1 and follow the plain flow (and plain GD at step κ·lr) in time
    κ·t; weight decay becomes a per-layer decay γ·m_l of U_l. V_l = U_l/α^{1/L} are the weights in units of the
    rates: W_l = ρ_l·V_l with ρ_l = α^{1/L}/k_l, and V_{l+1}ᵀV_{l+1} − V_lV_lᵀ is what a balanced init sets.
    """

    layer_lr: Tensor | None = None
    output_scale: Tensor | None = None
    weight_decay: Tensor | None = None

    @classmethod
    def of(cls, layer_lr: Any = None, output_scale: Any = None, weight_decay: Any = None) -> TrainOptions:
        """Checked options from numbers, lists, arrays or tensors; values of the plain setting become None."""
        return cls(*(_option_tensor(name, value) for name, value in
                     zip(TRAINING_OPTIONS, (layer_lr, output_scale, weight_decay), strict=True)))

    @property
    def active(self) -> tuple[str, ...]:
        """The names of the options set (not the plain setting)."""
        return tuple(name for name in TRAINING_OPTIONS if getattr(self, name) is not None)

    @property
    def rescales(self) -> bool:
        """True when layer rates or α are set: the dynamics are those of U_l = k_l·W_l in time κ·t."""
        return self.layer_lr is not None or self.output_scale is not None

    def describe(self, names: Sequence[str] | None = None) -> str:
        """'weight decay (trainer.weight_decay = 0.01)'-style text of the options ``names`` (default: all set)."""
        parts = []
        for name in self.active if names is None else names:
            values = sorted({round(float(v), 12) for v in getattr(self, name).reshape(-1).tolist()})
            shown = ", ".join(f"{v:g}" for v in values[:4]) + (", …" if len(values) > 4 else "")
            parts.append(f"{_WHAT[name]} (trainer.{name} = {shown})")
        return " and ".join(parts)

    def per_network(self, batch: int, n_layers: int) -> TrainOptions:
        """The options as (B, L), (B,), (B,) float64 tensors (None kept); a size that fits neither is refused."""
        return TrainOptions(_expand("layer_lr", self.layer_lr, (batch, n_layers)),
                            _expand("output_scale", self.output_scale, (batch,)),
                            _expand("weight_decay", self.weight_decay, (batch,)))

    def rates(self, batch: int, n_layers: int) -> Tensor:
        """m (B, L): each layer's step multiplier (ones when unset)."""
        value = _expand("layer_lr", self.layer_lr, (batch, n_layers))
        return torch.ones(batch, n_layers, dtype=torch.float64) if value is None else value

    def alpha(self, batch: int) -> Tensor:
        """α (B,) (ones when unset)."""
        value = _expand("output_scale", self.output_scale, (batch,))
        return torch.ones(batch, dtype=torch.float64) if value is None else value

    def decay(self, batch: int) -> Tensor:
        """γ (B,) (zeros when unset)."""
        value = _expand("weight_decay", self.weight_decay, (batch,))
        return torch.zeros(batch, dtype=torch.float64) if value is None else value

    def standard(self, batch: int, n_layers: int) -> tuple[Tensor, Tensor]:
        """(κ (B,), k (B, L)) of the change of variables U_l = k_l·W_l, time κ·t (class docstring)."""
        rates = self.rates(batch, n_layers)
        kappa = self.alpha(batch) ** (2.0 / n_layers) * rates.log().mean(-1).exp()
        return kappa, (kappa[:, None] / rates).sqrt()

    def to_rate_units(self, batch: int, n_layers: int) -> Tensor:
        """1/ρ (B, L): V_l = W_l/ρ_l, the weights in units of the rates (class docstring)."""
        _, k = self.standard(batch, n_layers)
        return k / self.alpha(batch)[:, None] ** (1.0 / n_layers)


def _check_batch_size(batch_size: int | None, n_samples: int) -> None:
    """Refuse a minibatch size outside [1, P]; None means full-batch."""
    if batch_size is not None and not 1 <= batch_size <= n_samples:
        raise ValueError(f"batch_size must be in [1, P={n_samples}], got {batch_size}.")


def log_events(steps: Tensor) -> dict[int, tuple[Tensor, Tensor]]:
    """Group (network, log index) pairs by the step at which they are due. ``steps`` is (B, T)."""
    n_log = steps.shape[1]
    flat = steps.reshape(-1)
    order = torch.argsort(flat, stable=True)
    uniq, counts = torch.unique_consecutive(flat[order], return_counts=True)
    events = {}
    for step, idx in zip(uniq.tolist(), torch.split(order, counts.tolist()), strict=True):
        events[step] = (idx // n_log, idx % n_log)
    return events


def _matrix_index(n_log: int, n_matrix: int) -> Tensor:
    """The log points (Tm,) at which matrices are kept: ``n_matrix`` of the ``n_log``, evenly spread, ends included."""
    n_matrix = max(2, min(n_matrix, n_log))
    return torch.unique(torch.round(torch.linspace(0, n_log - 1, n_matrix)).long())


@dataclass(frozen=True)
class _Schedule:
    """When each network logs and stops: the steps (B, T) of the t grid, grouped by step, and the matrix points."""

    steps: Tensor
    events: dict[int, tuple[Tensor, Tensor]]
    finish: dict[int, list[int]]
    matrix_index: Tensor

    @classmethod
    def plan(cls, lr: Tensor, t_max: float, n_log: int, spacing: str, n_matrix: int,
             max_steps: int | None) -> _Schedule:
        """The schedule of networks with learning rates ``lr`` (B,) on :func:`log_grid` (see :func:`plan_steps`)."""
        steps = plan_steps(log_grid(t_max, n_log, spacing), lr, max_steps)
        finish: dict[int, list[int]] = {}
        for b, k in enumerate(steps[:, -1].tolist()):
            finish.setdefault(k, []).append(b)
        return cls(steps, log_events(steps), finish, _matrix_index(n_log, n_matrix))

    @property
    def total(self) -> int:
        """The last step any network takes."""
        return int(self.steps[:, -1].max())


@dataclass(frozen=True)
class _TaskData:
    """The task on the training device and dtype: statistics, data, the least-squares optimum, the activation, and
    the held-out statistics (Σxx*, Σyx*, Σyy*, optimum) and data when the task has a held-out set."""

    sxx: Tensor
    syx: Tensor
    syy: Tensor
    u: Tensor
    v: Tensor
    x: Tensor
    y: Tensor
    whitening: float | None
    optimum: tuple[Tensor, Tensor]
    act: Callable[[Tensor], Tensor] | None
    heldout: tuple | None = None
    heldout_data: tuple[Tensor, Tensor] | None = None

    @classmethod
    def of(cls, task, device: torch.device, dtype: torch.dtype, act: Callable[[Tensor], Tensor] | None) -> _TaskData:
        """Move ``task`` to ``device`` / ``dtype``."""
        sxx, syx, syy = (s.to(device=device, dtype=dtype) for s in (task.sigma_xx, task.sigma_yx, task.sigma_yy))
        u, _, v = task.svd
        x, y = task.X.to(device=device, dtype=dtype), task.Y.to(device=device, dtype=dtype)
        optimum = metrics.least_squares_optimum(sxx, syx, syy, x, y)
        held = getattr(task, "heldout", None)
        heldout = heldout_data = None
        if held is not None:
            stats = [s.to(device=device, dtype=dtype) for s in (held.sigma_xx, held.sigma_yx, held.sigma_yy)]
            heldout = (*stats, metrics.least_squares_optimum(*stats))
            heldout_data = (held.X.to(device=device, dtype=dtype), held.Y.to(device=device, dtype=dtype))
        return cls(sxx, syx, syy, u.to(device=device, dtype=dtype), v.to(device=device, dtype=dtype), x, y,
                   task.whitening_scale, optimum, act, heldout, heldout_data)

    def loss(self, weights: Sequence[Tensor], alpha: Tensor | None = None) -> Tensor:
        """Per-network loss (B,) of ŷ = α·W_L⋯W_1x (α (B, 1, 1), None: 1): from the data for a nonlinear net,
        from the statistics for a linear one."""
        if self.act is not None:
            return _data_loss(weights, self.x, self.y, self.act, alpha)
        w = metrics.product(weights)
        return metrics.loss_from_product(w if alpha is None else alpha * w, self.sxx, self.syx, self.syy,
                                         optimum=self.optimum)


class _DivergenceGuard:
    """Spots networks whose loss turns non-finite or exceeds ``explode`` × max(initial loss, 1), once each."""

    def __init__(self, loss0: Tensor, explode: float, lr: Tensor, rate: Tensor):
        self.limit = explode * loss0.clamp_min(1.0)
        self.lr, self.rate = lr, rate
        self.alive = torch.ones(loss0.shape[0], dtype=torch.bool, device=loss0.device)
        self.diverged_step = torch.full((loss0.shape[0],), -1, dtype=torch.long)
        self.messages: list[str] = []

    def check(self, step: int, loss: Tensor) -> Tensor | None:
        """Mark the networks that diverge at ``step`` given their ``loss`` (B,); their mask (B,), or None if none."""
        bad = self.alive & (~torch.isfinite(loss) | (loss > self.limit))
        if not bool(bad.any()):
            return None
        for b in torch.nonzero(bad).flatten().tolist():
            lr, rate = float(self.lr[b]), float(self.rate[b])
            self.diverged_step[b] = step
            self.messages.append(
                f"network {b} diverged at step {step} (t={step * lr:.4g}, lr={lr:.4g}): its loss became non-finite "
                f"or exploded. GD follows the flow only while lr × its fastest rate ≪ 1; at init that rate is "
                f"{rate:.3g} (metrics.fastest_rate: the curvature bound, which grows with |λ| and, for deep nets, "
                f"with the product of the layer scales), so lr × rate = {lr * rate:.3g}: lower lr below "
                f"~{0.1 / rate:.2g} (or the init scale / |λ|).")
        self.alive.masked_fill_(bad, False)
        return bad

    @property
    def status(self) -> list[str]:
        """"ok" or "diverged" per network."""
        return ["ok" if bool(a) else "diverged" for a in self.alive.tolist()]


def _rows(tensors: Sequence[Tensor], rows: Tensor) -> list[Tensor]:
    """The networks ``rows`` of each stacked tensor; a tensor without a batch axis (2-D) is shared and kept."""
    return [t[rows] if t.dim() == 3 else t for t in tensors]


class _Recorder:
    """Preallocated (B, T) buffers filled with :func:`lazyrich.metrics.snapshot` at each network's own log steps.

    With layer rates or α (``scales`` = (k (B, L), α (B,))), the snapshot is taken of U_l = k_l·W_l, which the
    theories predict, and the figures of the weights themselves (norms, Grams) and λ̂ (of V_l = U_l/α^{1/L},
    :class:`TrainOptions`) are mapped back.
    """

    def __init__(self, n_log: int, matrix_index: Tensor, data: _TaskData, init_weights: list[Tensor],
                 scales: tuple[Tensor, Tensor] | None = None):
        self.n_batch, self.n_log = init_weights[0].shape[0], n_log
        self.matrix_slot = torch.full((n_log,), -1, dtype=torch.long)
        self.matrix_slot[matrix_index] = torch.arange(len(matrix_index))
        self.n_matrix = len(matrix_index)
        self.device = init_weights[0].device
        self.scales = None if scales is None else tuple(x.to(init_weights[0]) for x in scales)
        self.data = data
        self.init_weights = init_weights if scales is None else self.standard(init_weights, None)
        self.init_blocks = None if data.act is not None else metrics.ntk_blocks(self.init_weights)
        self.reference = metrics.balance_reference(self.init_weights)
        self.scalars: dict[str, Tensor] = {}
        self.matrices: dict[str, Tensor] = {}

    def standard(self, weights: Sequence[Tensor], rows: Tensor | None) -> list[Tensor]:
        """U_l = k_l·W_l of networks ``rows`` (None: all) of ``weights`` (already those rows)."""
        k = self.scales[0] if rows is None else self.scales[0][rows]
        return [w * k[:, l, None, None] for l, w in enumerate(weights)]

    def record(self, weights: list[Tensor], rows: Tensor, cols: Tensor, alive: Tensor) -> None:
        """Log networks ``rows`` at log points ``cols``; networks no longer ``alive`` (B,) log NaN."""
        rows, cols = rows.to(self.device), cols.to(self.device)
        full = len(rows) == self.n_batch and bool((rows == torch.arange(self.n_batch, device=self.device)).all())
        sub = weights if full else _rows(weights, rows)
        sub0 = self.init_weights if full else _rows(self.init_weights, rows)
        blocks0, reference = self.init_blocks, self.reference
        if not full and blocks0 is not None:
            blocks0 = [tuple(_rows(block, rows)) for block in blocks0]
        if not full:
            reference = [(ref[rows], scale[rows]) for ref, scale in reference]
        # Matrices are kept at n_matrix of the n_log points only: don't form the Grams at the others.
        keep_matrices = bool((self.matrix_slot[cols.cpu()] >= 0).any())
        data = self.data
        loss = test_loss = None
        if data.act is not None:
            alpha = None if self.scales is None else self.scales[1][rows].view(-1, 1, 1)
            loss = data.loss(sub, alpha)
            if data.heldout_data is not None:
                test_loss = _data_loss(sub, *data.heldout_data, data.act, alpha)
        measured = sub if self.scales is None else self.standard(sub, rows)
        scalars, matrices = metrics.snapshot(measured, sub0, blocks0, data.sxx, data.syx, data.syy, data.u, data.v,
                                             optimum=data.optimum, with_matrices=keep_matrices, loss=loss,
                                             heldout=data.heldout, test_loss=test_loss, reference=reference)
        if self.scales is not None:
            self.map_back(scalars, matrices, rows)
        if not bool(alive.all()):
            dead = ~alive[rows]
            for value in list(scalars.values()) + list(matrices.values()):
                value[dead] = math.nan
        self.put(rows, cols, scalars, matrices, full=full)

    def map_back(self, scalars: dict[str, Tensor], matrices: dict[str, Tensor], rows: Tensor) -> None:
        """Figures of U back to those of W (norms, Grams) and of V (λ̂ and its deviation), in place."""
        k, alpha = self.scales[0][rows], self.scales[1][rows]
        n_layers = k.shape[1]
        v_scale = alpha ** (2.0 / n_layers)
        for l in range(n_layers):
            scalars[f"norm_W{l + 1}"] = scalars[f"norm_W{l + 1}"] / k[:, l]
            if l < n_layers - 1:
                scalars[f"lam_hat_{l + 1}"] = scalars[f"lam_hat_{l + 1}"] / v_scale
                scalars[f"balance_dev_{l + 1}"] = scalars[f"balance_dev_{l + 1}"] / v_scale
        if matrices:
            matrices["w1tw1"] = matrices["w1tw1"] / (k[:, 0] ** 2)[:, None, None]
            matrices["wwt_out"] = matrices["wwt_out"] / (k[:, -1] ** 2)[:, None, None]

    def put(self, rows: Tensor, cols: Tensor, scalars: dict[str, Tensor], matrices: dict[str, Tensor], *,
            full: bool) -> None:
        """Store the values (len(rows), …) of networks ``rows`` at log points ``cols`` (``full``: rows is the whole
        batch in order)."""
        # The whole batch at one log point (networks sharing an lr): a column slice, not a scatter.
        column = int(cols[0]) if full and bool((cols == cols[0]).all()) else None
        for name, value in scalars.items():
            if name not in self.scalars:
                self.scalars[name] = torch.full((self.n_batch, self.n_log), math.nan, dtype=value.dtype,
                                                device=self.device)
            if column is None:
                self.scalars[name][rows, cols] = value
            else:
                self.scalars[name][:, column] = value
        slots = self.matrix_slot[cols.cpu()].to(self.device)
        keep = slots >= 0
        if not bool(keep.any()):
            return
        for name, value in matrices.items():
            if name not in self.matrices:
                self.matrices[name] = torch.full((self.n_batch, self.n_matrix, *value.shape[1:]), math.nan,
                                                 dtype=value.dtype, device=self.device)
            if column is None:
                self.matrices[name][rows[keep], slots[keep]] = value[keep]
            else:
                self.matrices[name][:, int(slots[0])] = value


def _linear_step(weights: list[Tensor], sigma_xx: Tensor, sigma_yx: Tensor, whitening: float | None,
                 lr: Tensor) -> list[Tensor]:
    """One full-batch GD step on the statistics: the new weights [W1, …, WL], each (B, out, in).

    ``lr`` is (B, 1, 1). For two whitened layers this is four kernels: three baddbmm and one multiply.
    """
    prefixes: list[Tensor | None] = [None]
    for w in weights[:-1]:
        prefixes.append(w if prefixes[-1] is None else torch.bmm(w, prefixes[-1]))
    top, pre = weights[-1], prefixes[-1]
    # Negative gradient w.r.t. the product, scaled by each network's lr: (Σyx − WΣxx)·η. When whitened,
    # Σyx − c·W_L·pre is one baddbmm and the product is never materialised.
    if whitening is None:
        err = sigma_yx - (top if pre is None else torch.bmm(top, pre)) @ sigma_xx
    elif pre is None:
        err = torch.add(sigma_yx, top, alpha=-whitening)
    else:
        err = torch.baddbmm(sigma_yx.expand(top.shape[0], *sigma_yx.shape), top, pre, alpha=-whitening)
    back = err.mul_(lr)
    new = [top + back] if pre is None else list(weights)  # every entry is replaced below
    for l in range(len(weights) - 1, 0, -1):
        new[l] = torch.baddbmm(weights[l], back, prefixes[l].mT)
        if l == 1:  # bottom layer: W1 + W2ᵀ·back fused, with no identity prefix to multiply by
            new[0] = torch.baddbmm(weights[0], weights[1].mT, back)
        else:
            back = torch.bmm(weights[l].mT, back)
    return new


def _options_linear_step(weights: list[Tensor], sigma_xx: Tensor, sigma_yx: Tensor, whitening: float | None,
                         lr: Tensor, options: TrainOptions) -> list[Tensor]:
    """One full-batch GD step with :class:`TrainOptions` (per network, :meth:`TrainOptions.per_network` on the
    training device): W_l ← (1 − lr·m_l·γ)W_l + lr·m_l·α·W_{L:l+1}ᵀ(Σyx − α·WΣxx)W_{l−1:1}ᵀ. ``lr`` (B, 1, 1)."""
    alpha = None if options.output_scale is None else options.output_scale.view(-1, 1, 1)
    rates = options.layer_lr
    prefixes: list[Tensor | None] = [None]
    for w in weights[:-1]:
        prefixes.append(w if prefixes[-1] is None else torch.bmm(w, prefixes[-1]))
    pre = prefixes[-1]
    out = weights[-1] if pre is None else torch.bmm(weights[-1], pre)
    out = out if alpha is None else alpha * out
    err = sigma_yx - (whitening * out if whitening is not None else out @ sigma_xx)
    back = err * (lr if alpha is None else lr * alpha)  # becomes lr·α·W_{L:l+1}ᵀ(Σyx − αWΣxx) going down
    new = list(weights)
    for l in range(len(weights) - 1, -1, -1):
        grad = back if prefixes[l] is None else torch.bmm(back, prefixes[l].mT)
        if l > 0:
            back = torch.bmm(weights[l].mT, back)
        rate = None if rates is None else rates[:, l].view(-1, 1, 1)
        kept = weights[l]
        if options.weight_decay is not None:
            shrink = lr * options.weight_decay.view(-1, 1, 1)
            kept = kept * (1 - (shrink if rate is None else shrink * rate))
        new[l] = kept + (grad if rate is None else rate * grad)
    return new


def _forward(weights: Sequence[Tensor], x: Tensor, activation: Callable[[Tensor], Tensor] | None,
             alpha: Tensor | None = None) -> Tensor:
    """Outputs (B, P, No) of B nets on X (P, Ni), times α (B, 1, 1) if given; the activation acts on every
    hidden layer."""
    h = x.expand(weights[0].shape[0], *x.shape)
    for l, w in enumerate(weights):
        h = h @ w.mT
        if activation is not None and l < len(weights) - 1:
            h = activation(h)
    return h if alpha is None else alpha * h


def _data_loss(weights: Sequence[Tensor], x: Tensor, y: Tensor, activation, alpha: Tensor | None = None) -> Tensor:
    """Per-network loss 1/(2P)‖ŷ − Y‖², shape (B,)."""
    return 0.5 * ((_forward(weights, x, activation, alpha) - y) ** 2).sum((-2, -1)) / x.shape[0]


def _stepper(data: _TaskData, lr_step: Tensor, batch_size: int | None, seed: int,
             options: TrainOptions) -> Callable[[list[Tensor]], list[Tensor]]:
    """One GD step of the batch at the rates ``lr_step`` (B, 1, 1): fused on the statistics for a linear net
    trained full-batch, autograd on the data (a minibatch drawn with ``seed``) otherwise; ``options`` (per
    network, on the device) add layer rates, α and weight decay."""
    if data.act is None and batch_size is None:
        if not options.active:
            return lambda weights: _linear_step(weights, data.sxx, data.syx, data.whitening, lr_step)
        return lambda weights: _options_linear_step(weights, data.sxx, data.syx, data.whitening, lr_step, options)
    gen = torch.Generator(device=data.x.device).manual_seed(seed)
    alpha = None if options.output_scale is None else options.output_scale.view(-1, 1, 1)
    n_layers = 0 if options.layer_lr is None else options.layer_lr.shape[1]
    rates = [None] * n_layers if options.layer_lr is None else [m.view(-1, 1, 1) for m in options.layer_lr.unbind(1)]
    decay = None if options.weight_decay is None else options.weight_decay.view(-1, 1, 1)

    def step(weights: list[Tensor]) -> list[Tensor]:
        ws = [w.requires_grad_(True) for w in weights]
        if batch_size is None:
            xb, yb = data.x, data.y
        else:
            idx = torch.randperm(data.x.shape[0], generator=gen, device=data.x.device)[:batch_size]
            xb, yb = data.x[idx], data.y[idx]
        grads = torch.autograd.grad(_data_loss(ws, xb, yb, data.act, alpha).sum(), ws)
        with torch.no_grad():
            out = []
            for l, (w, g) in enumerate(zip(ws, grads, strict=True)):
                w = w.detach()
                g = g if decay is None else g + decay * w
                rate = rates[l] if l < len(rates) else None
                out.append(w - (lr_step * g if rate is None else lr_step * rate * g))
            return out

    return step


def _loop(weights: list[Tensor], schedule: _Schedule, step: Callable[[list[Tensor]], list[Tensor]],
          lr_step: Tensor, guard: _DivergenceGuard, recorder: _Recorder, data: _TaskData, check_every: int,
          progress: bool, alpha: Tensor | None = None) -> list[Tensor]:
    """Step the batch to the end of ``schedule``, logging when due and checking for divergence every
    ``check_every`` steps (and at every log); a network is frozen (its ``lr_step`` zeroed) when it reaches t_max
    or diverges. ``alpha`` (B, 1, 1): the output multiplier the loss is taken with. Returns the final weights."""
    def check(k: int) -> None:
        bad = guard.check(k, data.loss(weights, alpha))
        if bad is not None:
            lr_step.masked_fill_(bad.view(-1, 1, 1), 0.0)

    events, finish, total = schedule.events, schedule.finish, schedule.total
    bar = tqdm(total=total, disable=not progress, desc="train", unit="step", mininterval=0.5, leave=False)
    done = 0
    for k in range(total + 1):
        if k in events:
            if k % check_every:
                check(k)
            recorder.record(weights, *events[k], guard.alive)
            bar.update(k - done)
            done = k
        if k in finish:
            lr_step[finish[k]] = 0.0  # reached t_max: frozen, so faster networks wait for the slower ones
        if k == total:
            break
        weights = step(weights)
        if (k + 1) % check_every == 0:
            check(k + 1)
    bar.close()
    return weights


def train(task, weights: Sequence[Tensor], lr: float | Sequence[float] | Tensor, *, t_max: float,
          n_log: int = 101, spacing: str = "linear", n_matrix: int = 21, activation: str | None = None,
          batch_size: int | None = None, seed: int = 0, check_every: int = 10, explode: float = 1e8,
          progress: bool = True, device: str | torch.device | None = None, max_steps: int | None = None,
          layer_lr: Any = None, output_scale: Any = None, weight_decay: Any = None, warn: bool = True) -> Trajectory:
    """Train B stacked networks on ``task`` by gradient descent up to t = t_max and record their metrics.

    ``weights``: [W1, …, WL], each (B, out, in), in the dtype to train in (they are not modified); training runs
    on their device unless ``device`` (auto | cpu | cuda) says otherwise. ``lr``: one value, or one per network.
    ``layer_lr`` (L,) or (B, L), ``output_scale`` (α) and ``weight_decay`` (γ, L2 in the loss), each one value or
    one per network: see :class:`TrainOptions`; the defaults are plain GD.
    Metrics are recorded at the ``n_log`` points of :func:`log_grid`; the matrices at ``n_matrix`` of them; a
    task with a held-out set (``task.heldout``) also logs ``test_loss``.
    A network whose loss turns non-finite or exceeds ``explode`` × max(initial loss, 1) is frozen with status
    "diverged" while the rest go on, with a RuntimeWarning each (``warn=False``: only in ``Trajectory.messages``,
    for a caller that reports them itself). The step count is checked before any work: see :func:`plan_steps`
    (``max_steps`` None: the budget of :func:`step_budget`, :data:`DEFAULT_MAX_STEPS` unless set).
    """
    weights = _checked_weights(task, weights, device)
    act = _activation(activation)
    n_batch, n_layers = weights[0].shape[0], len(weights)
    lr_t = lr_per_network(lr, n_batch)
    options = TrainOptions.of(layer_lr, output_scale, weight_decay).per_network(n_batch, n_layers)
    schedule = _Schedule.plan(lr_t, t_max, n_log, spacing, n_matrix, max_steps)
    data = _TaskData.of(task, weights[0].device, weights[0].dtype, act)
    _check_batch_size(batch_size, task.P)

    like = weights[0]
    scales = options.standard(n_batch, n_layers) if options.rescales else None
    alpha = None if options.output_scale is None else options.output_scale.to(like).view(-1, 1, 1)
    init_weights = [w.clone() for w in weights]
    recorder = _Recorder(n_log, schedule.matrix_index, data, init_weights,
                         None if scales is None else (scales[1], options.alpha(n_batch)))
    rate = (metrics.fastest_rate(weights, data.sxx).cpu() if scales is None
            else scales[0] * metrics.fastest_rate(recorder.init_weights, data.sxx).cpu())
    guard = _DivergenceGuard(data.loss(weights, alpha), explode, lr_t, rate)
    lr_step = lr_t.to(device=like.device, dtype=like.dtype).view(-1, 1, 1).clone()
    on_device = TrainOptions(*(None if v is None else v.to(like) for v in
                               (options.layer_lr, options.output_scale, options.weight_decay)))
    step = _stepper(data, lr_step, batch_size, seed, on_device)
    weights = _loop(weights, schedule, step, lr_step, guard, recorder, data, check_every, progress, alpha)
    for message in guard.messages if warn else ():
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return Trajectory(t=schedule.steps.to(torch.float64) * lr_t.unsqueeze(1), step=schedule.steps,
                      scalars=recorder.scalars, matrices=recorder.matrices, matrix_index=schedule.matrix_index,
                      lr=lr_t, status=guard.status, diverged_step=guard.diverged_step, init_weights=init_weights,
                      final_weights=weights, messages=guard.messages)
