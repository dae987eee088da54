"""Figures 1–3: rich vs lazy dynamics of the network function, its Grams and NTK, and its singular values."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from lazyrich import metrics, plots
from lazyrich import theory as th
from lazyrich.experiment import build_task
from lazyrich.figures.common import (
    config,
    figure,
    non_saddle,
    np64,
    run,
    sim_and_theory,
    upper_pairs,
)
from lazyrich.results import max_rel_error

__all__ = ["fig_1", "fig_2", "fig_3"]


# --- Fig. 1 ------------------------------------------------------------------------------------------------


@figure(
    "Fig. 1: a λ = 0 net learns W2W1 in sigmoidal stages while a λ = 8 net moves it exponentially, and "
    "LeCun Gaussian inits approach λ-balance as the input/output widths outgrow the hidden width but not "
    "as the hidden width alone grows",
    title="Fig. 1 — rich vs lazy learning, and how close standard inits are to λ-balanced",
)
def fig_1(out_dir: Path, small: bool) -> tuple[plt.Figure, dict[str, float]]:
    """Rich (λ = 0) vs lazy (λ = 8) W2W1 against t; LeCun Gaussian inits against λ-balance as width grows."""
    task = {"name": "random_regression", "n_in": 3, "n_out": 3, "seed": 0}
    lams = [0.0, 8.0]
    result = run(non_saddle(config(task, lam=lams, scale=0.05, lr=4e-3 if small else 2e-3, t_max=8.0,
                                   n_log=81 if small else 161)))
    fig, grid = plt.subplots(2, 2, figsize=(12, 8.4))
    axes = list(grid.flat)
    errors = {}
    times, sims, theories = sim_and_theory(result, "product")
    for k, (ax, lam) in enumerate(zip(axes[:2], lams, strict=True)):
        t, sim, theory = times[k], sims[k], theories[k]
        plots.matrix_entries(ax, t, sim, theory)
        errors[f"W2W1 (λ={lam:g})"] = max_rel_error(sim, theory)
        regime = "rich" if lam == 0 else "lazy"
        ax.set(
            title=f"({'ab'[k]}) {regime}: λ = {lam:g}, entries of W2W1", xlabel=plots.T_LABEL, ylabel="W2W1 entry"
        )
        ax.grid(alpha=0.3)
    plots.legend_sim_theory(axes[0], loc="lower right")

    hidden = [4, 8, 16, 32, 64] + ([] if small else [128, 256, 512])
    outer = [8, 32, 128] + ([] if small else [512, 2048])
    sweeps = {
        "hidden width Nh (Ni = No = 8)": ([(8, n, 8) for n in hidden], hidden, "C0"),
        "input = output width N (Nh = 8)": ([(n, 8, n) for n in outer], outer, "C3"),
    }
    for name, (shapes, widths, colour) in sweeps.items():
        res = metrics.gaussian_balance(shapes)
        plots.sim_theory(axes[2], widths, res["r_sim"], res["r_theory"], color=colour, label=name, marker="o")
        plots.sim_theory(
            axes[3], widths, res["lam_sim"], res["lam_theory"], color=colour, label=name, marker="o"
        )
        errors[f"balance deviation, {name}"] = float(np.max(np.abs(res["r_sim"] / res["r_theory"] - 1)))
        errors[f"λ̂, {name}"] = max_rel_error(res["lam_sim"], res["lam_theory"])
    axes[2].set(
        xscale="log",
        yscale="log",
        xlabel="width",
        ylabel="relative deviation from λ-balance",
        title="(c) ‖W2ᵀW2 − W1W1ᵀ − λ̂I‖ / (‖W2ᵀW2‖ + ‖W1W1ᵀ‖)\nLeCun Gaussian init, RMS over seeds",
    )
    axes[3].set(
        xscale="log",
        yscale="symlog",
        xlabel="width",
        ylabel="λ̂ = tr(W2ᵀW2 − W1W1ᵀ)/Nh",
        title="(d) λ̂ vs No σ2²/Nh − σ1² (σ1 = σ2 = 1)",
    )
    for ax in axes[2:]:
        ax.grid(alpha=0.3)
        plots.legend_sim_theory(ax, loc="best", fontsize=6)
    return fig, errors


# --- Fig. 2 ------------------------------------------------------------------------------------------------


def _fig2_panel(ax, name: str, t: np.ndarray, sim: np.ndarray, theory: np.ndarray) -> float:
    """One panel of Fig. 2: the loss (log scale) or a matrix's distinct entries against t; its error."""
    if name == "loss":
        plots.sim_theory(ax, t, sim, theory, color="C0")
        ax.set_yscale("log")
    else:
        plots.matrix_entries(ax, t, sim, theory, entries=upper_pairs(sim.shape[-1]) if name != "product" else None)
    ax.set_xlabel(plots.T_LABEL, fontsize=8)
    ax.grid(alpha=0.3)
    return max_rel_error(sim, theory)


