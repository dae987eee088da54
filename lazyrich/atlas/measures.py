"""The atlas's measures of one network, from :class:`~lazyrich.results.curves.Curves`: the same function for the
simulation and every theory (:mod:`lazyrich.results.measures`), then the gaps between the two.

Per network (B,), as columns of the atlas's network table:

- ``kernel_distance_final``, ``time_to_learn`` (first t at which the excess loss over the task's floor is 1% of its
  initial value; NaN if never), ``loss_final``, ``test_loss_final`` with a held-out set, and for the simulation
  ``lam_drift`` = max_t |λ̂(t) − λ̂(0)| of the first pair of layers;
- for each theory ``<th>``: the same measures as ``<th>/<measure>``, and the agreement ``<th>/gap_loss``
  (:func:`~lazyrich.results.measures.relative_gap` of the loss curves), ``<th>/gap_kernel`` (max_t |kernel
  distance sim − theory|), ``<th>/gap_kernel_final`` (the same at the end) and ``<th>/gap_time``
  (|t_sim − t_theory| / t_theory; 0 where neither learns, ∞ where only one does).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lazyrich.results import measures
from lazyrich.results.curves import Curves

__all__ = ["LEARN_FRACTION", "curve_measures", "gaps", "lam_drift"]

LEARN_FRACTION = 0.01
"""A network has learned when its excess loss over the floor is this fraction of its initial value."""


def _np(x: Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


def curve_measures(curves: Curves, floor: float) -> dict[str, np.ndarray]:
    """The per-network measures of one source (the simulation or a theory) on a task with loss ``floor``."""
    out = {"loss_final": _np(measures.final(curves)),
           "kernel_distance_final": _np(measures.final(curves, "kernel_distance")),
           "time_to_learn": _np(measures.time_to_learn(curves, LEARN_FRACTION, floor))}
    if "test_loss" in curves:
        out["test_loss_final"] = _np(measures.final(curves, "test_loss"))
    return out


def lam_drift(curves: Curves) -> np.ndarray:
    """max_t |λ̂(t) − λ̂(0)| of the first pair of layers of each simulated network (B,); NaN without λ̂."""
    if "lam_hat_1" not in curves:
        return np.full(curves.batch, np.nan)
    lam = curves["lam_hat_1"].to(torch.float64)
    drift = (lam - lam[:, :1]).abs()
    return _np(torch.where(drift.isnan(), torch.zeros_like(drift), drift).amax(-1))


def _time_gap(sim: np.ndarray, theory: np.ndarray) -> np.ndarray:
    both, one = np.isnan(sim) & np.isnan(theory), np.isnan(sim) ^ np.isnan(theory)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.abs(sim - theory) / np.abs(theory)
    return np.where(both, 0.0, np.where(one, np.inf, gap))


def gaps(simulation: Curves, theory: Curves, floor: float) -> dict[str, np.ndarray]:
    """The theory's own measures and its agreement with the simulation, per network, keyed without the
    ``<th>/`` prefix (see the module docstring)."""
    own = curve_measures(theory, floor)
    sim_time = _np(measures.time_to_learn(simulation, LEARN_FRACTION, floor))
    kernel = measures.relative_gap(simulation["kernel_distance"].cpu(), theory["kernel_distance"].cpu(), 1.0)
    final = np.abs(_np(measures.final(simulation, "kernel_distance")) - own["kernel_distance_final"])
    return {**own, "gap_loss": _np(measures.agreement(simulation, theory)), "gap_kernel": _np(kernel),
            "gap_kernel_final": final, "gap_time": _time_gap(sim_time, own["time_to_learn"])}
