"""Tidy tables of a batch: the long table (one row per network per logged t, ``sim/<metric>`` and
``theory/<metric>`` columns, namespaced exactly like the W&B keys) and the summary (one row per network: final
values, time to learn, agreement with the theory).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich.results import measures
from lazyrich.results.curves import SIM, Curves, from_frame, predicted, simulated

__all__ = ["AGREEMENT_RTOL", "markdown_table", "max_rel_error", "summarise", "summary_of", "to_frame"]

AGREEMENT_RTOL = 0.05
"""Simulation and theory 'agree' when the loss curves differ by at most 5% of the theory's largest loss."""


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


def to_frame(trajectory, meta: pd.DataFrame | Mapping[str, Sequence[Any]] | None = None, prediction=None,
             *, phase: int | None = None, t_offset: torch.Tensor | float = 0.0) -> pd.DataFrame:
    """Long table of a :class:`~lazyrich.train.Trajectory`: one row per network per log point.

    ``meta`` holds one row per network (lam, seed, lr, …), repeated on each of its rows. ``prediction`` (a
    :class:`~lazyrich.theory.Prediction` on the same t grid) adds ``theory/<metric>`` columns.
    """
    n_batch, n_log = trajectory.t.shape
    net = np.repeat(np.arange(n_batch), n_log)
    columns: dict[str, Any] = {"net": net}
    if meta is not None:
        meta_df = pd.DataFrame(meta).reset_index(drop=True)
        if len(meta_df) != n_batch:
            raise ValueError(f"meta has {len(meta_df)} rows for {n_batch} networks.")
        for name in meta_df.columns:
            columns[name] = np.repeat(meta_df[name].to_numpy(), n_log)
    if phase is not None:
        columns["phase"] = phase
    columns["step"] = trajectory.step.cpu().numpy().reshape(-1)
    t_off = torch.as_tensor(t_offset, dtype=torch.float64)
    t_off = t_off.unsqueeze(-1) if t_off.dim() == 1 else t_off
    columns["t"] = _np(trajectory.t + t_off).reshape(-1)
    sources = [simulated(trajectory)] + ([predicted(prediction)] if prediction is not None else [])
    for prefix, source in zip(("sim", "theory"), sources, strict=False):
        for name, value in source.curves.items():
            columns[f"{prefix}/{name}"] = _np(value).reshape(-1)
    frame = pd.DataFrame(columns)
    frame["status"] = np.repeat(np.asarray(trajectory.status, dtype=object), n_log)
    return frame


def max_rel_error(sim: Any, theory: Any, scale: float | None = None) -> float:
    """The project's one agreement measure over whole arrays: max |sim − theory| / scale, ``scale`` defaulting
    to max |theory| (:func:`lazyrich.results.measures.relative_gap` of the flattened values).

    ``sim`` and ``theory`` (arrays or tensors, broadcast together) are compared where neither is NaN; an
    infinite simulation (a divergence) gives an infinite error. NaN when no pair is left. Simulation and theory
    "agree" when this is at most :data:`AGREEMENT_RTOL`; the summaries, W&B and the figures all use it.
    """
    sim, theory = np.broadcast_arrays(*(_np(v) if isinstance(v, torch.Tensor) else np.asarray(v, dtype=float)
                                        for v in (sim, theory)))
    flat = [torch.tensor(np.asarray(v, dtype=np.float64).reshape(-1)) for v in (sim, theory)]
    return float(measures.relative_gap(*flat, scale))


