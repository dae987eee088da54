"""Figure 4: representations on the hierarchical task, rich to semi-structured lazy; noise robustness."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from lazyrich import metrics, plots
from lazyrich.experiment import ExperimentResult, build_task
from lazyrich.figures.common import (
    config,
    figure,
    non_saddle,
    np64,
    run,
    sim_and_theory,
)
from lazyrich.results import max_rel_error

__all__ = ["fig_4", "hierarchy_sweep"]

HIERARCHY = {"name": "hierarchy", "depth": 3, "branching": 2}
NOISE_SIGMA = 0.05
T_SWEEP, T_GAUSS = 14.0, 20.0  # long enough for every balanced net and the small Gaussian to converge


def hierarchy_lams(small: bool = False) -> tuple[float, ...]:
    """The λ values of Fig. 4's sweep on the hierarchy (and of Fig. 6 (d), which runs the transfer suite on it)."""
    return (-8.0, 0.0, 8.0) if small else (-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0)


def hierarchy_sweep(small: bool = False) -> tuple[ExperimentResult, tuple[float, ...]]:
    """λ-balanced random inits on the hierarchy, trained to convergence, one batch over λ. The seed is one whose
    λ = 0 net does not stall at a saddle. Fig. 6 (d) runs the transfer suite on the same hierarchy, λ values and
    t_max instead (``transfer_overrides``)."""
    lams = hierarchy_lams(small)
    cfg = config(HIERARCHY, lam=list(lams), lr=4e-3 if small else 2e-3, t_max=T_SWEEP, n_log=41 if small else 81)
    return run(non_saddle(cfg)), lams


