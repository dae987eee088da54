"""Transfer (docs/theory.md §10): property generalisation on the hierarchy — a new feature, a new item.

One unit per λ, batched over seeds: train the hierarchy to convergence, then

- **new feature** (Saxe et al. 2019): a new output row w, trained on one item with the rest frozen. Training
  only w from zero by gradient flow on ½(w·h_i − 1)², h_i = W1x_i, ends at the minimum-norm solution
  w = h_iᵀ/‖h_i‖², so it is computed in that closed form (exact, no step size). Its value on item j is
  x_jᵀW1ᵀW1x_i/x_iᵀW1ᵀW1x_i; measured with the trained W1, predicted with the theory's W1ᵀW1;
- **new item** (the dual): a new input column trained to have one feature f with W2 frozen; closed form
  w = W2[f]ᵀ/‖W2[f]‖², giving features (W2W2ᵀ)[:, f]/(W2W2ᵀ)[f, f], predicted with the theory's W2W2ᵀ.

Scores come from ``metrics.generalisation_score`` and ``metrics.predicted_generalisation``; they are averaged
by tree distance from the trained item (``gen_d1`` = sibling, …) and, for a new item in the membership
encoding, over the ancestors, descendants and other nodes of f. Transfer between rotated task pairs is the
``rotation`` suite (:mod:`lazyrich.suites.rotation`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lazyrich import metrics, plots
from lazyrich.config.suites import TransferSuite
from lazyrich.experiment import run_experiment
from lazyrich.results import measures
from lazyrich.results.curves import Curves
from lazyrich.suites import charts
from lazyrich.suites.common import Suite, config_columns, lam_run, lam_seed_axes
from lazyrich.suites.runner import Unit, UnitOutput
from lazyrich.suites.spec import Axis, Measure, Monotone, Predicate, Verdict
from lazyrich.tasks import new_feature, new_item

__all__ = ["SUITE", "tree_distance"]

GEN_TOL = 1e-2
"""Largest |measured − predicted| generalisation score counted as agreement."""


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


def _units(params: TransferSuite, device: str) -> list[Unit]:
    values = {"suite": "transfer", "item": params.item, "feature": params.feature}
    return [Unit({"lam": lam}, values, {"experiment": lam_run(params, params.task, lam, params.t_max, device)})
            for lam in params.lams]


def _source_scores(curves: Curves, x: torch.Tensor, item: int, feature: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(new-feature scores (B, P), new-item scores (B, No)) from one source's final W1ᵀW1 and W2W2ᵀ.

    The closed forms of the module docstring: the new output row trained on item i scores item j as
    x_jᵀW1ᵀW1x_i / x_iᵀW1ᵀW1x_i; the new input column trained on feature f scores output o as
    (W2W2ᵀ)[o, f] / (W2W2ᵀ)[f, f]. The same function serves the simulation and the theory.
    """
    w1tw1 = measures.final(curves, "w1tw1").cpu().to(torch.float64)
    wwt_out = measures.final(curves, "wwt_out").cpu().to(torch.float64)
    eye = torch.eye(wwt_out.shape[-1], dtype=torch.float64)
    return (metrics.predicted_generalisation(w1tw1, x, item),
            metrics.predicted_generalisation(wwt_out, eye, feature))