def summary_of(simulation: Curves, theory: Curves | None = None, meta_columns: Sequence[str] = (),
               threshold: float = 0.01, first_net: int = 0, floor: float | np.ndarray = 0.0) -> pd.DataFrame:
    """One row per network (numbered from ``first_net``): its ``meta_columns`` and status, then the measures
    ``loss_final``, ``kernel_distance_final`` and ``time_to_1pct`` of the simulation: the first t (interpolated)
    at which the excess loss over ``floor`` (the task's loss floor, :func:`lazyrich.metrics.loss_floor`) is
    ``threshold`` × its initial value (NaN if never), with ``time_to_1pct_resolved`` false where that crossing
    fell inside the first logged interval (too coarse a grid to resolve it). With a held-out set (a ``test_loss``
    curve), also ``test_loss_final``.

    With a theory, adds the same measures of the theory (``theory_loss_final``, ``theory_kernel_distance_final``,
    ``theory_time_to_1pct``), the per-network agreement of the loss curves (``theory_max_rel_err``,
    :func:`lazyrich.results.measures.agreement`) and whether that is within ``AGREEMENT_RTOL``
    (``theory_agrees``). A network that did not finish (status ``diverged``) agrees with no theory: its error is
    infinite. Networks without a theory value get NaN there.
    """
    meta = simulation.meta if simulation.meta is not None else pd.DataFrame(index=range(simulation.batch))
    status = meta["status"].to_numpy() if "status" in meta else np.full(simulation.batch, "ok", object)
    learn = measures.time_to_learn(simulation, threshold, floor)
    out = {"net": first_net + np.arange(simulation.batch),
           **{k: meta[k].to_numpy() for k in meta_columns if k in meta},
           "status": status,
           "loss_final": _np(measures.final(simulation)),
           "kernel_distance_final": _np(measures.final(simulation, "kernel_distance")),
           "time_to_1pct": _np(learn),
           "time_to_1pct_resolved": _np(measures.resolved(simulation, learn))}
    if "test_loss" in simulation.curves:
        out["test_loss_final"] = _np(measures.final(simulation, "test_loss"))
    if theory is not None:
        out.update(_theory_columns(simulation, theory, status != "ok", threshold, floor))
    return pd.DataFrame(out)


def summarise(frame: pd.DataFrame, meta_columns: Sequence[str] = (), threshold: float = 0.01) -> pd.DataFrame:
    """:func:`summary_of` a long table (one run phase: every network logged at the same number of points)."""
    if frame.empty:
        return pd.DataFrame()
    keep = [*meta_columns, "status"]
    simulation = from_frame(frame, SIM, keep)
    theory = from_frame(frame, "theory") if "theory/loss" in frame else None
    return summary_of(simulation, theory, meta_columns, threshold, first_net=int(frame["net"].min()))


def _theory_columns(simulation: Curves, theory: Curves, unfinished: np.ndarray, threshold: float,
                    floor: float | np.ndarray) -> dict[str, np.ndarray]:
    """Per network: the theory's final loss and kernel distance, its time to learn, the agreement of the loss
    curves and whether it is close enough (never for an ``unfinished`` network: infinite error)."""
    loss = theory["loss"].cpu()
    has = _np((~loss.isnan()).any(-1)).astype(bool)
    if not has.any():
        return {}
    err = np.where(unfinished, math.inf, _np(measures.agreement(simulation, theory)))
    agrees = err <= AGREEMENT_RTOL

    def where(value: np.ndarray) -> np.ndarray:
        return np.where(has, value, math.nan)

    kernel = ({"theory_kernel_distance_final": where(_np(measures.final(theory, "kernel_distance")))}
              if "kernel_distance" in theory.curves else {})
    test = {}
    if "test_loss" in theory.curves and "test_loss" in simulation.curves:
        test_err = np.where(unfinished, math.inf, _np(measures.agreement(simulation, theory, "test_loss")))
        test = {"theory_test_loss_final": where(_np(measures.final(theory, "test_loss"))),
                "theory_test_max_rel_err": where(test_err)}
    return {"theory_loss_final": where(_np(loss[:, -1])), **kernel,
            "theory_time_to_1pct": where(_np(measures.time_to_learn(theory, threshold, floor))),
            "theory_max_rel_err": where(err),
            "theory_agrees": agrees if has.all() else np.where(has, agrees.astype(object), math.nan), **test}


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, digits: int = 4, index: bool = False) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (floats to ``digits`` significant digits, NaN as –)."""
    if index:
        frame = frame.reset_index()
    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)
