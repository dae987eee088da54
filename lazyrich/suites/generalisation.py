"""Generalisation (docs/theory.md §11): held-out loss and grokking as the lazy → rich transition.

A linear student–teacher task with fewer samples than inputs (P = ratio·Ni < Ni): gradient descent never moves the
part of W1 that acts outside the span of the training inputs (the gradient W2ᵀ(Σyx − WΣxx) lies in that span), so
the part of the initial product there stays in the network's function. It costs no training loss and all of its
test loss. Weight decay shrinks it like e^{−γt} (the gradient has no component to hold it): the test loss falls long
after the training loss, the later the larger that part started (init scale, α) and the weaker the decay. From a
small (rich) init it was never there, and the test loss follows the training loss.

One unit per point of the sweep, batched over seeds: a base point and, one axis at a time, λ, the init scale, the
weight decay γ, the output multiplier α and P/Ni. The theory is ``auto`` (the ode theory here: Σxx ≠ c·I), which
models weight decay, α and the held-out loss. The step is lr = min(lr_max, eta/r) with r an estimate of the
fastest rate over the run, α·c·√((αλ)² + 4(1.5·α·scale + σ₁/c)²) (c = λ_max(Σxx), σ₁ = the top singular value of
Σyx, 1.5·scale ≈ the top singular value of the Gaussian initial product for Ni = 4·No).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import metrics, plots
from lazyrich.config.suites import GeneralisationSuite
from lazyrich.experiment import build_task, run_experiment
from lazyrich.results import measures
from lazyrich.suites.common import Suite, config_columns, suite_run
from lazyrich.suites.runner import Unit, UnitOutput
from lazyrich.suites.spec import Agrees, Axis, Measure, Monotone, Predicate, Verdict, measure_columns

__all__ = ["AXES", "SUITE"]

AXES = {"lam": "lams", "init_scale": "init_scales", "weight_decay": "weight_decays", "output_scale": "output_scales",
        "ratio": "ratios"}
"""Each axis of the sweep (a column of the table) and the schema field listing its values."""


def _points(params: GeneralisationSuite) -> list[dict[str, float]]:
    """The base point, then each axis's values with the other axes at the base (each point once)."""
    base = {axis: float(getattr(params, axis)) for axis in AXES}
    points = [base]
    for axis, field in AXES.items():
        points += [{**base, axis: float(value)} for value in getattr(params, field)]
    return list({json.dumps(p, sort_keys=True): p for p in points}.values())


def _task(params: GeneralisationSuite, ratio: float) -> dict[str, Any]:
    n_in = int(params.task["n_in"])
    return {**params.task, "n_samples": max(1, round(ratio * n_in))}


@functools.lru_cache(maxsize=64)
def _task_scales(task: str) -> tuple[float, float]:
    """(λ_max(Σxx), σ₁(Σyx)) of the task config ``task`` (JSON), built once per process."""
    built = build_task(json.loads(task))
    return float(torch.linalg.eigvalsh(built.sigma_xx)[-1]), float(torch.linalg.svdvals(built.sigma_yx)[0])


def _step(params: GeneralisationSuite, point: Mapping[str, float], task: Mapping[str, Any]) -> float:
    """lr = min(lr_max, eta/r), r the fastest-rate estimate of the module docstring."""
    c, sigma = _task_scales(json.dumps(dict(task), sort_keys=True))
    alpha, lam, scale = point["output_scale"], point["lam"], point["init_scale"]
    rate = alpha * c * math.hypot(alpha * lam, 2 * (1.5 * alpha * scale + sigma / c))
    return min(params.lr_max, params.eta / rate)


def _units(params: GeneralisationSuite, device: str) -> list[Unit]:
    base = {axis: float(getattr(params, axis)) for axis in AXES}
    units = []
    for point in _points(params):
        task = _task(params, point["ratio"])
        run = suite_run(params, task, lam=point["lam"], lr=_step(params, point, task), t_max=params.t_max,
                        device=device, scale=point["init_scale"], weight_decay=point["weight_decay"],
                        output_scale=point["output_scale"], spacing=params.spacing)
        units.append(Unit(point, {"suite": "generalisation", "threshold": params.threshold, "base": base},
                          {"experiment": run}))
    return units