def _final(result: ExperimentResult, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(simulated, predicted) matrix ``name`` at the last logged t, each (B, …)."""
    _, sim, theory = sim_and_theory(result, name)
    return sim[:, -1], theory[:, -1]


def _gaussian_pair(small: bool) -> ExperimentResult:
    """A small (σ = 0.2) and a large (σ = 1.5) Gaussian init on the hierarchy, against the integrated flow."""
    return run(
        config(
            HIERARCHY,
            kind="gaussian",
            scale=[0.2, 1.5],
            lr=4e-3 if small else 2e-3,
            t_max=T_GAUSS,
            n_log=41 if small else 81,
            theory="ode",
            hidden=8,
        )
    )


def _rsms(w1tw1: np.ndarray, wwt_out: np.ndarray, task) -> list[np.ndarray]:
    """RSM_I and RSM_O of one network (:func:`lazyrich.metrics.representation_similarity`)."""
    grams = (torch.from_numpy(w1tw1), torch.from_numpy(wwt_out))
    return [np64(m) for m in metrics.representation_similarity(*grams, task.X, task.Y)]


def _representation_grid(fig, grid, columns: list[tuple[str, ExperimentResult, int]], task) -> dict[str, float]:
    """Rows 0–3 of Fig. 4: W1ᵀW1, W2W2ᵀ and the two RSMs at convergence, one column per (name, result, network),
    simulation above the diagonal, theory below; the error of each image."""
    rows = ["W1ᵀW1", "W2W2ᵀ", "RSM_I = X W1ᵀW1 Xᵀ", "RSM_O = Y (W2W2ᵀ)⁺ Yᵀ"]
    errors: dict[str, float] = {}
    for col, (name, result, k) in enumerate(columns):
        (w1_sim, w1_th), (w2_sim, w2_th) = _final(result, "w1tw1"), _final(result, "wwt_out")
        sims = [w1_sim[k], w2_sim[k], *_rsms(w1_sim[k], w2_sim[k], task)]
        theories = [w1_th[k], w2_th[k], *_rsms(w1_th[k], w2_th[k], task)]
        for row, (label, sim, theory) in enumerate(zip(rows, sims, theories, strict=True)):
            ax = fig.add_subplot(grid[row, 2 * col : 2 * col + 2])
            err = max_rel_error(sim, theory)
            errors[f"{label.split(' =')[0]}, {name}"] = err
            plots.split_matrix(ax, np64(sim), np64(theory), title=f"error {err:.1e}")
            if row == 0:
                ax.set_title(f"{name}\nerror {err:.1e}", fontsize=9)
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
    return errors


def _noise_predictions(sweep: ExperimentResult, task, lams: tuple[float, ...], small: bool) -> list[tuple]:
    """(label, Monte Carlo (B,), exact expectation (B,), docs/theory.md §10 formula) for input, then parameter
    noise on the converged λ sweep."""
    weights = sweep.trajectories[0].final_weights  # the Monte Carlo perturbs the trained weights themselves
    extra_in, extra_par = metrics.noise_costs(weights, task, NOISE_SIGMA, 2000 if small else 4000)
    # Both excess losses are exact in expectation for any weights; the theory's weights at t_max go in.
    ends = {name: torch.from_numpy(_final(sweep, name)[1]) for name in ("product", "w1tw1", "wwt_out")}
    th_in, th_par = (np64(v) for v in metrics.expected_noise_costs(ends["product"], ends["w1tw1"], ends["wwt_out"],
                                                                   NOISE_SIGMA, weights[0].shape[1]))
    s2, n_in = NOISE_SIGMA**2, task.n_in
    norm_sq = float((task.sigma_yx**2).sum())
    s_tilde = np64(task.svd[1])
    eps_sum = np.sqrt(s_tilde[None] ** 2 + np.asarray(lams)[:, None] ** 2 / 4).sum(-1)
    doc_in, doc_par = s2 * norm_sq, 2 * s2 * task.P * n_in * eps_sum  # docs/theory.md §10 as written
    return [
        ("input noise", np64(extra_in), th_in, doc_in),
        ("parameter noise", np64(extra_par), th_par, doc_par),
    ]


def _noise_panel(ax, j: int, lam_axis: np.ndarray, label: str, sim: np.ndarray, theory: np.ndarray,
                 doc: np.ndarray | float) -> float:
    """One noise-robustness panel (j = 0 input, 1 parameters): Monte Carlo against λ beside the expectation,
    titled with the ratio to the docs formula; its error."""
    plots.sim_theory(
        ax,
        lam_axis,
        sim,
        theory,
        color="C0" if j == 0 else "C3",
        marker="o",
        label="Monte Carlo on the trained nets",
    )
    ratio = np.median(sim / doc)
    formula = (
        "½σ²‖W2W1‖²_F → ½σ²‖Σyx‖²_F"
        if j == 0
        else "½σ²(No‖W1‖² + Ni‖W2‖²) + ½σ⁴NoNhNi = σ²n Σ_α √(s̃_α² + λ²/4) + ½σ⁴n³"
    )
    ax.set(
        xlabel="λ",
        ylabel="excess loss (loss = 1/(2P)‖ŷ − Y‖²)",
        title=f"{label}, σ = {NOISE_SIGMA:g}; theory {formula}\nMonte Carlo / (docs/theory.md §10 formula) = "
        f"{ratio:.3g}",
    )
    ax.title.set_fontsize(8)
    ax.set_ylim(0.0, 1.15 * max(sim.max(), theory.max()))  # from zero: the agreement reads at its true size
    ax.grid(alpha=0.3)
    plots.legend_sim_theory(ax, loc="best", fontsize=7)
    return max_rel_error(sim, theory)


@figure(
    "Fig. 4: after training on the hierarchical task, small-Gaussian and λ = 0 nets learn the tree in "
    "both W1ᵀW1 and W2W2ᵀ, a large Gaussian stays random, large ±λ keep one side structured and the "
    "other near |λ|I, and parameter-noise cost grows with |λ| while input-noise cost does not",
    rect=(0, 0, 1, 0.97),
)
def fig_4(out_dir: Path, small: bool) -> tuple[plt.Figure, dict[str, float]]:
    """W1ᵀW1, W2W2ᵀ and the RSMs at convergence for five inits; noise robustness against λ."""
    task = build_task(HIERARCHY)
    sweep, lams = hierarchy_sweep(small)
    gauss = _gaussian_pair(small)
    pick = {lam: i for i, lam in enumerate(lams)}
    columns = [
        ("small Gaussian σ = 0.2", gauss, 0),
        ("large Gaussian σ = 1.5", gauss, 1),
        ("λ = 0 (rich)", sweep, pick[0.0]),
        ("λ = +8 (semi-lazy)", sweep, pick[8.0]),
        ("λ = −8 (semi-lazy)", sweep, pick[-8.0]),
    ]
    fig = plt.figure(figsize=(14, 15))
    grid = fig.add_gridspec(5, 10, height_ratios=[1, 1, 1, 1, 1.25])
    errors = _representation_grid(fig, grid, columns, task)
    # Noise robustness of the converged λ sweep: Monte Carlo on the simulated weights vs the formulas.
    for j, (label, sim, theory, doc) in enumerate(_noise_predictions(sweep, task, lams, small)):
        ax = fig.add_subplot(grid[4, 5 * j : 5 * j + 5])
        errors[label] = _noise_panel(ax, j, np.asarray(lams), label, sim, theory, doc)
    fig.suptitle(
        f"Fig. 4 — representations on the hierarchical task after training (t = {T_GAUSS:g} for Gaussian, "
        f"{T_SWEEP:g} for λ-balanced inits)\neach image: simulation above the diagonal, theory below "
        "(exact solution; the integrated gradient flow for the Gaussian inits)",
        fontsize=10,
    )
    return fig, errors
