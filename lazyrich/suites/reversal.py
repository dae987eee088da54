"""Reversal learning (docs/theory.md §10): learn a task to convergence, then its reversal Σyx → −Σyx.

λ = 0 should stall at a saddle (B = 0 when the reversal starts from the learned, task-aligned solution) and
every λ ≠ 0 should reverse, faster for larger |λ|. One unit is one λ, batched over seeds; its two phases are a
:class:`~lazyrich.tasks.TaskSequence` run by :func:`~lazyrich.experiment.run_experiment`, so the theory
restarts at the switch from the weights the network actually reached. Beside the measured outcome it reports
the verdict of the exact theory (docs/theory.md §4) on those weights: whether B is singular (a saddle) and the loss
it predicts as t → ∞; and, at λ ≈ 0, when GD escapes that saddle anyway (``lazyrich.theory.escape``: the seed in
B grows like e^{c s̃ t}), as a predicted plateau beside the measured one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich.config.suites import ReversalSuite
from lazyrich.experiment import run_experiment
from lazyrich.results import measures
from lazyrich.results.curves import predicted
from lazyrich.suites import charts
from lazyrich.suites.common import Suite, config_columns, excess, lam_run, lam_seed_axes, loss_floor, zero_map_loss
from lazyrich.suites.runner import Unit, UnitOutput
from lazyrich.suites.spec import Measure, Monotone, Predicate, Verdict, measure_columns

__all__ = ["SUITE"]


def _units(params: ReversalSuite, device: str) -> list[Unit]:
    task = _sequence_task(params.task, params.t_phase)
    values = {"suite": "reversal", "success_threshold": params.success_threshold, "plateau_band": params.plateau_band,
              "exact_balance_rtol": params.exact_balance_rtol}
    return [Unit({"lam": lam}, values, {"experiment": lam_run(params, task, lam, params.t_phase, device,
                                                              align=params.align, spacing=params.spacing)})
            for lam in params.lams]


def _sequence_task(task: Mapping[str, Any], t_phase: float) -> dict[str, Any]:
    """The registered ``reversal`` task (learn, then reverse) around the base task config ``task``."""
    params = {k: v for k, v in dict(task).items() if k not in ("name", "whiten")}
    return {
        "name": "reversal",
        "whiten": task.get("whiten", False),
        "base": task["name"],
        "base_params": params,
        "kind": "full",
        "t_budget": float(t_phase),
    }


def _time_to_reverse(curves, params: Mapping[str, Any]) -> torch.Tensor:
    """First t since the switch at which the excess loss over the floor is ``success_threshold`` × its value at
    the switch (B,), NaN if never: the one definition behind ``time_to_reverse`` and ``success``, for the
    simulation and every theory (:func:`lazyrich.results.measures.time_to_learn`)."""
    return measures.time_to_learn(curves, params["success_threshold"], params["floor"])


def _exact_verdict(task, weights: list[torch.Tensor], rtol: float) -> tuple[np.ndarray, np.ndarray]:
    """(saddle (B,), limit loss (B,)) of the exact theory for ``weights`` on ``task``; NaN where it refuses.

    ``rtol`` loosens the balance check: GD conserves W2ᵀW2 − W1W1ᵀ only up to O(lr·t), so the weights reached
    by training are λ̂-balanced to about 1e-4, not to the 1e-8 of a fresh init.
    """
    from lazyrich.theory.exact import ExactTheory

    theory = ExactTheory(balance_rtol=rtol)
    batch = weights[0].shape[0]
    if theory.check(task, weights) is not None:
        return np.full(batch, np.nan), np.full(batch, np.nan)
    pred = theory.predict(task, weights, torch.zeros(1, dtype=torch.float64))
    return pred.converges_to_saddle.cpu().numpy().astype(float), pred.final_loss.cpu().numpy()


def _escape(task, weights: list[torch.Tensor], t: torch.Tensor, params: Mapping[str, Any],
            dtype: str) -> dict[str, np.ndarray]:
    """The escape model from the switch weights, measured like the other sources (the suite's ``plateau_time``
    and ``success`` measures): predicted plateau, first escape time and whether the reversal succeeds within
    the phase (B,) each; NaN where it does not apply (λ̂ away from 0) or nothing is saddle-bound."""
    from lazyrich.theory.escape import EscapeTheory

    theory = EscapeTheory(dtype=dtype)
    batch = weights[0].shape[0]
    nan = np.full(batch, np.nan)
    if theory.check(task, weights) is not None:
        return {"escape_plateau_time": nan, "escape_time": nan, "escape_success": nan}
    pred = theory.predict(task, weights, t)
    escape = predicted(pred)
    measure = {m.column: m.of for m in SUITE.measures}
    bound = pred.converges_to_saddle.cpu().numpy()
    first = pred.escape_time.nan_to_num(nan=np.inf).amin(-1).cpu().numpy()
    return {
        "escape_plateau_time": np.where(bound, measure["plateau_time"](escape, params).cpu().numpy(), np.nan),
        "escape_time": np.where(bound & np.isfinite(first), first, np.nan),
        "escape_success": np.where(bound, measure["success"](escape, params).cpu().numpy(), np.nan),
    }


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    run = unit.runs["experiment"]
    result = run_experiment(run)
    rev_task = result.task[1].task
    learned = result.trajectories[0].final_weights
    params = {**unit.values, "saddle_loss": zero_map_loss(rev_task), "floor": loss_floor(rev_task, learned)}
    saddle, limit = _exact_verdict(rev_task, learned, unit.values["exact_balance_rtol"])
    escape = _escape(rev_task, [w.to(torch.float64) for w in learned],
                     torch.as_tensor(result.trajectories[1].t, dtype=torch.float64), params, run.trainer.dtype)
    simulation, theory = result.curves()
    pred = result.predictions[1]
    summary = result.summary
    table = pd.DataFrame({
        **config_columns(result.meta),
        "lam_hat": result.meta["lam_hat"].to_numpy(),
        "saddle_loss": params["saddle_loss"],
        "loss_floor": params["floor"],
        "t_phase": run.trainer.t_max,
        **measure_columns(SUITE.measures, simulation, theory, params),
        "kernel_distance_final": summary["kernel_distance_final"].to_numpy(),
        "exact_saddle": saddle,
        "exact_limit_loss": limit,
        **escape,
    })
    if pred is not None:
        table = table.assign(theory=pred.theory, theory_saddle=pred.converges_to_saddle.cpu().numpy().astype(bool),
                             theory_limit_loss=pred.final_loss.cpu().numpy(),
                             theory_max_rel_err=summary["theory_max_rel_err"].to_numpy())
    return UnitOutput(result.frame, table, theory_notes=result.theory_notes)


def _fmt(values) -> str:
    return "{" + ", ".join(f"{v:g}" for v in sorted(set(values))) + "}"


def _per_lam(ok: pd.DataFrame) -> pd.DataFrame:
    """Per λ: reversed in every seed, the exact theory's saddle verdict, escaped (escape model) in every seed."""
    escapes = ok["escape_success"] == 1.0 if "escape_success" in ok else pd.Series(False, index=ok.index)
    return ok.assign(escapes=escapes).groupby("lam").agg(
        success=("success", "all"), exact_saddle=("exact_saddle", "max"), escapes=("escapes", "all"))


