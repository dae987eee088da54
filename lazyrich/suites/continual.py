"""Continual learning (docs/theory.md §10): K whitened tasks on shared inputs, learned one after another.

Measured: the loss matrix R[i, k] (loss on task i after phase k), forgetting per task and BWT, all from
:mod:`lazyrich.metrics`. Beside it, the analytic prediction at convergence, R̂[i, k] = loss of task k's
optimum on task i = ½‖Σ_k − Σ_i‖²_F + L_min,i (whitened), which does not depend on λ; and the theory's R,
the closed-form dynamics at the end of each finite phase (restarted at each switch from the reached weights),
which also captures saddles (λ = 0, square nets: B singular when the determinant signs disagree).
"""

from __future__ import annotations

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
)
from lazyrich.suites.runner import Unit, UnitOutput

__all__ = ["SUITE", "analytic_loss_matrix"]

TABLE = [
    "lam",
    "seed",
    "forgetting",
    "analytic_forgetting",
    "theory_forgetting",
    "bwt",
    "analytic_bwt",
    "r_err_analytic",
    "r_err_theory",
    "converged",
    "saddle_phases",
]


def analytic_loss_matrix(tasks) -> torch.Tensor:
    """R̂ (K, K): loss on task i of task k's least-squares optimum — R at convergence, for any λ (§6)."""
    optima = [metrics.least_squares_optimum(t.sigma_xx, t.sigma_yx, t.sigma_yy)[0] for t in tasks]
    return metrics.loss_matrix([[w] for w in optima], tasks)


def _units(params: Mapping[str, Any], device: str) -> list[Unit]:
    task = {**dict(params["task"]), "t_budget": float(params["t_phase"])}
    s_max = max(float(t.svd[1][0]) / (t.whitening_scale or 1.0) for t in build_task(task).tasks)
    out = []
    for lam in params["lams"]:
        lr = flow_lr(lam, s_max, params["eta"], params["lr_max"])
        exp = experiment_config(
            task,
            lam=lam,
            seeds=params["seeds"],
            lr=lr,
            t_max=params["t_phase"],
            init={"scale": params["init_scale"], "align": False},
            trainer={"n_log": params["n_log"]},
            theory=params["theory"],
            device=device,
        )
        out.append(
            Unit(
                {"lam": float(lam)},
                {"suite": "continual", "experiment": exp, "converged_tol": float(params["converged_tol"])},
            )
        )
    return out


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    cfg = unit.config["experiment"]
    result = run_experiment(cfg, None, log_wandb=False, plot=False)
    tasks = build_task(cfg["task"]).tasks
    k = len(tasks)
    r = torch.as_tensor(result.loss_matrix)  # (B, K, K)
    r_hat = analytic_loss_matrix(tasks)
    l_min = torch.diagonal(r_hat)  # a task's own optimum leaves L_min
    forget, bwt = metrics.forgetting(r), metrics.backward_transfer(r)
    forget_hat, bwt_hat = metrics.forgetting(r_hat), metrics.backward_transfer(r_hat)
    have_theory = all(p is not None for p in result.predictions)
    if have_theory:
        r_th = metrics.loss_matrix([[p.product[:, -1].cpu()] for p in result.predictions], tasks)
        saddles = torch.stack([p.converges_to_saddle.cpu() for p in result.predictions], -1)  # (B, K)
    tol = unit.config["converged_tol"]
    rows = []
    for net, meta in result.meta.iterrows():
        row = {
            "lam": meta["lam"],
            "seed": int(meta["seed"]),
            "lr": meta["lr"],
            "forgetting": float(forget[net].mean()),
            "analytic_forgetting": float(forget_hat.mean()),
            "bwt": float(bwt[net]),
            "analytic_bwt": float(bwt_hat),
            "r_err_analytic": float((r[net] - r_hat).abs().max()),
            "converged": bool(((torch.diagonal(r[net]) - l_min) <= tol).all()),
        }
        for i in range(k - 1):
            row[f"forgetting_{i}"] = float(forget[net, i])
            row[f"analytic_forgetting_{i}"] = float(forget_hat[i])
        if have_theory:
            row.update(
                {
                    "theory_forgetting": float(metrics.forgetting(r_th[net]).mean()),
                    "r_err_theory": float((r[net] - r_th[net]).abs().max()),
                    "saddle_phases": " ".join(str(j) for j in range(k) if bool(saddles[net, j])) or "none",
                }
            )
        for i in range(k):
            for j in range(k):
                row[f"R_{i}_{j}"] = float(r[net, i, j])
        rows.append(row)
    (run_dir / "theory.txt").write_text("\n".join(result.theory_notes) + "\n")
    matrices = {"loss_matrix": r.numpy(), "analytic_loss_matrix": r_hat.numpy()}
    if have_theory:
        matrices["theory_loss_matrix"] = r_th.numpy()
    return UnitOutput(result.frame, pd.DataFrame(rows), matrices)