@figure(
    "Fig. 2: for λ = −2, 0, 2 and 10 the loss, W2W1, W1ᵀW1, W2W2ᵀ and NTK entries follow the exact "
    "solution, with the NTK moving most at λ = 0",
    title="Fig. 2 — exact dynamics of λ-balanced nets: loss, network function, representations and NTK "
    "(one colour per matrix entry)",
)
def fig_2(out_dir: Path, small: bool) -> tuple[plt.Figure, dict[str, float]]:
    """Loss, W2W1, W1ᵀW1, W2W2ᵀ and NTK entries against t for λ ∈ {−2, 0, 2} and λ = 10."""
    task = {"name": "random_regression", "n_in": 2, "n_out": 2, "seed": 1}
    n_log = 61 if small else 151
    base = non_saddle(config(task, lam=[-2.0, 0.0, 2.0], lr=1e-2 if small else 4e-3, t_max=8.0, n_log=n_log))
    large = config(task, lam=[10.0], lr=2e-3 if small else 1e-3, t_max=1.5, n_log=n_log, seed=base.seed)
    runs = [(run(base), [-2.0, 0.0, 2.0]), (run(large), [10.0])]
    x = build_task(task).X
    columns = [
        ("loss", "loss"),
        ("product", "W2W1"),
        ("w1tw1", "W1ᵀW1"),
        ("wwt_out", "W2W2ᵀ"),
        ("ntk", "NTK K"),
    ]
    fig, axes = plt.subplots(4, 5, figsize=(19, 12.5))
    errors: dict[str, float] = {}
    row = 0
    for result, lams in runs:
        series = {name: sim_and_theory(result, name) for name in ("loss", "product", "w1tw1", "wwt_out")}
        t, w1_sim, w1_th = series["w1tw1"]
        _, w2_sim, w2_th = series["wwt_out"]
        series["ntk"] = (t, *(np64(metrics.two_layer_ntk(torch.from_numpy(w1), torch.from_numpy(w2), x))
                              for w1, w2 in ((w1_sim, w2_sim), (w1_th, w2_th))))
        for k, lam in enumerate(lams):
            for col, (name, label) in enumerate(columns):
                errors[f"{label} (λ={lam:g})"] = _fig2_panel(axes[row, col], name, *(a[k] for a in series[name]))
                axes[row, col].set_title(f"{label}, λ = {lam:g}" + (" (large |λ|)" if lam == 10 else ""), fontsize=9)
            row += 1
    plots.legend_sim_theory(axes[0, 0], loc="upper right")
    return fig, errors


# --- Fig. 3 ------------------------------------------------------------------------------------------------


