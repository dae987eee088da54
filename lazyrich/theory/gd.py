"""Exact gradient *descent* for task-aligned nets: the theory ``aligned_gd``.

A mode-decoupled net (:mod:`lazyrich.theory.modes`) stays mode-decoupled under full-batch GD, since each step
W_l ← W_l + η W_{L:l+1}ᵀ(Σyx − WΣxx)W_{l−1:1}ᵀ with Σxx = c·I acts on every mode through its own layer values.
Mode α with target singular value σ_α (of Σyx, unscaled) follows the exact L-variable map

    a_l ← a_l + η (σ_α − c Π_k a_k) Π_{k≠l} a_k        (all layers from the same old values),

so iterating it for the trainer's own η and step count reproduces the trainer to rounding, at any η for which
GD converges, with no O(η) gap to a flow. Note that GD does not conserve a_{l+1}² − a_l² exactly (two layers:
it shrinks by the factor 1 − η²e² per step, e = σ − c·a₁a₂); the map carries that too.

The training options enter the map as the trainer applies them, in the weights themselves (no change of
variables): a_l ← a_l + η m_l(α·e_α·Π_{k≠l} a_k − γa_l) with e_α = σ_α − αcΠ_k a_k, and the part of W_l outside
the modes shrinks by (1 − η m_l γ) per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from lazyrich.theory.assemble import from_trajectory, standard_trajectory
from lazyrich.theory.base import Prediction, TaskStats, grams_of_weights
from lazyrich.theory.deep import mode_limit
from lazyrich.theory.modes import Modes, ModeTheory, other_layers, rebuild, task_modes
from lazyrich.theory.registry import register_theory
from lazyrich.train import TrainOptions, log_events, lr_per_network

__all__ = ["AlignedGDTheory", "gd_steps", "mode_gd"]


def gd_steps(t: Tensor, lr: Tensor) -> Tensor:
    """Step counts (B, T) of the grid t (B, T) at learning rates lr (B,): round(t/lr), as the trainer logs."""
    return torch.round(t / lr[:, None]).long()


def mode_gd(a0: Tensor, sigma: Tensor, c: float, lr: Tensor, steps: Tensor,
            options: TrainOptions | None = None) -> Tensor:
    """Layer values (B, T, L, m) after ``steps`` (B, T) GD steps of the per-mode map from a0 (B, L, m).

    ``sigma`` (m,) are Σyx's singular values, ``c`` the whitening scale (Σxx = c·I), ``lr`` (B,) per network,
    ``options`` the training options (layer rates, α, weight decay; None: plain GD). One vectorised update per
    step for the whole batch; networks past their last recorded step keep going (harmless: nothing after it is
    read).
    """
    batch, n_layers, m = a0.shape
    out = a0.new_empty(batch, steps.shape[1], n_layers, m)
    eta = lr.to(a0)[:, None, None]
    options = options or TrainOptions()
    if options.layer_lr is not None:
        eta = eta * options.rates(batch, n_layers).to(a0)[:, :, None]  # (B, L, 1): each layer's own step
    alpha = options.alpha(batch).to(a0)[:, None, None] if options.output_scale is not None else None
    shrink = None if options.weight_decay is None else 1 - eta * options.decay(batch).to(a0)[:, None, None]
    a = a0.clone()
    last = int(steps.max())
    events = log_events(steps)  # (network, log index) pairs due at each step, grouped once
    for k in range(last + 1):
        if k in events:
            b, j = events[k]
            out[b, j] = a[b]
        if k == last:
            break
        prod = a.prod(dim=1, keepdim=True)  # (B, 1, m)
        err = sigma - c * prod if alpha is None else alpha * (sigma - alpha * c * prod)
        step = eta * err * other_layers(a, 1)
        a = a + step if shrink is None else shrink * a + step
    return out


@register_theory("aligned_gd")
class AlignedGDTheory(ModeTheory):
    """Task-aligned nets of any depth trained by GD at the trainer's lr: the exact per-mode GD maps, not a flow."""

    dynamics = "gd"
    rescaled = False  # the map takes the training options as the trainer does, in W

    def __init__(self, lr: float | Sequence[float] | np.ndarray | Tensor | None = None) -> None:
        self.lr = lr

    def _modes(self, stats: TaskStats, weights: list[Tensor]) -> tuple[Modes | None, str | None]:
        if self.lr is None:
            return None, ("aligned_gd predicts gradient descent at a given step size: pass the trainer's "
                          "learning rate, get_theory('aligned_gd', lr=…) (run_experiment does).")
        return task_modes(stats, weights)

    def _predict(self, stats: TaskStats, weights: list[Tensor], t: Tensor) -> Prediction:
        modes, _ = self._modes(stats, weights)
        batch, n_layers = weights[0].shape[0], len(weights)
        options = self.training.per_network(batch, n_layers)
        lr = lr_per_network(self.lr, batch).to(t.device)
        steps = gd_steps(t, lr)
        a_t = mode_gd(modes.a, stats.svd[1], stats.whitening_scale, lr, steps, options)
        rest = None
        if options.weight_decay is not None:
            shrink = 1 - lr[:, None] * options.rates(batch, n_layers).to(t) * options.decay(batch).to(t)[:, None]
            rest = shrink[:, None, :] ** steps[..., None].to(t)  # (B, T, L)
        weights0, traj, k = standard_trajectory(weights, rebuild(weights, modes, a_t, rest), options)
        limit_modes = modes if k is None else task_modes(stats, weights0)[0]  # the limit is the plain one of U
        final, saddle = mode_limit(stats, limit_modes, weights0)  # GD's fixed points are the flow's
        notes = [f"aligned_gd: exact per-mode GD maps at lr = {sorted(set(lr.tolist()))} (L = {len(weights)}); "
                 f"final_loss assumes GD converges at that lr."]
        if options.active:
            notes.append(f"aligned_gd: with {options.describe()}, as the trainer applies them.")
        pred = from_trajectory(stats, weights0, traj, t, theory=self.name, final_loss=final,
                               converges_to_saddle=saddle, notes=notes)
        if options.weight_decay is not None:  # no fixed point known in closed form: the loss at the last step
            pred.final_loss, pred.converges_to_saddle = pred.loss[:, -1].clone(), torch.zeros_like(saddle)
        return pred if k is None else grams_of_weights(pred, k)
