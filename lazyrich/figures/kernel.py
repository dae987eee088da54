"""Figures 5 and 7: how far the NTK moves — against λ per architecture, the delayed-rich funnel, and the
(λ, init scale) heat map."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lazyrich import plots
from lazyrich.figures.common import (
    config,
    figure,
    lam_axis,
    non_saddle,
    run,
    sim_and_theory,
)
from lazyrich.figures.views import suite_table
from lazyrich.results import max_rel_error

__all__ = ["ARCHITECTURES", "architecture_overrides", "fig_5", "fig_7"]

ARCHITECTURES = {
    "funnel 4→2 (Ni > No)": ("funnel", 4, 2),
    "square 2→2": ("square", 2, 2),
    "inverted funnel 2→4 (No > Ni)": ("inverted_funnel", 2, 4),
}
"""Fig. 5 (a)'s curves: label → (architecture suite arch, Ni, No); the suite's own default is 8/4 wide."""
FLOOR = 1e-12  # kernel distances below this are rounding, not movement


def _final_kernel_distance(result) -> tuple[np.ndarray, np.ndarray]:
    """(simulated, predicted) kernel distance at the last log point, each (B,)."""
    _, sim, theory = sim_and_theory(result, "kernel_distance")
    return sim[:, -1], theory[:, -1]


ARCH_SEEDS = (0, 1, 2)
"""Seeds run per configuration; each arch is drawn from its first seed that no λ sends to a saddle."""


def architecture_overrides(lams: list[float], lr: float, t_max: float) -> list[str]:
    """Fig. 5 (a) is the architecture suite with other constants: these ``lazyrich bench`` overrides (a fixed
    step ``lr``: ``eta`` so large that the suite's step ``min(lr_max, eta/√(λ² + 4s̃₁²))`` is ``lr_max``)."""
    widths = [f"suite.architecture.archs.{a}.{k}={v}" for a, ni, no in ARCHITECTURES.values()
              for k, v in (("n_in", ni), ("n_out", no))]
    return [
        "suite.architecture.lams=[" + ",".join(f"{v:g}" for v in lams) + "]",
        "seed=[" + ",".join(str(s) for s in ARCH_SEEDS) + "]",
        *widths,
        f"suite.architecture.t_max={t_max:g}",
        f"suite.architecture.lr_max={lr:g}",
        "suite.architecture.eta=1e9",
        "suite.architecture.spacing=linear",
        "suite.architecture.n_log=11",
        "suite.architecture.theory=exact",
    ]


def _rich_seed_rows(table: pd.DataFrame, arch: str) -> pd.DataFrame:
    """The rows of ``arch`` for its first seed whose every λ the theory keeps away from a saddle."""
    rows = table[table["arch"] == arch]
    for seed in sorted(rows["seed"].unique()):
        part = rows[rows["seed"] == seed]
        if not part["theory_saddle"].astype(bool).any():
            return part.sort_values("lam")
    raise RuntimeError(f"architecture suite: every seed of {arch} has a saddle; add seeds to ARCH_SEEDS.")


def _architecture_panel(ax, table: pd.DataFrame, t_max: float) -> dict[str, float]:
    """Panel (a): final kernel distance against λ, one curve per architecture (from the architecture suite's
    table); the error of each."""
    errors: dict[str, float] = {}
    lams = sorted(table["lam"].unique())
    for colour, (name, (arch, _, _)) in zip(("C0", "C2", "C3"), ARCHITECTURES.items(), strict=True):
        rows = _rich_seed_rows(table, arch)
        sim = rows["kernel_distance_final"].to_numpy(float)
        theory = rows["theory_kernel_distance_final"].to_numpy(float)
        plots.sim_theory(
            ax,
            rows["lam"].to_numpy(float),
            np.maximum(sim, FLOOR),
            np.maximum(theory, FLOOR),
            color=colour,
            label=name,
            marker="o",
        )
        errors[f"final kernel distance, {name}"] = max_rel_error(sim, theory)
    lam_axis(ax, lams, yscale="log", ylabel=f"kernel distance S at t = {t_max:g}",
             title="(a) NTK movement against λ, per architecture")
    plots.legend_sim_theory(ax, loc="lower left", fontsize=6)
    return errors


def _delayed_rich_panels(ax_loss, ax_kernel, small: bool) -> dict[str, float]:
    """Panels (b), (c): loss and kernel distance against t for a funnel at λ = −10, 0, +10; the error of each.

    Delayed rich: a funnel at large negative λ fits lazily first, then its NTK moves at rate ≈ s̃²/|λ|."""
    task = {"name": "random_regression", "n_in": 4, "n_out": 2, "singular_values": [2.0, 1.0], "seed": 0}
    lams_t = [-10.0, 0.0, 10.0]
    cfg = config(
        task,
        lam=lams_t,
        lr=4e-3 if small else 2e-3,
        t_max=20.0 if small else 40.0,
        n_log=61 if small else 121,
        spacing="log",
    )
    result = run(cfg)
    series = {name: sim_and_theory(result, name) for name in ("loss", "kernel_distance")}
    labels = {-10.0: "λ = −10 (delayed rich)", 0.0: "λ = 0 (rich)", 10.0: "λ = +10 (lazy)"}
    errors: dict[str, float] = {}
    for k, (lam, colour) in enumerate(zip(lams_t, ("C3", "C1", "C0"), strict=True)):
        for ax, name in ((ax_loss, "loss"), (ax_kernel, "kernel_distance")):
            t, sim, theory = (a[k, 1:] for a in series[name])  # t = 0 has no place on a log axis
            plots.sim_theory(
                ax, t, np.maximum(sim, FLOOR), np.maximum(theory, FLOOR), color=colour, label=labels[lam]
            )
            errors[f"{name.replace('_', ' ')} vs t, {labels[lam]}"] = max_rel_error(sim, theory)
    ax_loss.set(
        xscale="log", yscale="log", xlabel=plots.T_LABEL, ylabel="loss", title="(b) funnel 4→2, s̃ = (2, 1): loss"
    )
    ax_kernel.set(
        xscale="log",
        yscale="log",
        xlabel=plots.T_LABEL,
        ylabel="kernel distance S(t)",
        title="(c) kernel distance: λ = −10 moves late (delayed rich)",
    )
    ax_loss.set_ylim(bottom=1e-10)
    ax_kernel.set_ylim(bottom=1e-6)
    return errors


@figure(
    "Fig. 5: the final kernel distance falls with |λ| for the square net on both sides but only for "
    "λ > 0 in the funnel and λ < 0 in the inverted funnel, and a funnel at λ = −10 fits lazily before "
    "its NTK moves late",
    title="Fig. 5 — the NTK stays put at large |λ| except for the funnel at λ → −∞ (and the inverted "
    "funnel at λ → +∞): delayed rich",
)
def fig_5(out_dir: Path, small: bool) -> tuple[plt.Figure, dict[str, float]]:
    """Final kernel distance against λ for funnel, square and inverted funnel; delayed rich in time."""
    lams = [-16.0, -4.0, 0.0, 4.0, 16.0] if small else [-16.0, -8.0, -4.0, -1.0, 0.0, 1.0, 4.0, 8.0, 16.0]
    fig, grid = plt.subplots(2, 2, figsize=(12, 8.6))
    axes, key = list(grid.flat[:3]), grid.flat[3]
    overrides = architecture_overrides(lams, lr=2.5e-3 if small else 1.25e-3, t_max=8.0)
    errors = _architecture_panel(axes[0], suite_table(out_dir, "architecture", overrides), t_max=8.0)
    errors |= _delayed_rich_panels(axes[1], axes[2], small)
    for ax in axes:
        ax.grid(alpha=0.3)
    key.set_axis_off()
    plots.legend_sim_theory(key, axes=axes[2:], loc="center left", fontsize=9, title="(b), (c): funnel 4→2")
    return fig, errors


@figure(
    "Fig. 7: the NTK moves least when |λ| is large next to the init scale — the kernel distance falls "
    "with |λ| at every scale, rises with the scale at fixed λ ≠ 0 and stays near 0.2 at λ = 0",
)
def fig_7(out_dir: Path, small: bool) -> tuple[plt.Figure, dict[str, float]]:
    """Heat map of log₁₀ kernel distance over (λ, init scale): one batched run over the grid."""
    lams = [-8.0, -2.0, 0.0, 2.0, 8.0] if small else [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    scales = list(np.geomspace(0.01, 4.0, 4 if small else 7))
    task = {"name": "random_regression", "n_in": 2, "n_out": 2, "seed": 0}
    t_max = 6.0 if small else 8.0
    result = run(non_saddle(config(task, lam=lams, scale=scales, lr=4e-3 if small else 1.5e-3, t_max=t_max,
                                   n_log=11)))
    sim, theory = _final_kernel_distance(result)
    shape = (len(lams), len(scales))  # run order: the Cartesian product lam × scale
    sim_grid = np.log10(np.maximum(sim, FLOOR)).reshape(shape).T
    th_grid = np.log10(np.maximum(theory, FLOOR)).reshape(shape).T
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    # Grid cells on index coordinates, labelled with their values: each (λ, scale) pair is one network.
    plots.contour_compare(
        ax,
        np.arange(len(lams)),
        np.arange(len(scales)),
        sim_grid,
        th_grid,
        levels=[-4, -3, -2, -1],
        colorbar_label="log₁₀ kernel distance (simulation)",
    )
    ax.set_xticks(range(len(lams)), [f"{v:g}" for v in lams])
    ax.set_yticks(range(len(scales)), [f"{v:.2g}" for v in scales])
    ax.set(
        xlabel="λ",
        ylabel="init scale (W2W1 = scale · G, G Gaussian)",
        title=f"Fig. 7 — log₁₀ kernel distance at t = {t_max:g} (square 2→2 net)\n"
        "colour and solid white contours: simulation, dotted black contours: theory",
    )
    return fig, {"kernel distance over the grid": max_rel_error(sim, theory)}