def _levels(task, threshold: float) -> dict[str, float]:
    """The floors and levels of a task with held-out data: the training loss floor L_min and the zero map's loss
    ½tr Σyy; the held-out loss of the least-squares map Σyx Σxx⁺ (the best the training data determine) and of
    the zero map; each level ``threshold`` of the way from the floor to the zero map's loss."""
    held = task.heldout
    train_floor = float(metrics.loss_floor(task.sigma_xx, task.sigma_yx, task.sigma_yy))
    w_star = task.sigma_yx @ torch.linalg.pinv(task.sigma_xx)
    test_floor = float(metrics.loss_from_product(w_star, held.sigma_xx, held.sigma_yx, held.sigma_yy))
    train_zero, test_zero = (0.5 * float(torch.trace(s)) for s in (task.sigma_yy, held.sigma_yy))
    return {"train_floor": train_floor, "test_floor": test_floor,
            "train_level": train_floor + threshold * (train_zero - train_floor),
            "test_level": test_floor + threshold * (test_zero - test_floor)}


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    run = unit.runs["experiment"]
    result = run_experiment(run)
    params = {**unit.values, **_levels(result.task, unit.values["threshold"])}
    simulation, theory = result.curves()
    summary = result.summary
    point = {axis: unit.key[axis] for axis in AXES}
    base = unit.values["base"]
    on_axis = {f"on_{axis}": all(point[a] == base[a] for a in AXES if a != axis) for axis in AXES}
    table = pd.DataFrame({
        **config_columns(result.meta), **{a: point[a] for a in AXES if a != "lam"}, **on_axis,
        "n_samples": int(run.task["n_samples"]),
        **measure_columns(SUITE.measures, simulation, theory, params),
        "test_floor": params["test_floor"],
        "kernel_distance_final": summary["kernel_distance_final"].to_numpy(),
        "lam_law_gap": summary["lam_law_gap"].to_numpy() if "lam_law_gap" in summary else np.nan,
    })
    if theory[0] is not None:
        table["theory"] = theory[0].source
    frame = result.frame.assign(**{a: point[a] for a in AXES if a != "lam"}, **on_axis)
    return UnitOutput(frame, table, theory_notes=result.theory_notes)


def _late(curves, p: Mapping[str, Any]) -> torch.Tensor:
    return measures.grokking_time(curves, p["train_level"], p["test_level"]) - measures.time_to_level(
        curves, p["train_level"])


def _on(table: pd.DataFrame, axis: str) -> pd.DataFrame:
    return table[table[f"on_{axis}"].astype(bool)] if f"on_{axis}" in table else table.iloc[:0]


def _decay_groks(ok: pd.DataFrame) -> Verdict:
    """Without weight decay nothing is learned late (the part outside the data's span never shrinks): the test
    loss reaches its level with the training loss or not at all; with any γ > 0 every seed reaches it."""
    part = _on(ok, "weight_decay")
    if not len(part) or not (part["weight_decay"] == 0).any() or not (part["weight_decay"] > 0).any():
        return Verdict(None, "Weight decay: the sweep needs γ = 0 and γ > 0.", "decay not judged")
    lines, holds = [], []
    for column, delay in (("t_grok", "grok_delay"), ("theory_t_grok", "theory_grok_delay")):
        if column not in part:
            continue
        zero, decayed = part[part["weight_decay"] == 0], part[part["weight_decay"] > 0]
        late = zero[delay].notna() & (zero[delay] > zero["t_train"])
        holds.append(not late.any() and bool(decayed[column].notna().all()))
        lines.append(f"`{column}`: at γ = 0 {int(zero[column].isna().sum())} of {len(zero)} seeds never reach "
                     f"the level and {int(late.sum())} reach it late; at γ > 0 {int(decayed[column].notna().sum())} "
                     f"of {len(decayed)} reach it")
    return Verdict(all(holds), "Grokking needs weight decay: " + "; ".join(lines) + ".",
                   "groks only with weight decay" if all(holds) else "grokking without decay, or none with it")


def _falls_with_decay(ok: pd.DataFrame) -> Verdict:
    """t_grok falls as γ grows (γ > 0): the part outside the data's span decays like e^{−γt}."""
    return Monotone("t_grok", "falls", along="weight_decay").check(
        _on(ok, "weight_decay").loc[lambda d: d["weight_decay"] > 0])


def _axes_figure(ok: pd.DataFrame, frames: pd.DataFrame, folder: Path) -> Path | None:
    """t_grok (top) and the final test loss (bottom) against each axis, seeds averaged (a point where a seed never
    generalises is left out); theory dotted."""
    if not len(ok):
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(AXES), figsize=(3.0 * len(AXES), 5.2), squeeze=False)
    for col, axis in enumerate(AXES):
        part = _on(ok, axis)
        for row, column in enumerate(("t_grok", "test_loss_final")):
            ax = axes[row, col]
            if len(part) and part[axis].nunique() > 1:
                mean = part.groupby(axis)[[column, f"theory_{column}"]].agg(lambda v: v.mean(skipna=False))
                theory = mean[f"theory_{column}"] if f"theory_{column}" in mean else None
                plots.sim_theory(ax, mean.index.to_numpy(float), mean[column].to_numpy(), theory, marker="o")
            ax.set_xlabel(axis)
            ax.set_ylabel(column.replace("_", " ") if col == 0 else "")
            ax.grid(alpha=0.3)
    plots.legend_sim_theory(axes[0, -1], outside=True)
    fig.suptitle("generalisation: grokking time and test loss, one axis at a time")
    fig.tight_layout()
    return plots.save(fig, folder / "axes.png")


