"""Rotation (docs/theory.md §10): learn a source task, then a target whose singular vectors are rotated.

One unit per (angle, λ), batched over seeds: a ``transfer_rotated`` task sequence (``rotated_pair`` of a
``random_regression`` source) run by :func:`~lazyrich.experiment.run_experiment`, so the theory restarts at the
switch from the weights actually reached. ``time_to_learn`` is the first t after the switch with target loss
≤ ``threshold`` × the loss of the zero map, measured and predicted. Split from the ``transfer`` suite, which
keeps property generalisation on the hierarchy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lazyrich import metrics
from lazyrich.experiment import build_task, run_experiment
from lazyrich.suites import figures
from lazyrich.suites.common import Suite, config_columns, lam_config, lam_seed_axes, markdown_table, phase_curve
from lazyrich.suites.runner import Unit, UnitOutput
from lazyrich.suites.spec import Agrees, Axis, Measure, Monotone

__all__ = ["SUITE"]


def _units(params: Mapping[str, Any], device: str) -> list[Unit]:
    source = build_task({"name": "random_regression", **dict(params["task"])})
    s_max = float(source.svd[1][0]) / (source.whitening_scale or 1.0)
    out = []
    for angle in params["angles"]:
        task = {
            "name": "transfer_rotated",
            "base": "random_regression",
            "base_params": dict(params["task"]),
            "angle": float(angle),
            "side": params["side"],
            "t_budget": float(params["t_phase"]),
        }
        for lam in params["lams"]:
            exp = lam_config(task, lam, params, s_max, t_max=params["t_phase"], align=params["align"],
                             spacing=params["spacing"], device=device)
            config = {"suite": "rotation", "experiment": exp, "threshold": float(params["threshold"])}
            out.append(Unit({"angle": float(angle), "lam": float(lam)}, config))
    return out


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    result = run_experiment(unit.config["experiment"], None, log_wandb=False, plot=False)
    target = build_task(unit.config["experiment"]["task"])[1].task
    zero = torch.zeros(target.n_out, target.n_in, dtype=torch.float64)
    level = unit.config["threshold"] * float(
        metrics.loss_from_product(zero, target.sigma_xx, target.sigma_yx, target.sigma_yy)
    )
    rows = []
    for net, meta in result.meta.iterrows():
        t, loss = phase_curve(result.frame, net, 1, "sim/loss")
        row = {
            **config_columns(meta),
            "target_loss0": float(loss[0]),
            "loss_final": float(loss[-1]),
            "time_to_learn": float(metrics.time_to_threshold(t, loss, level, relative=False)),
            "kernel_distance_final": float(result.summary.loc[net, "kernel_distance_final"]),
        }
        if "theory/loss" in result.frame:
            _, th = phase_curve(result.frame, net, 1, "theory/loss")
            row["theory_time_to_learn"] = float(metrics.time_to_threshold(t, th, level, relative=False))
        rows.append(row)
    (run_dir / "theory.txt").write_text("\n".join(result.theory_notes) + "\n")
    return UnitOutput(result.frame.assign(angle=unit.key["angle"]), pd.DataFrame(rows))


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
        Measure("time_to_learn", "t after the switch until the target loss ≤ `threshold` × the loss of the zero "
                "map", "theory_time_to_learn"),
        Measure("loss_final", "target loss at the end"),
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
    figures=(figures.sweep(["time_to_learn"], "rotated pair: time to learn the target", "rotated.png", hue="angle"),),
    sections=(_pivot_section,),
    key=("angle", "lam"),
)
