"""Figure 4: representations on the hierarchical task, rich to semi-structured lazy; noise robustness."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from lazyrich import metrics, plots
from lazyrich.experiment import ExperimentResult, build_task
from lazyrich.figures.common import (
    FigureResult,
    config,
    figure,
    figure_result,
    non_saddle_seed,
    np64,
    run,
    save_png,
)
from lazyrich.results import max_rel_error

__all__ = ["fig_4", "hierarchy_sweep", "noise_costs"]

HIERARCHY = {"name": "hierarchy", "depth": 3, "branching": 2}
NOISE_SIGMA = 0.05
T_SWEEP, T_GAUSS = 14.0, 20.0  # long enough for every balanced net and the small Gaussian to converge


@lru_cache(maxsize=2)
def hierarchy_sweep(small: bool = False) -> tuple[ExperimentResult, tuple[float, ...]]:
    """λ-balanced random inits on the hierarchy, trained to convergence, one batch over λ (cached: Fig. 4 and
    the transfer panel of Fig. 6 share it). The seed is one whose λ = 0 net does not stall at a saddle."""
    lams = (-8.0, 0.0, 8.0) if small else (-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0)
    cfg = config(
        HIERARCHY,
        lam=list(lams),
        scale=0.1,
        lr=4e-3 if small else 2e-3,
        t_max=T_SWEEP,
        n_log=41 if small else 81,
    )
    cfg["seed"] = non_saddle_seed(cfg)
    return run(cfg), lams


def _final(result: ExperimentResult, name: str) -> tuple[Tensor, Tensor]:
    """(simulated, predicted) matrix ``name`` at the last logged t, each (B, …)."""
    traj, pred = result.trajectories[0], result.predictions[0]
    return traj.matrices[name][:, -1], getattr(pred, name)[:, -1]


def _rsms(w1tw1: Tensor, wwt_out: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """RSM_I = X W1ᵀW1 Xᵀ and RSM_O = Y (W2W2ᵀ)⁺ Yᵀ (P × P, docs/theory.md §6, rows are samples)."""
    return x @ w1tw1 @ x.mT, y @ torch.linalg.pinv(wwt_out, hermitian=True) @ y.mT


def noise_costs(
    weights: list[Tensor], task, sigma: float, n_draws: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Monte Carlo excess loss (B,) under input noise x → x + ε and under parameter noise W_l → W_l + E_l,
    every entry N(0, σ²), for trained two-layer nets ``weights`` [W1 (B, Nh, Ni), W2 (B, No, Nh)]."""
    gen = torch.Generator().manual_seed(seed)
    w1, w2 = weights
    x, y = task.X, task.Y
    product = w2 @ w1
    clean = 0.5 * ((x @ product.mT - y) ** 2).sum((-2, -1)) / task.P
    eps = sigma * torch.randn(n_draws, *x.shape, generator=gen, dtype=x.dtype)
    noisy_in = 0.5 * (((x + eps)[None] @ product.mT[:, None] - y) ** 2).sum((-2, -1)).mean(-1) / task.P
    e1 = sigma * torch.randn(n_draws, *w1.shape, generator=gen, dtype=w1.dtype)
    e2 = sigma * torch.randn(n_draws, *w2.shape, generator=gen, dtype=w2.dtype)
    noisy_product = (w2 + e2) @ (w1 + e1)
    noisy_par = metrics.loss_from_product(noisy_product, task.sigma_xx, task.sigma_yx, task.sigma_yy).mean(0)
    return noisy_in - clean, noisy_par - metrics.loss_from_product(
        product, task.sigma_xx, task.sigma_yx, task.sigma_yy
    )


def _gaussian_pair(small: bool) -> ExperimentResult:
    """A small (σ = 0.2) and a large (σ = 1.5) Gaussian init on the hierarchy, against the integrated flow."""
    return run(
        config(
            HIERARCHY,
            kind="gaussian",
            scale=[0.2, 1.5],
            lam=0.0,
            lr=4e-3 if small else 2e-3,
            t_max=T_GAUSS,
            n_log=41 if small else 81,
            theory="ode",
            hidden=8,
        )
    )


def _representation_grid(fig, grid, columns: list[tuple[str, ExperimentResult, int]], task) -> dict[str, float]:
    """Rows 0–3 of Fig. 4: W1ᵀW1, W2W2ᵀ and the two RSMs at convergence, one column per (name, result, network),
    simulation above the diagonal, theory below; the error of each image."""
    rows = ["W1ᵀW1", "W2W2ᵀ", "RSM_I = X W1ᵀW1 Xᵀ", "RSM_O = Y (W2W2ᵀ)⁺ Yᵀ"]
    errors: dict[str, float] = {}
    for col, (name, result, k) in enumerate(columns):
        (w1_sim, w1_th), (w2_sim, w2_th) = _final(result, "w1tw1"), _final(result, "wwt_out")
        sims = [w1_sim[k], w2_sim[k], *_rsms(w1_sim[k], w2_sim[k], task.X, task.Y)]
        theories = [w1_th[k], w2_th[k], *_rsms(w1_th[k], w2_th[k], task.X, task.Y)]
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
    traj, pred = sweep.trajectories[0], sweep.predictions[0]
    extra_in, extra_par = noise_costs(traj.final_weights, task, NOISE_SIGMA, 2000 if small else 4000)
    n_out, n_hidden, n_in = task.n_out, traj.final_weights[0].shape[1], task.n_in
    s2 = NOISE_SIGMA**2
    norm_sq = float((task.sigma_yx**2).sum())
    # Both excess losses are exact in expectation for any weights (the noise enters with zero mean):
    # input ½σ²‖W2W1‖², parameters ½E‖E2W1 + W2E1 + E2E1‖²; the theory's weights at t_max go in.
    th_in = 0.5 * s2 * np64((pred.product[:, -1] ** 2).sum((-2, -1)))
    w1_sq = np64(torch.diagonal(pred.w1tw1[:, -1], dim1=-2, dim2=-1).sum(-1))
    w2_sq = np64(torch.diagonal(pred.wwt_out[:, -1], dim1=-2, dim2=-1).sum(-1))
    th_par = 0.5 * s2 * (n_out * w1_sq + n_in * w2_sq) + 0.5 * s2**2 * n_out * n_hidden * n_in
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


@figure
def fig_4(out_dir: Path, small: bool = False) -> FigureResult:
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
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    what = (
        "Fig. 4: after training on the hierarchical task, small-Gaussian and λ = 0 nets learn the tree in "
        "both W1ᵀW1 and W2W2ᵀ, a large Gaussian stays random, large ±λ keep one side structured and the "
        "other near |λ|I, and parameter-noise cost grows with |λ| while input-noise cost does not"
    )
    path = save_png(fig, out_dir, "fig4", small)
    return figure_result(path, errors, what)