def _curves_figure(ok: pd.DataFrame, frames: pd.DataFrame, folder: Path) -> Path | None:
    """Training and test loss against t along the init-scale axis (lazy → rich), theory dotted."""
    part = frames[frames["on_init_scale"].astype(bool)] if "on_init_scale" in frames else frames.iloc[:0]
    if not len(part):
        return None
    fig = plots.curves(part, ("loss", "test_loss"), hue="init_scale", log_t=True,
                       title="generalisation: training and test loss against the init scale")
    return plots.save(fig, folder / "curves.png")


SUITE = Suite(
    "generalisation",
    "held-out loss and grokking against λ, init scale, weight decay, α and P/Ni",
    _units,
    _compute,
    axes=(Axis("lam", "λ of the λ-balanced init", (-2.0, 0.0, 2.0)),
          Axis("init_scale", "size of the initial product", (0.1, 1.0, 3.0)),
          Axis("weight_decay", "γ, L2 in the loss", (0.0, 0.05)),
          Axis("output_scale", "α: ŷ = α·W2W1x", (0.5, 2.0)),
          Axis("ratio", "P/Ni", (0.25, 1.5)),
          Axis("seed", "init seed", (0, 1))),
    phases=("train",),
    measures=(
        Measure("t_train", "first t at which the training loss is `threshold` of the way from its floor to the zero "
                "map's", "theory_t_train", of=lambda c, p: measures.time_to_level(c, p["train_level"])),
        Measure("t_grok", "first t ≥ t_train at which the test loss is `threshold` of the way from the held-out loss "
                "of Σyx Σxx⁺ to the zero map's (NaN: not by t_max)", "theory_t_grok",
                of=lambda c, p: measures.grokking_time(c, p["train_level"], p["test_level"])),
        Measure("grok_delay", "t_grok − t_train: how late the network generalises", "theory_grok_delay", of=_late),
        Measure("test_loss_final", "held-out loss at t_max", "theory_test_loss_final",
                of=lambda c, p: measures.final(c, "test_loss")),
        Measure("loss_final", "training loss at t_max", "theory_loss_final", headline=False,
                of=lambda c, p: measures.final(c)),
        Measure("test_floor", "held-out loss of Σyx Σxx⁺, the least-squares map of the training data",
                headline=False),
        Measure("kernel_distance_final", "1 − cos(K(0), K(t_max)): lazy (small) or rich", headline=False),
        Measure("lam_law_gap", "largest gap of λ̂(t) to λ̂(0)e^{−2γt}, relative to the size of its terms",
                headline=False),
        Measure("theory", "which theory ran", kind="text", example=("ode",), headline=False),
        *(Measure(f"on_{axis}", f"the row lies on the {axis} axis: every other axis at its base value",
                  kind="bool", headline=False) for axis in AXES),
    ),
    expectations=(
        Predicate("decay_groks", _decay_groks),
        Predicate("falls_with_decay", _falls_with_decay),
        Monotone("t_grok", "rises", along="init_scale", where={"on_init_scale": True}),
        Monotone("t_grok", "rises", along="output_scale", where={"on_output_scale": True}),
        Monotone("t_grok", "falls", along="lam", where={"on_lam": True}),
        Monotone("test_loss_final", "falls", along="ratio", where={"on_ratio": True}),
        Agrees("t_grok", "theory_t_grok", 0.05),
        Agrees("test_loss_final", "theory_test_loss_final", 0.01),
    ),
    protocol="A student–teacher task (a rank-2 teacher, Gaussian inputs, no noise) with P = ratio·Ni samples and "
    "256 held-out ones; λ-balanced inits, weight decay as L2 in the loss. One axis varies at a time around the "
    "base point (columns `on_<axis>` mark the rows of each axis). `theory_*`: the same measures of the ode "
    "theory's prediction (weight decay, α and the held-out loss included); GD with step `eta`/rate runs ahead of "
    "the flow by about eta/2 in relative time.",
    prediction="gradient descent never moves the part of the initial W1 outside the span of the training inputs, "
    "which costs test loss only: without weight decay a lazy network keeps it and never generalises late; weight "
    "decay shrinks it like e^{−γt}, so the test loss falls after the training loss (grokking), later for a larger "
    "init or α (more of it), for smaller γ, and for λ < 0 (W2 grows while fitting, and that part with it); more "
    "data (P/Ni) leaves less of the input space unseen and a lower test loss.",
    section="§11",
    figures=(_axes_figure, _curves_figure),
    key=("lam", "init_scale", "weight_decay", "output_scale", "ratio"),
)
