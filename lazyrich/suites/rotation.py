"""Rotation (docs/theory.md §10): learn a source task, then a target whose singular vectors are rotated.

One unit per (angle, λ), batched over seeds: a ``transfer_rotated`` task sequence (``rotated_pair`` of a
``random_regression`` source) run by :func:`~lazyrich.experiment.run_experiment`, so the theory restarts at the
switch from the weights actually reached. ``time_to_learn`` is the first t after the switch at which the target's
excess loss over its floor (at the network's rank) is ≤ ``threshold`` × that of the zero map, measured and
predicted. Split from the ``transfer`` suite, which
keeps property generalisation on the hierarchy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lazyrich.config.suites import RotationSuite
from lazyrich.experiment import run_experiment
from lazyrich.results import measures
from lazyrich.results.tables import markdown_table
from lazyrich.suites import charts
from lazyrich.suites.common import (
    Suite,
    config_columns,
    excess,
    flow_step,
    lam_seed_axes,
    loss_floor,
    suite_run,
    zero_map_loss,
)
from lazyrich.suites.runner import Unit, UnitOutput
from lazyrich.suites.spec import Agrees, Axis, Measure, Monotone, measure_columns

__all__ = ["SUITE"]


def _units(params: RotationSuite, device: str) -> list[Unit]:
    values = {"suite": "rotation", "threshold": params.threshold}
    source = {"name": "random_regression", **params.task}
    out = []
    for angle in params.angles:
        task = {"name": "transfer_rotated", "base": "random_regression", "base_params": params.task,
                "angle": float(angle), "side": params.side, "t_budget": float(params.t_phase)}
        # The step from the source alone: the rotated target has its singular values, and the target is built
        # only when the unit runs, so that a bad angle fails in its own units.
        out += [Unit({"angle": angle, "lam": lam}, values, {"experiment": suite_run(
            params, task, lam=lam, lr=flow_step(params, lam, source), t_max=params.t_phase, device=device,
            scale=params.init_scale, align=params.align, spacing=params.spacing)}) for lam in params.lams]
    return out


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    result = run_experiment(unit.runs["experiment"])
    target = result.task[1].task
    params = {**unit.values, "zero_loss": zero_map_loss(target),
              "floor": loss_floor(target, result.trajectories[1].final_weights)}
    simulation, theory = result.curves()
    table = pd.DataFrame({
        **config_columns(result.meta),
        "loss_floor": params["floor"],
        **measure_columns(SUITE.measures, simulation, theory, params),
        "kernel_distance_final": result.summary["kernel_distance_final"].to_numpy(),
    })
    return UnitOutput(result.frame.assign(angle=unit.key["angle"]), table, theory_notes=result.theory_notes)


def _time_to_learn(curves, params: Mapping[str, Any]) -> torch.Tensor:
    """First t after the switch at which the excess loss over the floor is ``threshold`` × the zero map's (B,),
    NaN if never: the same level for every angle, reachable on any task."""
    level = params["threshold"] * (params["zero_loss"] - params["floor"])
    return measures.time_to_level(excess(curves, params["floor"]), level)


def _pivot_section(ok: pd.DataFrame, folder: Path) -> list[str]:
    """Time to learn the target, seeds averaged: rows λ, one column per angle (measured, then predicted)."""
    if not len(ok):
        return []
    values = [c for c in ("time_to_learn", "theory_time_to_learn") if c in ok]
    pivot = ok.pivot_table(index="lam", columns="angle", values=values, aggfunc="mean")
    pivot.columns = [f"{'theory ' if a.startswith('theory') else ''}t (angle {b:.3g})" for a, b in pivot.columns]
    return ["Time to learn the target (seeds averaged):", "", markdown_table(pivot, index=True), ""]


SUITE = Suite(
    "rotation",
    "learn a task, then a copy with rotated singular vectors: time to learn the target against λ and angle",
    _units,
    _compute,
    axes=(Axis("angle", "rotation of the target's singular vectors (radians)", (0.3927, 0.7854)),
          *lam_seed_axes("λ of the λ-balanced init")),
    phases=("source", "rotated target"),
    measures=(
        Measure("target_loss0", "target loss at the switch", headline=False, of=lambda c, p: measures.initial(c)),
        Measure("loss_floor", "the target's loss floor at the network's rank (metrics.loss_floor)", headline=False),
        Measure("time_to_learn", "t after the switch until the target's excess loss over `loss_floor` ≤ `threshold` "
                "× that of the zero map", "theory_time_to_learn", of=_time_to_learn),
        Measure("loss_final", "target loss at the end", of=lambda c, p: measures.final(c)),
        Measure("kernel_distance_final", "1 − cos(K(0), K(t_end)) over both phases", headline=False),
    ),
    expectations=(
        Monotone("time_to_learn", "falls", by_abs=True, within="angle"),
        Monotone("time_to_learn", "rises", along="angle"),
        Agrees("time_to_learn", "theory_time_to_learn", rtol=0.1),
    ),
    protocol="Learn a random_regression source task from a λ-balanced init, then a copy whose singular vectors "
    "(`side`) are rotated by `angle`.",
    prediction="the target is learned faster at larger |λ| (each sign), and less similar tasks (larger angles) "
    "take longer.",
    figures=(charts.sweep(["time_to_learn"], "rotated pair: time to learn the target", "rotated.png", hue="angle"),),
    sections=(_pivot_section,),
    key=("angle", "lam"),
)