def _reverses(ok: pd.DataFrame) -> Verdict:
    """λ ≠ 0 reverses (docs/theory.md §10); λ = 0 only where GD escapes the saddle in the phase (escape model)."""
    per_lam = _per_lam(ok)
    reversed_, stalled = per_lam.index[per_lam["success"]], per_lam.index[~per_lam["success"]]
    expected = (per_lam.index != 0.0) | per_lam["escapes"].to_numpy()
    holds = bool((per_lam["success"].to_numpy() == expected).all()) if len(per_lam) else None
    text = f"reversed for λ ∈ {_fmt(reversed_)}, stalled for λ ∈ {_fmt(stalled)}"
    return Verdict(holds, f"Measured: {text}.", text)


def _exact_saddle(ok: pd.DataFrame) -> Verdict:
    """The exact theory, on the weights reached at the switch, finds a saddle at λ = 0 and only there."""
    per_lam = _per_lam(ok)
    saddle = (per_lam["exact_saddle"] == 1.0).to_numpy()
    holds = bool((saddle == (per_lam.index == 0.0)).all()) if len(per_lam) else None
    lams = _fmt(per_lam.index[saddle])
    return Verdict(holds, f"Exact theory on the reached weights: saddle for λ ∈ {lams}.", f"exact saddle at λ ∈ {lams}")


def _escape_text(zero: pd.DataFrame, reverses: bool) -> str:
    """Whether and when the escape model predicts GD leaves the λ = 0 saddle, against the end of the phase;
    ``reverses``: it predicts the reversal succeeds within the phase in every seed."""
    first, end = zero["escape_time"].mean(), zero["t_phase"].max()
    if pd.isna(first):  # no mode escapes
        return "no escape predicted: it stays at the saddle"
    when = f"first mode's escape predicted at t = {first:.4g}"
    if first > end:
        return f"{when}, after the phase ends (t = {end:g}): it stays at the saddle"
    if reverses:
        return f"{when}, inside the phase (t = {end:g}): it leaves the saddle and reverses"
    return f"{when}, inside the phase (t = {end:g}), but the reversal is not predicted to finish by its end"


