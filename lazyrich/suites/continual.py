"""Continual learning (docs/theory.md §10): K whitened tasks on shared inputs, learned one after another.

Measured: the loss matrix R[i, k] (loss on task i after phase k), forgetting per task and BWT, all from
:mod:`lazyrich.metrics`. Beside it, the analytic prediction at convergence, R̂[i, k] = loss of task k's
optimum on task i = ½‖Σ_k − Σ_i‖²_F + L_min,i (whitened), which does not depend on λ; and the theory's R,
the closed-form dynamics at the end of each finite phase (restarted at each switch from the reached weights),
which also captures saddles (λ = 0, square nets: B singular when the determinant signs disagree).

The table is built column-wise from the batch's tensors (no loop over networks). Each unit also stores R, R̂ and
the theory's R per network, and, per phase k, W2W1 and the loss on every task at the matrix log points, simulated
and predicted (:func:`phase_matrices`: ``phase<k>_t``, ``phase<k>_{sim,theory}_product``,
``phase<k>_{sim,theory}_task_losses`` in its matrix store, read with :func:`lazyrich.results.io.load_matrices`);
Fig. 6 (a, b) draws them (``lazyrich.figures.applications.continual_overrides``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import metrics
from lazyrich.config.suites import ContinualSuite
from lazyrich.experiment import run_experiment
from lazyrich.results import measures
from lazyrich.results.curves import Curves
from lazyrich.results.io import load_matrices
from lazyrich.results.tables import markdown_table
from lazyrich.suites import charts
from lazyrich.suites.common import Suite, config_columns, lam_run, lam_seed_axes
from lazyrich.suites.runner import Unit, UnitOutput
from lazyrich.suites.spec import Constant, Measure

__all__ = ["SUITE", "analytic_loss_matrix", "loss_matrix", "phase_matrices"]


def analytic_loss_matrix(tasks) -> torch.Tensor:
    """R̂ (K, K): loss on task i of task k's least-squares optimum — R at convergence, for any λ (§6)."""
    optima = [metrics.least_squares_optimum(t.sigma_xx, t.sigma_yx, t.sigma_yy)[0] for t in tasks]
    return metrics.loss_matrix([[w] for w in optima], tasks)


def _units(params: ContinualSuite, device: str) -> list[Unit]:
    # The task config is the user's as given: each phase trains for the run's t_max = t_phase unless the task sets
    # a budget of its own, so a sequence task need not take a ``t_budget`` parameter.
    values = {"suite": "continual", "converged_tol": params.converged_tol}
    return [Unit({"lam": lam}, values, {"experiment": lam_run(params, params.task, lam, params.t_phase, device)})
            for lam in params.lams]


def _saddle_text(saddles: np.ndarray) -> np.ndarray:
    """Per network (B,): the phases whose theory predicts a saddle, e.g. ``"0 2"``, or ``"none"``."""
    text = np.full(saddles.shape[0], "", dtype=str)
    for j in range(saddles.shape[1]):  # over phases; each step is batched over the networks
        text = np.char.add(text, np.where(saddles[:, j], f" {j}", ""))
    text = np.char.strip(text)
    return np.where(text == "", "none", text).astype(object)


def loss_matrix(phases: list[Curves], tasks) -> torch.Tensor:
    """R (B, K, K) of one source (the simulation or a theory): R[b, i, k] is network b's loss on task i with the
    W2W1 it holds at the end of phase k. One definition for every source."""
    ends = [measures.final(c, "product").cpu().to(torch.float64) for c in phases]
    return metrics.loss_matrix([[w] for w in ends], tasks)


def _theory_columns(r: torch.Tensor, theory: list[Curves], predictions: list[Any],
                    tasks) -> tuple[dict[str, Any], torch.Tensor]:
    """The theory's columns (theory_forgetting, r_err_theory, saddle_phases) and its loss matrix R (B, K, K)."""
    r_th = loss_matrix(theory, tasks)
    saddles = np.stack([p.converges_to_saddle.cpu().numpy() for p in predictions], -1)  # (B, K)
    columns = {
        "theory_forgetting": metrics.forgetting(r_th).mean(-1).numpy(),
        "r_err_theory": (r - r_th).abs().amax((-2, -1)).numpy(),
        "saddle_phases": _saddle_text(saddles),
    }
    return columns, r_th


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    result = run_experiment(unit.runs["experiment"])
    tasks = result.task.tasks
    k = len(tasks)
    simulation, theory = result.curves()
    r = loss_matrix(simulation, tasks)
    r_hat = analytic_loss_matrix(tasks)
    forget, forget_hat = metrics.forgetting(r), metrics.forgetting(r_hat)
    l_min = torch.diagonal(r_hat)  # a task's own optimum leaves L_min
    columns: dict[str, Any] = {
        **config_columns(result.meta),
        "forgetting": forget.mean(-1).numpy(),
        "analytic_forgetting": float(forget_hat.mean()),
        "bwt": metrics.backward_transfer(r).numpy(),
        "analytic_bwt": float(metrics.backward_transfer(r_hat)),
        "r_err_analytic": (r - r_hat).abs().amax((-2, -1)).numpy(),
        "converged": ((torch.diagonal(r, dim1=-2, dim2=-1) - l_min) <= unit.values["converged_tol"]).all(-1).numpy(),
    }
    for i in range(k - 1):
        columns |= {f"forgetting_{i}": forget[:, i].numpy(), f"analytic_forgetting_{i}": float(forget_hat[i])}
    have_theory = all(c is not None for c in theory)
    matrices = {"loss_matrix": r.numpy(), "analytic_loss_matrix": r_hat.expand_as(r).numpy()}  # batch first
    if have_theory:
        theory_columns, r_th = _theory_columns(r, theory, result.predictions, tasks)
        columns |= theory_columns
        matrices["theory_loss_matrix"] = r_th.numpy()
    columns |= {f"R_{i}_{j}": r[:, i, j].numpy() for i in range(k) for j in range(k)}
    matrices |= phase_matrices(simulation, theory if have_theory else [None] * k, tasks)
    return UnitOutput(result.frame, pd.DataFrame(columns), matrices, result.theory_notes)


