"""Architecture (docs/theory.md §6): how far the NTK moves, for funnel, square and inverted-funnel nets, against λ.

One unit per (arch, λ), batched over seeds: a ``random_regression`` task of the arch's widths
(Nh = min(Ni, No), so every λ is allowed), a λ-balanced random init, trained on a log-spaced t grid.
Measured: the kernel distance at the end (``kernel_distance_final``, Fort et al.), beside the theory's, and
``kernel_t_half``, the first t at which the kernel distance reaches half its final value
(``metrics.time_to_threshold`` on −distance). Theory page: square nets stay lazy for both signs of λ; a funnel
(Ni > No) is lazy as λ → +∞ but "delayed rich" as λ → −∞ (a fast lazy fit, then a slow rich phase at rate
≈ s̃²/|λ|); the inverted funnel is the mirror image. The time course of that delayed rich phase is drawn for
the funnel at the most negative λ. A net added under a name of its own (``+suite.architecture.archs.my_net=
{n_in: 3, n_out: 2}``) is measured like the others and judged by its shape (:func:`lazyrich.config.suites.arch_shape`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lazyrich import plots
from lazyrich.config.suites import ARCH_SHAPES, ArchitectureSuite, arch_shape
from lazyrich.experiment import run_experiment
from lazyrich.results import measures
from lazyrich.results.tables import markdown_table
from lazyrich.suites import charts
from lazyrich.suites.common import Suite, config_columns, lam_run, lam_seed_axes, loss_floor
from lazyrich.suites.runner import Unit, UnitOutput
from lazyrich.suites.spec import Axis, Measure, Predicate, Verdict, measure_columns

__all__ = ["ARCHS", "SUITE"]

ARCHS = ARCH_SHAPES
"""The default nets, one of each shape; more may be added under names of their own."""
EXPECTED = {"funnel": ("rich", "lazy"), "square": ("lazy", "lazy"), "inverted_funnel": ("lazy", "rich")}
"""docs/theory.md §6 at large negative / positive λ, by shape (the funnel's 'rich' at λ → −∞ is delayed rich)."""
LAZY_RATIO = 0.1
"""A net counts as lazy when its final kernel distance is below 10% of the λ = 0 (rich) value."""


def _ordered(archs) -> list[str]:
    """``archs`` in order: the three default shapes first, then any other in the order given."""
    return [*(a for a in ARCHS if a in archs), *(a for a in archs if a not in ARCHS)]


def _units(params: ArchitectureSuite, device: str) -> list[Unit]:
    out = []
    for arch in _ordered(params.archs):
        task = {"name": "random_regression", **params.task, **params.archs[arch]}
        out += [Unit({"arch": arch, "lam": lam}, {"suite": "architecture", "arch": arch},
                     {"experiment": lam_run(params, task, lam, params.t_max, device, spacing=params.spacing)})
                for lam in params.lams]
    return out


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    run = unit.runs["experiment"]
    result = run_experiment(run)
    simulation, theory = result.curves()
    summary = result.summary
    table = pd.DataFrame({
        "arch": unit.key["arch"],
        **config_columns(result.meta),
        "n_in": int(run.task["n_in"]),
        "n_out": int(run.task["n_out"]),
        "loss_floor": loss_floor(result.task, result.trajectories[0].final_weights),
        **measure_columns(SUITE.measures, simulation, theory, unit.values),
        "time_to_1pct": summary["time_to_1pct"].to_numpy(),
    })
    if theory[0] is not None:
        table.insert(table.columns.get_loc("kernel_distance_final"), "theory", theory[0].source)
    for column in ("theory_saddle", "theory_limit_loss"):
        if column in summary:
            table[column] = summary[column].to_numpy()
    return UnitOutput(result.frame.assign(arch=unit.key["arch"]), table, theory_notes=result.theory_notes)


def _pivot(ok: pd.DataFrame) -> pd.DataFrame:
    """Seed-mean final kernel distance, rows λ, columns arch (in ``ARCHS`` order)."""
    pivot = ok.pivot_table(index="lam", columns="arch", values="kernel_distance_final", aggfunc="mean")
    return pivot[_ordered(list(dict.fromkeys(ok["arch"])))]


def _pivot_section(ok: pd.DataFrame, folder: Path) -> list[str]:
    return ["Kernel distance at the end (seeds averaged; rows λ, columns arch):", "",
            markdown_table(_pivot(ok), index=True), ""]


def _shape(arch: str, ok: pd.DataFrame) -> str | None:
    """The shape of ``arch`` from its widths (columns ``n_in``, ``n_out``), or from its name when it names a
    shape; None when neither tells (a hand-built table): no expectation."""
    rows = ok[ok["arch"] == arch]
    if {"n_in", "n_out"} <= set(rows) and rows[["n_in", "n_out"]].notna().all(axis=None):
        return arch_shape(int(rows["n_in"].iloc[0]), int(rows["n_out"].iloc[0]))
    return arch if arch in EXPECTED else None


def _regimes(ok: pd.DataFrame) -> Verdict:
    """Lazy or rich at λ_min and λ_max for each arch, against EXPECTED for its shape (docs/theory.md §6): lazy
    when the final kernel distance is below LAZY_RATIO × its value at λ = 0 (networks not at a saddle, whose rich
    learning has not happened). An arch whose shape is unknown is shown, not judged."""
    pivot = _pivot(ok)
    if len(pivot) < 2:
        return Verdict(None, "Regimes: fewer than two λ values.", "regimes not judged")
    reference = ok[ok["lam"] == 0.0]
    if "theory_saddle" in reference:
        reference = reference[~reference["theory_saddle"].eq(True)]
    rich_kd = reference.groupby("arch")["kernel_distance_final"].mean()
    lo, hi = pivot.index.min(), pivot.index.max()
    lines, short, matches = [], [], []
    for arch in pivot.columns:
        rich, neg, pos = rich_kd.get(arch, float("nan")), pivot.loc[lo, arch], pivot.loc[hi, arch]
        regime = tuple("?" if not rich > 0 else "lazy" if v < LAZY_RATIO * rich else "rich" for v in (neg, pos))
        shape = _shape(arch, ok)
        name = arch if shape == arch else f"{arch} ({shape.replace('_', ' ') if shape else 'shape unknown'})"
        if shape is None:
            expected = "no expectation: not judged"
        else:
            matches.append(regime == EXPECTED[shape])
            expected = f"Theory page: {EXPECTED[shape][0]}/{EXPECTED[shape][1]}"
        lines.append(f"{name}: kernel distance {neg:.3g} at λ={lo:g}, {pos:.3g} at λ={hi:g}, against {rich:.3g} at "
                     f"λ = 0: {regime[0]}/{regime[1]} ({expected})")
        short.append(f"{arch} {regime[0]}/{regime[1]}")
    return Verdict(all(matches) if matches else None, f"Lazy (below {LAZY_RATIO:g} × the λ = 0 value) or rich at "
                   f"λ_min/λ_max: " + "; ".join(lines) + ".", f"at λ_min/λ_max: {', '.join(short)}")


def _funnel_note(ok: pd.DataFrame) -> list[str]:
    funnel = ok[ok["arch"] == "funnel"].groupby("lam")["kernel_t_half"].mean()
    lo = funnel.index.min() if len(funnel) else None
    if lo is None or lo == 0.0 or 0.0 not in funnel:
        return []
    return [f"- Funnel: the kernel distance reaches half its final value at t = {funnel[lo]:.3g} for λ = {lo:g}, "
            f"against {funnel[0.0]:.3g} at λ = 0 (a later, slower rich phase: "
            f"{'yes' if funnel[lo] > funnel[0.0] else 'no'})."]


def _saddle_notes(ok: pd.DataFrame) -> list[str]:
    """One line per network the theory puts at a saddle: did the simulation stay there or escape?"""
    if "theory_saddle" not in ok:
        return []
    lines = []
    for _, r in ok[ok["theory_saddle"].eq(True)].iterrows():
        escaped = r["loss_final"] - r["loss_floor"] < 0.5 * (r["theory_limit_loss"] - r["loss_floor"])
        lines.append(
            f"- {r['arch']}, λ={r['lam']:g}, seed {r['seed']}: the theory predicts a saddle (B singular; limit loss "
            f"{r['theory_limit_loss']:.3g}); measured final loss {r['loss_final']:.3g}"
            + (f": the simulation escaped it (excess loss over the floor at 1% of its initial value at t = "
               f"{r['time_to_1pct']:.3g}). The "
               "prediction is exact gradient flow from exactly these weights, and the saddle is unstable, so small "
               "perturbations can carry GD away from it." if escaped else ": it stayed there, as predicted.")
        )
    return lines


def _gap_note(ok: pd.DataFrame) -> list[str]:
    """The largest relative gap between measured and predicted final kernel distance (saddles included)."""
    if not len(ok) or "theory_kernel_distance_final" not in ok:
        return []
    rel = (ok["kernel_distance_final"] - ok["theory_kernel_distance_final"]).abs() / ok[
        "theory_kernel_distance_final"].abs().clip(lower=1e-12)
    return [f"- Max relative gap between measured and predicted final kernel distance: {rel.max():.2g}."]


def _delayed_rich(ok: pd.DataFrame, frames: pd.DataFrame, folder: Path) -> Path | None:
    """The funnel's loss and kernel distance at λ_min, 0 and λ_max against log t."""
    if not len(frames) or not len(ok):
        return None
    lams = sorted({float(ok["lam"].min()), 0.0, float(ok["lam"].max())} & set(frames["lam"].unique()))
    part = frames[(frames["arch"] == "funnel") & frames["lam"].isin(lams)]
    if not len(part):
        return None
    fig = plots.curves(part, ("loss", "kernel_distance"), hue="lam", log_t=True,
                       title="funnel (Ni > No): delayed rich at negative λ")
    for ax in fig.axes[:2]:
        ax.set_xlim(left=0.0)  # symlog autoscaling pads into t < 0, where nothing is logged
    return plots.save(fig, folder / "delayed_rich.png")


SUITE = Suite(
    "architecture",
    "funnel, square and inverted funnel × λ: how far the NTK moves (lazy or rich)",
    _units,
    _compute,
    axes=(Axis("arch", "funnel (Ni > No), square or inverted funnel (No > Ni), or a net added under a name of its "
               "own (judged by its shape); Nh = min(Ni, No)", ARCHS),
          *lam_seed_axes("λ of the λ-balanced random init")),
    phases=("train",),
    measures=(
        Measure("kernel_distance_final", "1 − cos(K(0), K(t_end)) (Fort et al.)", "theory_kernel_distance_final",
                of=lambda c, p: measures.final(c, "kernel_distance")),
        Measure("kernel_t_half", "first t at which the kernel distance reaches half its final value",
                "theory_kernel_t_half", of=lambda c, p: measures.rise_half_time(c, "kernel_distance")),
        Measure("loss_final", "loss at the end", "theory_loss_final", of=lambda c, p: measures.final(c)),
        Measure("loss_floor", "the task's loss floor at the network's rank (metrics.loss_floor)", headline=False),
        Measure("time_to_1pct", "first t at which the excess loss over `loss_floor` is 1% of its initial value (the "
                "run summary's)", headline=False),
        Measure("theory_saddle", "the theory predicts a saddle (B singular) for this init", kind="bool",
                headline=False),
        Measure("theory_limit_loss", "the theory's t → ∞ loss", headline=False),
    ),
    expectations=(
        Predicate("regimes", _regimes),
    ),
    protocol="Funnel, square and inverted-funnel nets, each trained from a λ-balanced random init on a "
    "random_regression task of its widths.",
    prediction="square nets stay lazy for both signs of λ; the funnel is lazy as λ → +∞ and delayed rich as "
    "λ → −∞; the inverted funnel is the mirror image.",
    section="§6",
    figures=(
        charts.sweep(["kernel_distance_final", "kernel_t_half"], "kernel distance at the end, against λ", hue="arch",
                      log_y=["kernel_distance_final"]),
        _delayed_rich,
    ),
    sections=(_pivot_section,),
    notes=(_funnel_note, _saddle_notes, _gap_note),
    key=("arch", "lam"),
    orders={"arch": ARCHS},
)
