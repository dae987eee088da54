"""Transfer (docs/theory.md §10): property generalisation on the hierarchy, and transfer between rotated task pairs.

Part ``generalisation`` (one unit per λ): train the hierarchy to convergence, then

- **new feature** (Saxe et al. 2019): a new output row w, trained on one item with the rest frozen. Training
  only w from zero by gradient flow on ½(w·h_i − 1)², h_i = W1x_i, ends at the minimum-norm solution
  w = h_iᵀ/‖h_i‖², so it is computed in that closed form (exact, no step size). Its value on item j is
  x_jᵀW1ᵀW1x_i/x_iᵀW1ᵀW1x_i; measured with the trained W1, predicted with the theory's W1ᵀW1;
- **new item** (the dual): a new input column trained to have one feature f with W2 frozen; closed form
  w = W2[f]ᵀ/‖W2[f]‖², giving features (W2W2ᵀ)[:, f]/(W2W2ᵀ)[f, f], predicted with the theory's W2W2ᵀ.

Scores come from ``metrics.generalisation_score`` and ``metrics.predicted_generalisation``; they are averaged
by tree distance from the trained item (``gen_d1`` = sibling, …) and, for a new item in the membership
encoding, over the ancestors, descendants and other nodes of f.

Part ``rotated`` (one unit per (angle, λ)): learn a source task, then a target whose singular vectors are
rotated by ``angle`` (``rotated_pair``); ``time_to_learn`` is the first t after the switch with target loss
≤ threshold × the loss of the zero map, measured and predicted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import metrics, plots
from lazyrich.experiment import build_task, run_experiment
from lazyrich.suites.common import (
    Report,
    Suite,
    experiment_config,
    flow_lr,
    load_frames,
    markdown_table,
    ok_rows,
    phase_curve,
)
from lazyrich.suites.runner import Unit, UnitOutput
from lazyrich.tasks import new_feature, new_item

__all__ = ["SUITE", "tree_distance"]

TABLE = (
    "part angle lam seed gen_d1 theory_gen_d1 gen_d2 theory_gen_d2 gen_d3 theory_gen_d3 gen_ancestor "
    "theory_gen_ancestor gen_descendant theory_gen_descendant gen_other theory_gen_other gen_err "
    "time_to_learn theory_time_to_learn"
).split()


def tree_distance(i: int, j: int, branching: int) -> int:
    """Levels up to the lowest common ancestor of leaves i and j of a tree (0: same leaf, 1: siblings, …)."""
    d = 0
    while i != j:
        i, j, d = i // branching, j // branching, d + 1
    return d


def _relations(levels: tuple[int, ...], f: int, branching: int) -> list[str]:
    """'self', 'ancestor', 'descendant' or 'other' for each node feature relative to node feature f
    (membership encoding: features are tree nodes, breadth-first, ``levels`` their depths)."""
    index = [sum(1 for lv in levels[:k] if lv == levels[k]) for k in range(len(levels))]
    lf, qf = levels[f], index[f]
    out = []
    for lv, q in zip(levels, index, strict=True):
        if (lv, q) == (lf, qf):
            out.append("self")
        elif lv < lf and qf // branching ** (lf - lv) == q:
            out.append("ancestor")
        elif lv > lf and q // branching ** (lv - lf) == qf:
            out.append("descendant")
        else:
            out.append("other")
    return out


def _units(params: Mapping[str, Any], device: str) -> list[Unit]:
    out = []
    gen = params["generalisation"]
    trainer = {"n_log": params["n_log"]}
    hier = build_task(gen["task"])
    s_max = float(hier.svd[1][0]) / (hier.whitening_scale or 1.0)
    for lam in params["lams"]:
        lr = flow_lr(lam, s_max, params["eta"], params["lr_max"])
        exp = experiment_config(
            gen["task"],
            lam=lam,
            seeds=params["seeds"],
            lr=lr,
            t_max=gen["t_max"],
            init={"scale": params["init_scale"], "align": False},
            trainer=trainer,
            theory=params["theory"],
            device=device,
        )
        out.append(
            Unit(
                {"part": "generalisation", "angle": math.nan, "lam": float(lam)},
                {
                    "suite": "transfer",
                    "part": "generalisation",
                    "experiment": exp,
                    "item": gen["item"],
                    "feature": gen["feature"],
                },
            )
        )
    rot = params["rotated"]
    source = build_task({"name": "random_regression", **dict(rot["task"])})
    s_max = float(source.svd[1][0]) / (source.whitening_scale or 1.0)
    for angle in rot["angles"]:
        task = {
            "name": "transfer_rotated",
            "base": "random_regression",
            "base_params": dict(rot["task"]),
            "angle": float(angle),
            "side": rot["side"],
            "t_budget": float(rot["t_phase"]),
        }
        for lam in params["lams"]:
            lr = flow_lr(lam, s_max, params["eta"], params["lr_max"])
            exp = experiment_config(
                task,
                lam=lam,
                seeds=params["seeds"],
                lr=lr,
                t_max=rot["t_phase"],
                init={"scale": params["init_scale"], "align": rot["align"]},
                trainer={**trainer, "spacing": rot["spacing"]},
                theory=params["theory"],
                device=device,
            )
            out.append(
                Unit(
                    {"part": "rotated", "angle": float(angle), "lam": float(lam)},
                    {
                        "suite": "transfer",
                        "part": "rotated",
                        "experiment": exp,
                        "threshold": float(rot["threshold"]),
                    },
                )
            )
    return out


def _generalisation(unit: Unit, result) -> pd.DataFrame:
    task = build_task(unit.config["experiment"]["task"])
    i = int(new_feature(task, unit.config["item"]).meta["item"])
    f = int(new_item(task, unit.config["feature"]).meta["output_row"])
    w1, w2 = (w.cpu() for w in result.trajectories[0].final_weights)
    pred = result.predictions[0]
    x = task.X.cpu()
    h = x @ w1.mT  # (B, P, Nh): hidden representation of every item
    readout = h[:, i] / (h[:, i] * h[:, i]).sum(-1, keepdim=True)  # new output row, closed form (docstring)
    feature_score = metrics.generalisation_score(torch.einsum("bph,bh->bp", h, readout), i)
    column = w2[:, f] / (w2[:, f] * w2[:, f]).sum(-1, keepdim=True)  # new input column, closed form
    item_score = metrics.generalisation_score(torch.einsum("boh,bh->bo", w2, column), f)
    b = int(task.meta.get("branching", 2))
    dist = np.array([tree_distance(i, j, b) for j in range(task.P)])
    relations = (
        np.array(_relations(task.meta["feature_level"], f, b))
        if task.meta.get("encoding") == "membership"
        else None
    )
    theory_feature = theory_item = None
    if pred is not None:
        theory_feature = metrics.predicted_generalisation(pred.w1tw1[:, -1].cpu(), x, i)
        eye = torch.eye(task.n_out, dtype=torch.float64)
        theory_item = metrics.predicted_generalisation(pred.wwt_out[:, -1].cpu(), eye, f)
    rows = []
    for net, meta in result.meta.iterrows():
        base = {
            "lam": meta["lam"],
            "seed": int(meta["seed"]),
            "lr": meta["lr"],
            "final_loss": float(result.summary.loc[net, "final_loss"]),
        }
        row = {**base, "part": "new_feature", "trained": task.item_names[i] if task.item_names else str(i)}
        for d in range(1, int(dist.max()) + 1):
            row[f"gen_d{d}"] = float(feature_score[net, dist == d].mean())
            if theory_feature is not None:
                row[f"theory_gen_d{d}"] = float(theory_feature[net, dist == d].mean())
        if theory_feature is not None:
            row["gen_err"] = float((feature_score[net] - theory_feature[net]).abs().max())
        rows.append(row)
        row = {**base, "part": "new_item", "trained": task.feature_names[f] if task.feature_names else str(f)}
        if relations is not None:
            for rel in ("ancestor", "descendant", "other"):
                if (relations == rel).any():
                    row[f"gen_{rel}"] = float(item_score[net, relations == rel].mean())
                    if theory_item is not None:
                        row[f"theory_gen_{rel}"] = float(theory_item[net, relations == rel].mean())
        row["gen_spread"] = float(np.delete(item_score[net].abs().numpy(), f).mean())
        if theory_item is not None:
            row["gen_err"] = float((item_score[net] - theory_item[net]).abs().max())
        rows.append(row)
    return pd.DataFrame(rows)


def _rotated(unit: Unit, result) -> pd.DataFrame:
    target = build_task(unit.config["experiment"]["task"])[1].task
    zero = torch.zeros(target.n_out, target.n_in, dtype=torch.float64)
    level = unit.config["threshold"] * float(
        metrics.loss_from_product(zero, target.sigma_xx, target.sigma_yx, target.sigma_yy)
    )
    rows = []
    for net, meta in result.meta.iterrows():
        t, loss = phase_curve(result.frame, net, 1, "sim/loss")
        row = {
            "lam": meta["lam"],
            "seed": int(meta["seed"]),
            "lr": meta["lr"],
            "part": "rotated",
            "target_loss0": float(loss[0]),
            "final_loss": float(loss[-1]),
            "time_to_learn": float(metrics.time_to_threshold(t, loss, level, relative=False)),
            "final_kernel_distance": float(result.summary.loc[net, "final_kernel_distance"]),
        }
        if "theory/loss" in result.frame:
            _, th = phase_curve(result.frame, net, 1, "theory/loss")
            row["theory_time_to_learn"] = float(metrics.time_to_threshold(t, th, level, relative=False))
        rows.append(row)
    return pd.DataFrame(rows)


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    result = run_experiment(unit.config["experiment"], None, log_wandb=False, plot=False)
    rows = (
        _generalisation(unit, result) if unit.config["part"] == "generalisation" else _rotated(unit, result)
    )
    frame = result.frame.assign(part=unit.key["part"], angle=unit.key["angle"])
    (run_dir / "theory.txt").write_text("\n".join(result.theory_notes) + "\n")
    return UnitOutput(frame, rows)


def _falls_with_abs(series: pd.Series) -> bool:
    """True when a series indexed by λ of one sign decreases as |λ| grows (vacuous for < 2 points)."""
    d = np.diff(series.sort_index(key=np.abs).to_numpy())
    return bool((d < 0).all())


def _trend(series: pd.Series) -> str:
    """'rises', 'falls' or 'is not monotone' for a series indexed by λ (sorted)."""
    d = np.diff(series.sort_index().to_numpy())
    return "rises" if (d >= 0).all() else "falls" if (d <= 0).all() else "is not monotone"


def _report(table: pd.DataFrame, suite_dir: Path) -> Report:
    ok = ok_rows(table)
    figures = []
    frames = load_frames(suite_dir, table)
    if len(frames):
        part = frames[frames["part"] == "generalisation"]
        if len(part):
            fig = plots.curves(
                part, ("loss", "kernel_distance"), hue="lam", title="transfer: learning the hierarchy"
            )
            figures.append(plots.save(fig, suite_dir / "curves.png"))
    feat, item, rot = (ok[ok["part"] == p] for p in ("new_feature", "new_item", "rotated"))
    gen_cols = sorted(c for c in feat.columns if c.startswith("gen_d") and feat[c].notna().any())
    rel_cols = [
        c for c in ("gen_ancestor", "gen_descendant", "gen_other") if c in item and item[c].notna().any()
    ]
    if len(feat) and gen_cols:
        figures.append(
            plots.save(
                plots.sweep(
                    feat,
                    "lam",
                    gen_cols,
                    title="new feature: generalisation by tree distance (dotted: W1ᵀW1 prediction)",
                ),
                suite_dir / "new_feature.png",
            )
        )
    if len(item) and rel_cols:
        figures.append(
            plots.save(
                plots.sweep(
                    item, "lam", rel_cols, title="new item: inherited features (dotted: W2W2ᵀ prediction)"
                ),
                suite_dir / "new_item.png",
            )
        )
    if len(rot):
        figures.append(
            plots.save(
                plots.sweep(
                    rot, "lam", ["time_to_learn"], hue="angle", title="rotated pair: time to learn the target"
                ),
                suite_dir / "rotated.png",
            )
        )
    lines = [
        "## Transfer",
        "",
        "`new_feature`: a new output trained on one item (the `trained` item) with the rest frozen "
        "(closed-form gradient-flow limit of training only the new row); `gen_dk` = mean generalisation "
        "score "
        "(metrics.generalisation_score) over items at tree distance k (1 = sibling), `theory_gen_dk` the "
        "same from the theory's W1ᵀW1 (metrics.predicted_generalisation). `new_item`: a new item trained to "
        "have one feature (`trained`) with W2 frozen; `gen_ancestor/descendant/other` = mean score of "
        "the features of those nodes relative to it, predicted from W2W2ᵀ. `gen_err` = max |measured − "
        "predicted| score. `rotated`: source task then a copy with singular vectors rotated by `angle` "
        "(radians); `time_to_learn` = t after the switch until the target loss ≤ threshold × loss of the "
        "zero map.",
        "",
    ]
    for name, part in (("New feature", feat), ("New item", item)):
        if len(part):
            cols = [c for c in TABLE if c in part and part[c].notna().any() and c not in ("part", "angle")]
            lines += [
                f"**{name}** (trained on `{part['trained'].iloc[0]}`):",
                "",
                markdown_table(part[cols]),
                "",
            ]
    if len(rot):
        pivot = rot.pivot_table(
            index="lam",
            columns="angle",
            values=[c for c in ("time_to_learn", "theory_time_to_learn") if c in rot],
            aggfunc="mean",
        )
        pivot.columns = [
            f"{'theory ' if a.startswith('theory') else ''}t (angle {b:.3g})" for a, b in pivot.columns
        ]
        lines += [
            "**Rotated pair**: time to learn the target (seeds averaged):",
            "",
            markdown_table(pivot, index=True),
            "",
        ]
    lines += [
        "### Outcome (measured) against docs/theory.md §10",
        "",
        "The Theory page predicts: the new feature spreads as W1ᵀW1 (large positive λ keeps it structured, so it "
        "transfers); the new item as W2W2ᵀ (the mirror image in λ).",
        "",
    ]
    verdicts = []
    if len(feat) and gen_cols:
        mean = feat.groupby("lam")[gen_cols].mean()
        err = float(feat["gen_err"].max()) if "gen_err" in feat else float("nan")
        trends = ", ".join(
            f"{c} {_trend(mean[c])} with λ ({mean[c].iloc[0]:.3g} → {mean[c].iloc[-1]:.3g})" for c in gen_cols
        )
        lines.append(f"- New feature: {trends}; max |measured − W1ᵀW1 prediction| = {err:.3g}.")
        verdicts.append(f"new-feature sibling score {_trend(mean[gen_cols[0]])} with λ (err {err:.2g})")
    if len(item) and rel_cols:
        mean = item.groupby("lam")[rel_cols].mean()
        err = float(item["gen_err"].max()) if "gen_err" in item else float("nan")
        trends = ", ".join(
            f"{c} {_trend(mean[c])} with λ ({mean[c].iloc[0]:.3g} → {mean[c].iloc[-1]:.3g})" for c in rel_cols
        )
        lines.append(f"- New item: {trends}; max |measured − W2W2ᵀ prediction| = {err:.3g}.")
        verdicts.append(f"new-item ancestor score {_trend(mean[rel_cols[0]])} with λ")
    if len(rot):
        falls, gaps = [], []
        for angle, part in rot.groupby("angle"):
            t = part.groupby("lam")["time_to_learn"].mean()
            th = (
                part.groupby("lam")["theory_time_to_learn"].mean()
                if "theory_time_to_learn" in part
                else t * np.nan
            )
            gaps.append(float(((t - th).abs() / th.abs()).max()))
            falls += [_falls_with_abs(t[t.index > 0]), _falls_with_abs(t[t.index < 0])]
            lines.append(
                f"- Rotated pair, angle {angle:.3g}: time to learn the target "
                + ", ".join(f"{v:.3g} (λ={k:g})" for k, v in t.items())
                + f"; max relative gap to the theory {gaps[-1]:.2g}."
            )
        at_t0 = rot.groupby("angle")["time_to_learn"].mean()
        lines.append(
            f"- Larger angles (less similar tasks) take longer on average: {_trend(at_t0) == 'rises'}."
        )
        verdicts.append(
            f"rotated: time to learn {'falls' if all(falls) else 'does NOT always fall'} with |λ| at every "
            f"angle (theory gap ≤ {max(gaps):.2g})"
        )
    return Report("\n".join(lines) + "\n", figures, "; ".join(verdicts), TABLE)


SUITE = Suite(
    "transfer",
    "property generalisation (new feature / new item) and rotated-pair transfer against λ",
    _units,
    _compute,
    _report,
    columns=tuple(TABLE),
    key=("part", "angle", "lam"),
)