def phase_matrices(simulation: list[Curves], theory: list[Curves | None], tasks) -> dict[str, np.ndarray]:
    """What Fig. 6 (a, b) draws, per phase k, at its matrix log points: ``phase<k>_t`` (B, Tm) since the phase
    began, ``phase<k>_{sim,theory}_product`` W2W1 (B, Tm, No, Ni) and ``phase<k>_{sim,theory}_task_losses``
    (B, Tm, K), the loss on every task (the run folder's naming, :func:`lazyrich.results.load_matrices`)."""
    out: dict[str, np.ndarray] = {}
    for phase, (sim, pred) in enumerate(zip(simulation, theory, strict=True)):
        out[f"phase{phase}_t"] = sim.matrix_t.cpu().numpy()
        for source, curves in (("sim", sim), ("theory", pred)):
            if curves is not None:
                product = curves["product"].cpu()
                out[f"phase{phase}_{source}_product"] = product.numpy()
                out[f"phase{phase}_{source}_task_losses"] = metrics.task_losses(product, tasks).numpy()
    return out


def _k(ok: pd.DataFrame) -> int:
    return int(np.sqrt(len([c for c in ok.columns if c.startswith("R_")]))) if len(ok) else 0


def _analytic_section(ok: pd.DataFrame, folder: Path) -> list[str]:
    """R̂ of the first finished unit (the same for every λ and network), read from its stored matrices."""
    k = _k(ok)
    if not k or "unit" not in ok:
        return []
    stored = load_matrices(folder / "runs" / str(ok["unit"].iloc[0]), ["analytic_loss_matrix"])
    r_hat = pd.DataFrame(stored["analytic_loss_matrix"][0], columns=[f"after {j}" for j in range(k)])
    r_hat.insert(0, "loss on", [f"task {i}" for i in range(k)])
    return [f"K = {k} tasks. Analytic R̂ (any λ, at convergence):", "", markdown_table(r_hat), ""]


def _stuck_notes(ok: pd.DataFrame) -> list[str]:
    stuck = ok[~ok["converged"].astype(bool)] if len(ok) else ok
    if not len(stuck):
        return []
    desc = ", ".join(f"λ={r['lam']:g} seed {r['seed']} (saddle phases: {r.get('saddle_phases', '?')}, "
                     f"forgetting {r['forgetting']:.4g})" for _, r in stuck.iterrows())
    return [f"- Not converged: {desc}. Compare `saddle_phases` (where the theory predicts B singular, i.e. a "
            "saddle) and `r_err_theory` (measured R against the theory's R)."]


SUITE = Suite(
    "continual",
    "K tasks in sequence: loss matrix, forgetting and BWT against λ, with R̂ at convergence",
    _units,
    _compute,
    axes=lam_seed_axes("λ of the λ-balanced random init"),
    phases=("task 0", "task 1", "…", "task K−1"),
    measures=(
        Measure("forgetting", "mean over earlier tasks of R[i, K−1] − R[i, i] (R[i, k]: loss on task i after phase "
                "k, columns `R_i_k`)", "analytic_forgetting"),
        Measure("theory_forgetting", "the same from the closed-form dynamics at the end of each finite phase"),
        Measure("bwt", "backward transfer, −mean forgetting (metrics.backward_transfer)", "analytic_bwt"),
        Measure("r_err_analytic", "max |R − R̂|, R̂[i, k] = ½‖Σ_k − Σ_i‖²_F + L_min,i (the same for every λ)"),
        Measure("r_err_theory", "max |R − R_theory|"),
        Measure("converged", "every phase ended within `converged_tol` of its task's L_min", kind="bool"),
        Measure("saddle_phases", "phases in which the theory predicts a saddle", kind="text", example=("none", "0")),
    ),
    expectations=(Constant("forgetting", "analytic_forgetting", rtol=1e-3, error="r_err_analytic",
                           where="converged"),),
    protocol="K whitened tasks on shared inputs, learned one after another from a λ-balanced init. `analytic_*`: "
    "the prediction at convergence.",
    prediction="at convergence every λ forgets the same (R = R̂, set by task similarity); λ changes only the path "
    "and the speed.",
    figures=(
        charts.curves("continual: task after task"),
        charts.sweep(["forgetting", "bwt"], "continual: forgetting against λ", theory_prefix="analytic_",
                     theory_label="analytic, at convergence"),
    ),
    sections=(_analytic_section,),
    notes=(_stuck_notes,),
    key=("lam",),
)