def _report(table: pd.DataFrame, suite_dir: Path) -> Report:
    ok = ok_rows(table)
    figures = []
    frames = load_frames(suite_dir, table)
    if len(frames):
        fig = plots.curves(frames, ("loss", "kernel_distance"), hue="lam", title="continual: task after task")
        figures.append(plots.save(fig, suite_dir / "curves.png"))
    if len(ok):
        fig = plots.sweep(
            ok,
            "lam",
            ["forgetting", "bwt"],
            theory_prefix="analytic_",
            title="continual: forgetting against λ (dotted: analytic, at convergence)",
        )
        figures.append(plots.save(fig, suite_dir / "sweep.png"))
    k = int(np.sqrt(len([c for c in ok.columns if c.startswith("R_")]))) if len(ok) else 0
    lines = [
        "## Continual learning",
        "",
        f"K = {k} whitened tasks on shared inputs, learned one after another from a λ-balanced init. "
        "R[i, k]: loss on task i after phase k (columns `R_i_k`); `forgetting`: mean over earlier tasks of "
        "R[i, K−1] − R[i, i]; `bwt` = −mean forgetting (metrics.backward_transfer). `analytic_*`: the "
        "prediction at convergence, R̂[i, k] = ½‖Σ_k − Σ_i‖²_F + L_min,i, the same for every λ; "
        "`r_err_analytic` = max |R − R̂|. `theory_forgetting`, `r_err_theory`: the closed-form dynamics "
        "at the end of each finite phase; `saddle_phases`: phases in which the theory predicts a saddle; "
        "`converged`: every phase ended within `converged_tol` of its task's L_min.",
        "",
    ]
    lines += [markdown_table(ok[[c for c in TABLE if c in ok]]), ""]
    if len(ok) and k:
        npz = suite_dir / "runs" / str(ok["unit"].iloc[0]) / "matrices.npz"
        if npz.exists():
            r_hat = pd.DataFrame(
                np.load(npz)["analytic_loss_matrix"], columns=[f"after {j}" for j in range(k)]
            )
            r_hat.insert(0, "loss on", [f"task {i}" for i in range(k)])
            lines += ["Analytic R̂ (any λ, at convergence):", "", markdown_table(r_hat), ""]
    conv = ok[ok["converged"].astype(bool)] if len(ok) else ok
    spread = float(conv["forgetting"].max() - conv["forgetting"].min()) if len(conv) else float("nan")
    ref = float(conv["analytic_forgetting"].mean()) if len(conv) else float("nan")
    err = float(conv["r_err_analytic"].max()) if len(conv) else float("nan")
    stuck = ok[~ok["converged"].astype(bool)] if len(ok) else ok
    same = bool(len(conv)) and spread <= 1e-3 * max(abs(ref), 1.0) and err <= 1e-3 * max(abs(ref), 1.0)
    lines += [
        "### Outcome (measured) against docs/theory.md §10",
        "",
        "The Theory page predicts: at convergence every λ forgets the same (R = R̂, set by task similarity); λ "
        "changes only the path and the speed.",
        "",
        f"- {len(conv)} of {len(ok)} networks converged in every phase; across them forgetting spans "
        f"{spread:.3g} (analytic {ref:.4g}) and max |R − R̂| = {err:.3g}: "
        f"{'the same for every λ, as predicted' if same else 'NOT the same for every λ'}.",
    ]
    if len(stuck):
        desc = ", ".join(
            f"λ={r['lam']:g} seed {r['seed']} (saddle phases: {r.get('saddle_phases', '?')}, "
            f"forgetting {r['forgetting']:.4g})"
            for _, r in stuck.iterrows()
        )
        lines.append(
            f"- Not converged: {desc}. Compare `saddle_phases` (where the theory predicts B singular, "
            f"i.e. a saddle) and `r_err_theory` (measured R against the theory's R)."
        )
    verdict = (
        f"{len(conv)}/{len(ok)} converged; forgetting spread {spread:.2g} around analytic {ref:.4g} "
        f"({'λ-independent, as' if same else 'NOT as'} docs/theory.md §10 predicts); {len(stuck)} not converged"
    )
    if len(stuck) and "saddle_phases" in stuck:
        at_saddle = int((stuck["saddle_phases"].astype(str) != "none").sum())
        lams = ", ".join(f"{v:g}" for v in sorted(stuck["lam"].unique()))
        verdict += f" (λ ∈ {{{lams}}}; {at_saddle} of them where the theory predicts a saddle)"
    return Report("\n".join(lines) + "\n", figures, verdict, TABLE)


SUITE = Suite(
    "continual",
    "K tasks in sequence: loss matrix, forgetting and BWT against λ, with R̂ at convergence",
    _units,
    _compute,
    _report,
    columns=tuple(TABLE),
    key=("lam",),
)