@figure(
    "Fig. 3: from a task-aligned init each singular value of W2W1 rises sigmoidally after a plateau at "
    "λ = 0 and without one at |λ| = 3, identically for ±λ, between the Saxe and lazy limits",
    title="Fig. 3 — singular-value dynamics τ ds/dt = √(λ² + 4s²)(s̃ − s): sigmoidal at λ = 0, "
    "exponential as |λ| grows, the same for ±λ",
)
def fig_3(out_dir: Path, small: bool) -> tuple[plt.Figure, dict[str, float]]:
    """Singular values of W2W1 from a task-aligned init for λ < 0, = 0, > 0, with the Saxe and lazy limits."""
    task_cfg = {"name": "random_regression", "n_in": 4, "n_out": 4, "seed": 0}
    lams = [-3.0, 0.0, 3.0]
    cfg = config(
        task_cfg,
        lam=lams,
        scale=1e-3,
        align=True,
        lr=1e-2 if small else 4e-3,
        t_max=12.0,
        n_log=81 if small else 201,
        theory="aligned",
    )
    result = run(cfg)
    task = build_task(task_cfg)
    s_target = np64(task.svd[1])
    svals = [sim_and_theory(result, f"sval_{a + 1}") for a in range(len(s_target))]
    times, sims, theories = (np.stack(v, -1) for v in zip(*svals, strict=True))  # (B, T, modes) each
    traj = result.trajectories[0]
    saxe = th.get_theory("saxe").predict(task, traj.init_weights, traj.t)
    lazy_rows = [k for k, lam in enumerate(lams) if lam != 0]  # the |λ| → ∞ limit is refused at λ = 0
    lazy = th.get_theory("lazy", kernel="lambda").predict(task, [w[lazy_rows] for w in traj.init_weights],
                                                          traj.t[lazy_rows])
    fig, grid = plt.subplots(2, 2, figsize=(11, 8), sharey=True)
    axes, key = list(grid.flat[:3]), grid.flat[3]
    colours = [f"C{a}" for a in range(len(s_target))]
    errors = {}
    for k, (ax, lam) in enumerate(zip(axes, lams, strict=True)):
        t, sim, theory = times[k, :, 0], sims[k], theories[k]
        for a, colour in enumerate(colours):
            plots.sim_theory(ax, t, sim[:, a], theory[:, a], color=colour, label=f"s̃ = {s_target[a]:.2g}")
        errors[f"singular values (λ={lam:g})"] = max_rel_error(sim, theory, scale=s_target.max())
        if lam != 0:
            ax.plot(t, np64(saxe.svals[k]), **plots.LIMIT_STYLE)
            ax.plot(t, np64(lazy.svals[lazy_rows.index(k)]), **{**plots.LIMIT_STYLE, "linestyle": "-."})
        regime = "rich (Saxe)" if lam == 0 else "λ < 0" if lam < 0 else "λ > 0"
        ax.set(title=f"({'abc'[k]}) {regime}: λ = {lam:g}, aligned init s₀ = 1e-3", xlabel=plots.T_LABEL)
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.set_ylabel("singular value s_α of W2W1 (task basis)")
    _fig3_key(key, axes, sims, lams)
    return fig, errors


def _fig3_key(key, axes, sims: np.ndarray, lams: list[float]) -> None:
    """The spare cell of Fig. 3: the legend (styles, modes, limits) and how far apart the ±λ panels are."""
    key.set_axis_off()
    gap = float(np.max(np.abs(sims[0] - sims[-1])) / np.max(np.abs(sims)))
    same = "coincide" if gap <= plots.COINCIDE else "differ"
    limits = [("Saxe limit (λ = 0), panels (a), (c)", plots.LIMIT_STYLE),
              ("lazy limit s̃ + (s₀ − s̃)·exp(−|λ|t)", {**plots.LIMIT_STYLE, "linestyle": "-."})]
    plots.legend_sim_theory(key, axes=axes[1:2], extra=limits, loc="upper left", fontsize=9,
                            title=f"(a) λ = {plots.number(lams[0])} and (c) λ = {plots.number(lams[-1])} {same}:"
                            f"\nlargest gap {gap:.1e} of the largest s")