def _zero_lines(ok: pd.DataFrame) -> list[str]:
    """The λ = 0 lines of the outcome: the stall the flow predicts and the escape GD makes (escape model)."""
    zero, lines = ok[ok["lam"] == 0.0], []
    if len(zero):
        lines.append(
            f"- λ = 0: measured final loss {zero['loss_final'].mean():.4g}, exact theory's limit "
            f"{zero['exact_limit_loss'].mean():.4g}, loss of the zero map {zero['saddle_loss'].mean():.4g}."
        )
        if "escape_plateau_time" in zero and zero["escape_plateau_time"].notna().any():
            reverses = bool(_per_lam(ok)["escapes"].get(0.0, False))
            lines.append(
                f"- λ = 0 escape: plateau measured {zero['plateau_time'].mean():.4g}, predicted "
                f"{zero['escape_plateau_time'].mean():.4g} by the escape model; {_escape_text(zero, reverses)}."
            )
    return lines


SUITE = Suite(
    "reversal",
    "learn a task, then its reversal: λ = 0 stalls at a saddle, λ ≠ 0 reverses",
    _units,
    _compute,
    axes=lam_seed_axes("λ of the λ-balanced, task-aligned init"),
    phases=("learn", "reverse"),
    measures=(
        Measure("learn_loss_final", "loss at the end of the learning phase", headline=False,
                of=lambda c, p: measures.final(c), phase=0),
        Measure("reversal_loss0", "loss at the switch", headline=False, of=lambda c, p: measures.initial(c)),
        Measure("success", "the reversal's excess loss over `loss_floor` falls to `success_threshold` × its value at "
                "the switch within the phase (`time_to_reverse` is defined)", "theory_success", kind="bool",
                of=lambda c, p: ~_time_to_reverse(c, p).isnan()),
        Measure("loss_final", "reversal loss at the end of the phase", "theory_loss_final",
                of=lambda c, p: measures.final(c)),
        Measure("exact_saddle", "exact theory on the weights reached at the switch: 1 B singular (a saddle), 0 "
                "not, empty: the theory does not apply"),
        Measure("exact_limit_loss", "the exact theory's t → ∞ loss from those weights", "theory_limit_loss"),
        Measure("saddle_loss", "loss of the zero map (the saddle)", headline=False),
        Measure("loss_floor", "the reversed task's loss floor at the network's rank (metrics.loss_floor): the lowest "
                "loss it can reach, 0 on a task it can fit exactly", headline=False),
        Measure("time_to_reverse", "first t since the switch at which the excess loss over `loss_floor` is "
                "`success_threshold` × its value at the switch", "theory_time_to_reverse", of=_time_to_reverse),
        Measure("plateau_time", "time the excess loss over `loss_floor` spends within `plateau_band` of the "
                "saddle's", "theory_plateau_time",
                of=lambda c, p: measures.plateau_time(excess(c, p["floor"]), p["saddle_loss"] - p["floor"],
                                                      p["plateau_band"])),
        Measure("escape_plateau_time", "at λ ≈ 0: the plateau the escape model predicts for GD, whose seed in B "
                "grows like e^{c s̃ t} (lazyrich.theory.escape)"),
        Measure("escape_time", "at λ ≈ 0: the first mode's escape time, escape model"),
        Measure("t_phase", "length of each phase (learn, then reverse)", headline=False),
        Measure("escape_success", "at λ ≈ 0: the escape model predicts the reversal succeeds within the phase",
                headline=False),
        Measure("kernel_distance_final", "1 − cos(K(0), K(t_end)) over both phases", headline=False),
        Measure("theory", "which theory ran", kind="text", example=("exact",)),
    ),
    expectations=(
        Predicate("reverses", _reverses),
        Predicate("exact_saddle", _exact_saddle),
        Monotone("time_to_reverse", "falls", by_abs=True),
    ),
    protocol="Each network learns the task to convergence, then its reversal (Σyx → −Σyx), from a task-aligned "
    "λ-balanced init. `theory_*`: the prediction overlaid on the curves (GD with step `eta` × the fastest rate "
    "runs ahead of the flow by about eta/2 in relative time).",
    prediction="under gradient flow λ = 0 stalls at a saddle (B = 0); every λ ≠ 0 reverses, faster for larger |λ|. "
    "Under GD the λ = 0 saddle is left after a plateau seeded by rounding (escape model).",
    figures=(
        charts.curves("reversal: learn, then reverse"),
        charts.sweep(["time_to_reverse", "plateau_time", "loss_final"], "reversal against λ", log_y=["loss_final"]),
    ),
    notes=(_zero_lines,),
    key=("lam",),
)
