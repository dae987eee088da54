"""Architecture (docs/theory.md §6): how far the NTK moves, for funnel, square and inverted-funnel nets, against λ.

One unit per (arch, λ), batched over seeds: a ``random_regression`` task of the arch's widths
(Nh = min(Ni, No), so every λ is allowed), a λ-balanced random init, trained on a log-spaced t grid.
Measured: the kernel distance at the end (``kernel_distance_final``, Fort et al.), beside the theory's, and
``kernel_t_half``, the first t at which the kernel distance reaches half its final value
(``metrics.time_to_threshold`` on −distance). Theory page: square nets stay lazy for both signs of λ; a funnel
(Ni > No) is lazy as λ → +∞ but "delayed rich" as λ → −∞ (a fast lazy fit, then a slow rich phase at rate
≈ s̃²/|λ|); the inverted funnel is the mirror image. The time course of that delayed rich phase is drawn for
the funnel at the most negative λ.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

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

__all__ = ["ARCHS", "SUITE"]

ARCHS = ("funnel", "square", "inverted_funnel")
EXPECTED = {"funnel": ("rich", "lazy"), "square": ("lazy", "lazy"), "inverted_funnel": ("lazy", "rich")}
"""docs/theory.md §6 at large negative / positive λ (the funnel's 'rich' at λ → −∞ is delayed rich)."""
LAZY_RATIO = 0.1
"""A net counts as lazy when its final kernel distance is below 10% of the λ = 0 (rich) value."""
TABLE = [
    "arch",
    "lam",
    "seed",
    "kernel_distance_final",
    "theory_kernel_distance_final",
    "kernel_t_half",
    "theory_kernel_t_half",
    "final_loss",
    "theory_final_loss",
]


def _units(params: Mapping[str, Any], device: str) -> list[Unit]:
    archs = dict(params["archs"])
    unknown = sorted(set(archs) - set(ARCHS))
    if unknown:
        raise ValueError(f"suite.architecture.archs: unknown arch(s) {unknown}; use {list(ARCHS)}.")
    out = []
    for arch in [a for a in ARCHS if a in archs]:
        task = {"name": "random_regression", **dict(params["task"]), **dict(archs[arch])}
        base = build_task(task)
        s_max = float(base.svd[1][0]) / (base.whitening_scale or 1.0)
        for lam in params["lams"]:
            lr = flow_lr(lam, s_max, params["eta"], params["lr_max"])
            exp = experiment_config(
                task,
                lam=lam,
                seeds=params["seeds"],
                lr=lr,
                t_max=params["t_max"],
                init={"scale": params["init_scale"], "align": False},
                trainer={"n_log": params["n_log"], "spacing": params["spacing"]},
                theory=params["theory"],
                device=device,
            )
            out.append(
                Unit(
                    {"arch": arch, "lam": float(lam)},
                    {"suite": "architecture", "arch": arch, "experiment": exp},
                )
            )
    return out


def _t_half(t, distance) -> float:
    """First t at which a rising kernel distance reaches half its final value (NaN if it never moves)."""
    final = float(distance[-1])
    if not final > 0:
        return float("nan")
    return float(metrics.time_to_threshold(t, -distance, -0.5 * final, relative=False))


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    result = run_experiment(unit.config["experiment"], None, log_wandb=False, plot=False)
    frame = result.frame.assign(arch=unit.key["arch"])
    summary = result.summary.set_index("net")
    rows = []
    for net, meta in result.meta.iterrows():
        t, kd = phase_curve(frame, net, None, "sim/kernel_distance")
        row = {
            "arch": unit.key["arch"],
            "lam": meta["lam"],
            "seed": int(meta["seed"]),
            "lr": meta["lr"],
            "n_in": int(unit.config["experiment"]["task"]["n_in"]),
            "n_out": int(unit.config["experiment"]["task"]["n_out"]),
            "kernel_distance_final": float(kd[-1]),
            "kernel_t_half": _t_half(t, kd),
            "final_loss": float(summary.loc[net, "final_loss"]),
            "t_to_1pct": float(summary.loc[net, "t_to_1pct"]),
        }
        if "theory/kernel_distance" in frame:
            _, th = phase_curve(frame, net, None, "theory/kernel_distance")
            row.update(
                {
                    "theory": result.predictions[0].theory,
                    "theory_kernel_distance_final": float(th[-1]),
                    "theory_kernel_t_half": _t_half(t, th),
                    "theory_final_loss": float(summary.loc[net, "theory_final_loss"]),
                }
            )
        if "theory_saddle" in summary:
            row.update(
                {
                    "theory_saddle": bool(summary.loc[net, "theory_saddle"]),
                    "theory_limit_loss": float(summary.loc[net, "theory_limit_loss"]),
                }
            )
        rows.append(row)
    (run_dir / "theory.txt").write_text("\n".join(result.theory_notes) + "\n")
    return UnitOutput(frame, pd.DataFrame(rows))


def _report(table: pd.DataFrame, suite_dir: Path) -> Report:
    ok = ok_rows(table)
    figures = []
    if len(ok):
        fig = plots.sweep(
            ok,
            "lam",
            ["kernel_distance_final", "kernel_t_half"],
            hue="arch",
            log_y=["kernel_distance_final"],
            title="kernel distance at the end, against λ",
        )
        figures.append(plots.save(fig, suite_dir / "sweep.png"))
    frames = load_frames(suite_dir, table)
    lam_min = float(ok["lam"].min()) if len(ok) else float("nan")
    if len(frames):
        lams = sorted({lam_min, 0.0, float(ok["lam"].max())} & set(frames["lam"].unique()))
        part = frames[(frames["arch"] == "funnel") & frames["lam"].isin(lams)]
        if len(part):
            fig = plots.curves(
                part,
                ("loss", "kernel_distance"),
                hue="lam",
                log_t=True,
                title="funnel (Ni > No): delayed rich at negative λ",
            )
            for ax in fig.axes[:2]:
                ax.set_xlim(left=0.0)  # symlog autoscaling pads into t < 0, where nothing is logged
            figures.append(plots.save(fig, suite_dir / "delayed_rich.png"))
    pivot = ok.pivot_table(index="lam", columns="arch", values="kernel_distance_final", aggfunc="mean")
    pivot = pivot[[a for a in ARCHS if a in pivot]]
    lines = [
        "## Architecture",
        "",
        "Funnel (Ni > No), square and inverted funnel (No > Ni) nets with Nh = min(Ni, No), each trained "
        "from a λ-balanced random init. `kernel_distance_final`: 1 − cos(K(0), K(t_end)) (Fort et al.); "
        "`kernel_t_half`: first t at which the kernel distance reaches half its final value; "
        "`theory_*`: the same from the theory.",
        "",
        markdown_table(ok[[c for c in TABLE if c in ok]]),
        "",
        "Kernel distance at the end (seeds averaged; rows λ, columns arch):",
        "",
        markdown_table(pivot, index=True),
        "",
        "### Outcome (measured) against docs/theory.md §6",
        "",
        "The Theory page predicts: square nets stay lazy for both signs of λ; the funnel is lazy as λ → +∞ and "
        "delayed rich as λ → −∞; the inverted funnel is the mirror image.",
        "",
    ]
    verdict, matches = [], []
    reference = ok[ok["lam"] == 0.0]
    if "theory_saddle" in reference:  # a λ = 0 net stuck at a saddle has not done its rich learning
        reference = reference[~reference["theory_saddle"].astype(bool)]
    rich_kd = reference.groupby("arch")["kernel_distance_final"].mean()
    if len(pivot) > 1:
        lo, hi = pivot.index.min(), pivot.index.max()
        for arch in pivot.columns:
            rich, neg, pos = rich_kd.get(arch, float("nan")), pivot.loc[lo, arch], pivot.loc[hi, arch]
            regime = tuple(
                "?" if not rich > 0 else "lazy" if v < LAZY_RATIO * rich else "rich" for v in (neg, pos)
            )
            matches.append(regime == EXPECTED[arch])
            lines.append(
                f"- {arch}: kernel distance {neg:.3g} at λ={lo:g}, {pos:.3g} at λ={hi:g}, against {rich:.3g} "
                f"at λ = 0 (networks not at a saddle): {regime[0]} at λ={lo:g}, {regime[1]} at λ={hi:g} "
                f"(lazy: below {LAZY_RATIO:g} × the λ = 0 value); Theory page: {EXPECTED[arch][0]}, "
                f"{EXPECTED[arch][1]}."
            )
            verdict.append(f"{arch} {regime[0]}/{regime[1]}")
        funnel = ok[(ok["arch"] == "funnel")].groupby("lam")["kernel_t_half"].mean()
        if lo in funnel and 0.0 in funnel:
            lines.append(
                f"- Funnel: the kernel distance reaches half its final value at t = {funnel[lo]:.3g} for "
                f"λ = {lo:g}, against {funnel[0.0]:.3g} at λ = 0 (a later, slower rich phase: "
                f"{'yes' if funnel[lo] > funnel[0.0] else 'no'})."
            )
    if len(ok) and "theory_saddle" in ok:
        for _, r in ok[ok["theory_saddle"].astype(bool)].iterrows():
            escaped = r["final_loss"] < 0.5 * r["theory_limit_loss"]
            lines.append(
                f"- {r['arch']}, λ={r['lam']:g}, seed {r['seed']}: the theory predicts a saddle (B singular; "
                f"limit loss {r['theory_limit_loss']:.3g}); measured final loss {r['final_loss']:.3g}"
                + (
                    f": the simulation escaped it (loss at 1% of its initial value at "
                    f"t = {r['t_to_1pct']:.3g}). "
                    f"The prediction is exact gradient flow from exactly these weights, and the saddle "
                    f"is unstable, so small perturbations can carry GD away from it."
                    if escaped
                    else ": it stayed there, as predicted."
                )
            )
    if len(ok) and "theory_kernel_distance_final" in ok:
        rel = (ok["kernel_distance_final"] - ok["theory_kernel_distance_final"]).abs() / ok[
            "theory_kernel_distance_final"
        ].abs().clip(lower=1e-12)
        lines.append(
            f"- Max relative gap between measured and predicted final kernel distance: {rel.max():.2g}."
        )
    text = (
        f"at λ_min/λ_max: {', '.join(verdict)} "
        f"({'as' if matches and all(matches) else 'NOT as'} docs/theory.md §6 predicts)"
    )
    return Report("\n".join(lines) + "\n", figures, text, TABLE)


SUITE = Suite(
    "architecture",
    "funnel, square and inverted funnel × λ: how far the NTK moves (lazy or rich)",
    _units,
    _compute,
    _report,
    columns=tuple(TABLE),
    key=("arch", "lam"),
    orders={"arch": ARCHS},
)
