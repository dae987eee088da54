"""Measures: one number per network, written once over a batch of :class:`~lazyrich.results.curves.Curves`.

A measure takes the curves of one source — the simulation or any theory, they have one shape — and returns a
(B,) tensor. The suites declare which measure fills which column (:class:`lazyrich.suites.spec.Measure`); the
same function then fills the measured column from the simulation and the theory column from the prediction
(:func:`lazyrich.suites.spec.measure_columns`), so the two can only differ by what they measure, never by how.

Every measure is batched: no Python loop over networks. Times are interpolated between log points
(:func:`lazyrich.metrics.time_to_threshold`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lazyrich import metrics
from lazyrich.results.curves import Curves

__all__ = ["agreement", "final", "grokking_time", "initial", "matrix_change", "plateau_time", "reaches",
           "relative_gap", "resolved", "rise_half_time", "time_to_fraction", "time_to_learn", "time_to_level"]

def initial(curves: Curves, name: str = "loss") -> Tensor:
    """The curve ``name`` at the first log point (B,), or the matrix ``name`` at its first (B, …)."""
    return curves[name][:, 0]


def final(curves: Curves, name: str = "loss") -> Tensor:
    """The curve ``name`` at the last log point (B,), or the matrix ``name`` at its last (B, …)."""
    return curves[name][:, -1]


def reaches(curves: Curves, fraction: float, name: str = "loss") -> Tensor:
    """Whether the curve ends at most ``fraction`` × its initial value (B,) bool."""
    return final(curves, name) <= fraction * initial(curves, name)


def time_to_fraction(curves: Curves, fraction: float, name: str = "loss") -> Tensor:
    """First t at which the curve falls to ``fraction`` × its initial value (B,); NaN if it never does."""
    return metrics.time_to_threshold(curves.t, curves[name], fraction)


def time_to_learn(curves: Curves, fraction: float, floor: Tensor | float = 0.0, name: str = "loss") -> Tensor:
    """First t at which the excess ``curve − floor`` falls to ``fraction`` × its initial value (B,); NaN if it
    never does. With ``floor`` the task's loss floor (:func:`lazyrich.metrics.loss_floor`) this is the time to
    learn what can be learned, defined on tasks that cannot be fit exactly too."""
    excess = curves[name] - torch.as_tensor(floor, dtype=curves[name].dtype).reshape(-1, 1)
    return metrics.time_to_threshold(curves.t, excess, fraction)


def resolved(curves: Curves, time: Tensor) -> Tensor:
    """Whether each time (B,) lies past the first logged interval (B,) bool: a crossing inside it was
    interpolated over that interval alone, so the log grid did not resolve it (log more points, or log spacing)."""
    return ~(time <= curves.t[:, 1])


def time_to_level(curves: Curves, level: float, name: str = "loss") -> Tensor:
    """First t at which the curve falls to the absolute ``level`` (B,); NaN if it never does."""
    return metrics.time_to_threshold(curves.t, curves[name], level, relative=False)


def grokking_time(curves: Curves, train_level: float, test_level: float) -> Tensor:
    """First t (B,) at which ``test_loss`` reaches ``test_level``, counted from the time the training loss has
    reached ``train_level`` (:func:`time_to_level`): that time itself when the test loss is already below its
    level then; NaN when either never happens."""
    t, test = curves.t, curves["test_loss"]
    t_train = time_to_level(curves, train_level)
    before = t < t_train[:, None]
    # Before t_train the test curve is held above its level, so the crossing found is the first one after it.
    held = torch.where(before, torch.clamp(test, min=test_level + abs(test_level) * 1e-12 + 1e-300), test)
    held = torch.where(t_train[:, None].isnan(), torch.full_like(test, float("inf")), held)
    crossing = metrics.time_to_threshold(t, held, test_level, relative=False)
    return torch.maximum(crossing, t_train)


def rise_half_time(curves: Curves, name: str = "kernel_distance") -> Tensor:
    """First t at which a rising curve reaches half its final value (B,); NaN where it ends at ≤ 0 or NaN."""
    value = curves[name]
    end = value[:, -1]
    half = metrics.time_to_threshold(curves.t, -value, -0.5 * end, relative=False)
    return torch.where(end > 0, half, torch.full_like(half, float("nan")))


def plateau_time(curves: Curves, level: float | Tensor, band: float, name: str = "loss") -> Tensor:
    """Time the curve spends within ``band``·|level| of ``level`` (B,) (:func:`lazyrich.metrics.time_in_band`)."""
    return metrics.time_in_band(curves.t, curves[name], level, band)


def matrix_change(curves: Curves, name: str) -> Tensor:
    """‖M(end) − M(0)‖_F / ‖M(0)‖_F of the matrix ``name`` (B,): how far a representation moved."""
    return metrics.relative_change(initial(curves, name), final(curves, name))


def relative_gap(simulation: Tensor, theory: Tensor, scale: Tensor | float | None = None) -> Tensor:
    """max |simulation − theory| / scale over the last axis (…,): the project's one agreement measure.

    Only points where neither value is NaN count; ``scale`` defaults to max |theory| over those points. An
    infinite simulation (a divergence) gives an infinite gap; no point left gives NaN.
    """
    sim, th = torch.broadcast_tensors(simulation.to(torch.float64), theory.to(torch.float64))
    keep = ~(sim.isnan() | th.isnan())
    zero = torch.zeros((), dtype=torch.float64, device=sim.device)
    gap = torch.where(keep, (sim - th).abs(), zero).amax(-1)
    scale = torch.where(keep, th.abs(), zero).amax(-1) if scale is None else torch.as_tensor(scale).to(gap)
    return torch.where(keep.any(-1), gap / scale.clamp_min(1e-300), torch.full_like(gap, float("nan")))


def agreement(simulation: Curves, theory: Curves, name: str = "loss") -> Tensor:
    """:func:`relative_gap` of the curve ``name`` between the simulation and a theory, per network (B,)."""
    return relative_gap(simulation[name].cpu(), theory[name].cpu())