def _group_means(scores: dict[str, torch.Tensor], groups: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``<prefix>gen_<group>``: each source's mean score (B,) over each group's entries; gen_err: the largest
    |measured − predicted| score per network where a theory ran."""
    out = {f"{prefix}gen_{name}": value[:, torch.as_tensor(mask)].mean(-1).numpy()
           for name, mask in groups.items() for prefix, value in scores.items()}
    if "theory_" in scores:
        out["gen_err"] = (scores[""] - scores["theory_"]).abs().amax(-1).numpy()
    return out


def _generalisation(unit: Unit, result) -> pd.DataFrame:
    task = result.task
    i = int(new_feature(task, unit.values["item"]).meta["item"])
    f = int(new_item(task, unit.values["feature"]).meta["output_row"])
    simulation, theory = result.curves()
    sources = {"": simulation[0], "theory_": theory[0]}
    scores = {prefix: _source_scores(c, task.X.cpu(), i, f) for prefix, c in sources.items() if c is not None}
    b = int(task.meta.get("branching", 2))
    dist = np.array([tree_distance(i, j, b) for j in range(task.P)])
    base = pd.DataFrame({**config_columns(result.meta), "loss_final": result.summary["loss_final"].to_numpy()})
    by_distance = {f"d{d}": dist == d for d in range(1, int(dist.max()) + 1)}
    features = base.assign(part="new_feature", trained=task.item_names[i] if task.item_names else str(i),
                           **_group_means({k: v[0] for k, v in scores.items()}, by_distance))
    relations = {}
    if task.meta.get("encoding") == "membership":
        rel = np.array(_relations(task.meta["feature_level"], f, b))
        relations = {r: rel == r for r in ("ancestor", "descendant", "other") if (rel == r).any()}
    item_scores = {k: v[1] for k, v in scores.items()}
    items = base.assign(part="new_item", trained=task.feature_names[f] if task.feature_names else str(f),
                        **_group_means(item_scores, relations),
                        gen_spread=np.delete(item_scores[""].abs().numpy(), f, axis=-1).mean(-1))
    return pd.concat([features, items]).sort_index(kind="stable").reset_index(drop=True)


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    result = run_experiment(unit.runs["experiment"])
    return UnitOutput(result.frame, _generalisation(unit, result), theory_notes=result.theory_notes)


def _scores_match(ok: pd.DataFrame) -> Verdict:
    """Measured scores equal the W1ᵀW1 / W2W2ᵀ predictions (largest gap ``gen_err`` ≤ GEN_TOL)."""
    if "gen_err" not in ok or not ok["gen_err"].notna().any():
        return Verdict(None, "No theory: no predicted scores.", "scores: no theory")
    err = float(ok["gen_err"].max())
    return Verdict(err <= GEN_TOL, f"Max |measured − predicted| score (W1ᵀW1 for the new feature, W2W2ᵀ for the new "
                   f"item): {err:.3g} (tolerance {GEN_TOL:g}).", f"scores within {err:.2g} of theory")


def _trained(ok: pd.DataFrame, folder: Path) -> list[str]:
    names = {p: ok.loc[ok["part"] == p, "trained"].iloc[0] for p in ("new_feature", "new_item")
             if (ok["part"] == p).any()}
    return [f"Trained: {', '.join(f'{p} on `{n}`' for p, n in names.items())}.", ""] if names else []


def _scores(part: str, ok: pd.DataFrame, cols: list[str], title: str, folder: Path) -> Path | None:
    rows = ok[ok["part"] == part]
    cols = [c for c in cols if c in rows and rows[c].notna().any()]
    if not len(rows) or not cols:
        return None
    return plots.save(plots.sweep(rows, "lam", cols, title=title), folder / f"{part}.png")


def _new_feature(ok: pd.DataFrame, frames: pd.DataFrame, folder: Path) -> Path | None:
    cols = sorted(c for c in ok.columns if c.startswith("gen_d"))
    return _scores("new_feature", ok, cols, "new feature: generalisation by tree distance (dotted: W1ᵀW1 "
                   "prediction)", folder)


def _new_item(ok: pd.DataFrame, frames: pd.DataFrame, folder: Path) -> Path | None:
    cols = ["gen_ancestor", "gen_descendant", "gen_other"]
    return _scores("new_item", ok, cols, "new item: inherited features (dotted: W2W2ᵀ prediction)", folder)


PARTS = ("new_feature", "new_item")

SUITE = Suite(
    "transfer",
    "property generalisation on the hierarchy: a new feature and a new item against λ",
    _units,
    _compute,
    axes=(Axis("part", "`new_feature` (a new output trained on one item) or `new_item` (a new input trained to "
               "have one feature)", PARTS), *lam_seed_axes("λ of the λ-balanced init")),
    phases=("learn the hierarchy", "new feature / new item (closed form)"),
    measures=(
        *(Measure(f"gen_d{d}", f"new feature: mean score (metrics.generalisation_score) on items at tree distance "
                  f"{d} from the trained one", f"theory_gen_d{d}") for d in (1, 2, 3)),
        *(Measure(f"gen_{r}", f"new item: mean score of the features of the {r} nodes of the trained feature",
                  f"theory_gen_{r}") for r in ("ancestor", "descendant", "other")),
        Measure("gen_err", "max |measured − predicted| score"),
        Measure("trained", "the item (new feature) or feature (new item) trained on", kind="text",
                example=("leaf0", "n3"), headline=False),
    ),
    expectations=(
        Monotone("gen_d1", "rises", where={"part": "new_feature"}),
        Monotone("gen_ancestor", "falls", where={"part": "new_item"}),
        Predicate("scores_match", _scores_match),
    ),
    protocol="Train the hierarchy (membership encoding) from a λ-balanced init, then add a new output trained on "
    "one item with the rest frozen, or a new item trained to have one feature with W2 frozen (closed-form "
    "gradient-flow limits). `theory_*`: the same scores from the theory's W1ᵀW1 / W2W2ᵀ "
    "(metrics.predicted_generalisation).",
    prediction="the new feature spreads as W1ᵀW1 (large positive λ keeps it structured, so it transfers and the "
    "sibling score rises with λ); the new item as W2W2ᵀ (the mirror image in λ: its ancestor score falls).",
    figures=(charts.curves("transfer: learning the hierarchy"), _new_feature, _new_item),
    sections=(_trained,),
    key=("part", "lam"),
    orders={"part": PARTS},
)
