"""Pick the most exact theory that applies: exact, aligned, deep_aligned, wide, else ode (the fallback).

Selection rules: the first of ``PREFERENCE`` whose check passes, else ``ode``, which always applies; the notes say
which ran and why each earlier one refused. Inside ``exact``, a singular B (a saddle) and a nearly singular one
(σ_min(B) ≤ 1e-3·scale) are handed to ode per network (``ode_fallback``). auto predicts gradient *flow* only: the
gradient-descent theories need the trainer's lr or dtype and are chosen by name (``aligned_gd``: exact GD maps for
task-aligned inits; ``gd_flow``: GD to O(lr²) for any two-layer init; ``escape``: the λ = 0 saddle's plateau).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from lazyrich.theory.base import Prediction, TaskStats, Theory
from lazyrich.theory.registry import filter_options, get_theory, register_theory
from lazyrich.train import TRAINING_OPTIONS

__all__ = ["PREFERENCE", "AutoTheory", "select_theory"]

PREFERENCE = ("exact", "aligned", "deep_aligned", "wide")
"""Closed forms first; then ``wide``, an approximation with a stated error that applies only where no exact closed
form does (wide i.i.d. two-layer nets, wide enough for its default accuracy); ``ode`` is always last and always
applies."""


def select_theory(stats: Any, weights: Sequence[Tensor], **options: Any) -> tuple[Theory, str]:
    """(theory, reason): the first of exact → aligned → deep_aligned → wide that applies, else ode, with why.

    ``options`` go to each candidate that takes them (``tau`` to all; ``rtol`` to ode and deep_aligned); the
    training options (``layer_lr``, ``output_scale``, ``weight_decay``) to all, and a candidate that does not
    model one that is set refuses it.
    """
    refused = []
    for name in PREFERENCE:
        theory = get_theory(name, **filter_options(name, options))
        reason = theory.check(stats, weights)
        if reason is None:
            why = f"{name} applies" + (f" ({'; '.join(refused)})" if refused else "")
            return theory, why
        refused.append(f"{name}: {reason.rstrip('.')}")
    return get_theory("ode", **filter_options("ode", options)), "ode (the fallback): " + "; ".join(refused)


@register_theory("auto")
class AutoTheory(Theory):
    """The most exact theory that applies (exact, aligned, deep_aligned, wide, else ode); notes say why."""

    modelled = frozenset(TRAINING_OPTIONS)  # handed on to the theory it picks (ode models them all)

    def __init__(self, **options: Any) -> None:
        self.options = options

    def _check(self, stats: TaskStats, weights: list[Tensor]) -> str | None:
        return None

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        training = {name: getattr(self.training, name) for name in self.training.active}
        theory, why = select_theory(stats, weights, **self.options, **training)
        pred = theory._solve(stats, weights, t)
        pred.notes = [f"auto: picked {why}.", *pred.notes]
        return pred
