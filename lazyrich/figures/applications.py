"""Figure 6: the applications — continual learning, reversal, transfer (new feature) and fine-tuning."""

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
)
from lazyrich.figures.representations import HIERARCHY, T_SWEEP, hierarchy_lams
from lazyrich.figures.views import suite_table, unit_frame, unit_matrices
from lazyrich.results import max_rel_error

__all__ = ["continual_overrides", "fig_6", "finetune_overrides", "reversal_overrides", "transfer_overrides"]


def continual_overrides(small: bool) -> list[str]:
    """Fig. 6 (a, b) is the continual suite with other constants: these ``lazyrich bench`` overrides (K = 3
    whitened 3 × 3 tasks, λ = 2, one seed, 5 time units per task, a fixed step, W2W1 kept at every log point)."""
    key = "suite.continual"
    n_log = 41 if small else 101
    return [
        f"{key}.lams=[2]",
        "seed=[0]",
        *(f"++{key}.task.{k}={v}" for k, v in (("K", 3), ("n_in", 3), ("n_out", 3), ("seed", 0))),
        f"{key}.t_phase=5.0",
        f"{key}.init_scale=0.1",
        f"{key}.lr_max={4e-3 if small else 2e-3:g}",
        f"{key}.eta=1e9",
        f"{key}.n_log={n_log}",
        f"{key}.n_matrix={n_log}",
        f"{key}.theory=exact",
    ]


def _continual_series(out_dir: Path, small: bool) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray],
                                                            list[float]]:
    """(t over the whole sequence (Tm·K,), [simulated, predicted] W2W1 (Tm·K, No, Ni), [simulated, predicted]
    loss on every task (Tm·K, K), the times at which the later phases start) of the one network of the
    continual suite run with :func:`continual_overrides`."""
    overrides = continual_overrides(small)
    unit = str(suite_table(out_dir, "continual", overrides)["unit"].iloc[0])
    m = unit_matrices(out_dir, "continual", overrides, unit)
    k = sum(1 for name in m if name.endswith("_t") and name.startswith("phase"))
    times, offset = [], 0.0
    for phase in range(k):  # each phase's clock restarts at 0: lay the phases end to end
        times.append(m[f"phase{phase}_t"][0] + offset)
        offset = float(times[-1][-1])
    products, losses = (
        [np.concatenate([m[f"phase{p}_{src}_{name}"][0] for p in range(k)]) for src in ("sim", "theory")]
        for name in ("product", "task_losses"))
    return np.concatenate(times), products, losses, [t[0] for t in times[1:]]


def _continual(ax_w, ax_loss, out_dir: Path, small: bool) -> dict[str, float]:
    """W2W1 entries and every task's loss across a sequence of three tasks (λ = 2), read from the continual
    suite's stored matrices."""
    t, (sim, theory), (loss_sim, loss_theory), switches = _continual_series(out_dir, small)
    plots.mark_phases(ax_w, switches)
    plots.mark_phases(ax_loss, switches)
    plots.matrix_entries(ax_w, t, sim, theory)
    errors = {"continual: W2W1": max_rel_error(sim, theory)}
    for i, colour in enumerate(("C0", "C1", "C2")):
        plots.sim_theory(ax_loss, t, loss_sim[:, i], loss_theory[:, i], color=colour, label=f"loss on task {i + 1}")
        errors[f"continual: loss on task {i + 1}"] = max_rel_error(loss_sim[:, i], loss_theory[:, i])
    ax_w.set(
        title="(a) continual, λ = 2: W2W1 entries over tasks 1 → 2 → 3", xlabel=plots.T_LABEL, ylabel="W2W1 entry"
    )
    ax_loss.set(
        title="(b) each task's loss: forgotten as ½‖Σ_k − Σ_i‖²", xlabel=plots.T_LABEL, ylabel="loss", yscale="log"
    )
    ax_loss.set_ylim(bottom=1e-6)
    plots.legend_sim_theory(ax_loss, loc="lower left", fontsize=6)
    return errors


def reversal_overrides(small: bool) -> list[str]:
    """Fig. 6 (c) is the reversal suite with other constants: these ``lazyrich bench`` overrides (a 3 × 3
    random regression, λ = 0 and 2, one seed, 6 time units per phase, a fixed step)."""
    key = "suite.reversal"
    return [
        f"{key}.lams=[0,2]",
        "seed=[0]",
        f"{key}.task.name=random_regression",
        *(f"+{key}.task.{k}={v}" for k, v in (("n_in", 3), ("n_out", 3), ("seed", 2))),
        f"{key}.t_phase=6.0",
        f"{key}.lr_max={4e-3 if small else 2e-3:g}",
        f"{key}.eta=1e9",
        f"{key}.spacing=linear",
        f"{key}.n_log={61 if small else 121}",
        f"{key}.theory=exact",
    ]


def _reversal(ax, out_dir: Path, small: bool) -> dict[str, float]:
    """Learn Σyx, then −Σyx: λ = 0 stalls at s = 0, λ = 2 crosses zero (the reversal suite's second phase)."""
    overrides = reversal_overrides(small)
    table = suite_table(out_dir, "reversal", overrides).sort_values("lam")
    errors = {}
    for (lam, unit), colour in zip(table[["lam", "unit"]].itertuples(index=False), ("C3", "C0"), strict=True):
        frame = unit_frame(out_dir, "reversal", overrides, unit)
        part = frame[frame["phase"] == 1].sort_values("t")
        svals = sorted(c.split("/")[1] for c in part if c.startswith("sim/sval_"))
        sim, theory = (part[[f"{src}/{c}" for c in svals]].to_numpy(float) for src in ("sim", "theory"))
        t = part["t"].to_numpy(float)
        label = f"λ = {lam:g}" + (" (stalls at s = 0)" if lam == 0 else " (crosses zero)")
        plots.sim_theory(ax, t - t[0], sim, theory, color=colour, label=label)
        errors[f"reversal: singular values (λ={lam:g})"] = max_rel_error(sim, theory)
    ax.axhline(0.0, color="0.6", linewidth=0.8, linestyle="-.")
    ax.set(
        title="(c) reversal Σyx → −Σyx after learning Σyx",
        xlabel=plots.T_LABEL + " (since the switch)",
        ylabel="singular values of W2W1 (reversed-task basis)",
    )
    plots.legend_sim_theory(ax, loc="lower right", fontsize=6)
    return errors


def transfer_overrides(small: bool) -> list[str]:
    """Fig. 6 (d) is the transfer suite with other constants: these ``lazyrich bench`` overrides (Fig. 4's
    hierarchy and λ sweep, signed encoding, a fixed step; the seed is the first one whose λ = 0 net the exact
    theory keeps away from the saddle, found without training)."""
    lams = hierarchy_lams(small)
    seed = non_saddle(config(HIERARCHY, lam=list(lams))).seed
    key = "suite.transfer"
    task = [f"{key}.task.{k}={v}" for k, v in HIERARCHY.items()]
    return [
        f"{key}.lams=[" + ",".join(f"{v:g}" for v in lams) + "]",
        f"seed=[{seed}]",
        *task,
        f"{key}.task.encoding=signed",
        f"{key}.t_max={T_SWEEP:g}",
        f"{key}.n_log={41 if small else 81}",
        f"{key}.lr_max={4e-3 if small else 2e-3:g}",
        f"{key}.eta=1e9",
        f"{key}.init_scale=0.1",
        f"{key}.theory=exact",
        f"{key}.item=leaf0",
    ]


def _transfer(ax, table: pd.DataFrame) -> dict[str, float]:
    """A new output feature trained on item 0 with W1 frozen: how it spreads to the other items, against λ
    (the transfer suite's ``new_feature`` rows: mean score by tree distance from item 0)."""
    rows = table[table["part"] == "new_feature"].sort_values("lam")
    lams = rows["lam"].to_numpy(float)
    groups = {"sibling (item 1)": 1, "cousins (items 2–3)": 2, "other branch (items 4–7)": 3}
    sims, theories = [], []
    for (name, d), colour in zip(groups.items(), ("C0", "C1", "C2"), strict=True):
        sims.append(rows[f"gen_d{d}"].to_numpy(float))
        theories.append(rows[f"theory_gen_d{d}"].to_numpy(float))
        plots.sim_theory(ax, lams, sims[-1], theories[-1], color=colour, label=name, marker="o")
    lam_axis(ax, lams, ylabel="new feature on item j / on item 0",
             title="(d) transfer: a new feature trained on item 0 (W1 frozen)\ntheory: row 0 of X W1ᵀW1 Xᵀ")
    plots.legend_sim_theory(ax, loc="upper left", fontsize=6)
    return {"transfer: generalisation": max_rel_error(np.stack(sims), np.stack(theories), scale=1.0)}


def finetune_overrides(small: bool) -> list[str]:
    """Fig. 6 (e, f) is the finetune suite with other constants: these ``lazyrich bench`` overrides (a 3 × 3
    source, its input side rotated by 0.8 rad, pretrained from λ = 1; a fixed step: ``eta`` so large that
    the suite's step ``min(lr_max, eta/√(λ² + 4s̃₁²))`` is ``lr_max``)."""
    lams = [-8.0, -1.0, 0.0, 1.0, 8.0] if small else [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    key = "suite.finetune"
    return [
        f"{key}.lams=[" + ",".join(f"{v:g}" for v in lams) + "]",
        "seed=[0]",
        f"{key}.task.n_in=3", f"{key}.task.n_out=3", f"{key}.task.seed=3",
        f"{key}.relation.angle=0.8", f"{key}.relation.side=input",
        f"{key}.pretrain.lam=1.0", f"{key}.pretrain.align=false", f"{key}.pretrain.t_max=12.0",
        f"{key}.t_max=4.0", f"{key}.spacing=linear", f"{key}.n_log={81 if small else 201}",
        f"{key}.lr_max={2.5e-3 if small else 1e-3:g}", f"{key}.eta=1e9",
        f"{key}.theory=exact", f"{key}.threshold=0.01",
    ]


def _finetune(ax_time, ax_kernel, table: pd.DataFrame) -> dict[str, float]:
    """Re-factorise a pretrained W2W1 at λ_FT and fine-tune on a rotated task: speed and NTK movement, read
    from the finetune suite's ``table``."""
    table = table.sort_values("lam")
    lams = table["lam"].to_numpy(float)
    speed = [table[c].to_numpy(float) for c in ("time_to_threshold", "theory_time_to_threshold")]
    kernel = [table[c].to_numpy(float) for c in ("kernel_distance_final", "theory_kernel_distance_final")]
    plots.sim_theory(ax_time, lams, *speed, color="C4", marker="o", label="time to 1% of the initial loss")
    plots.sim_theory(ax_kernel, lams, *kernel, color="C5", marker="o", label="kernel distance at t = 4")
    lam_axis(ax_time, lams, "λ_FT", ylabel="t to reach 1% of the initial loss",
             title="(e) fine-tuning a re-factorised pretrained W2W1\non a rotated task: speed")
    lam_axis(ax_kernel, lams, "λ_FT", yscale="log", ylabel="kernel distance at t = 4",
             title="(f) fine-tuning: NTK movement")
    for ax in (ax_time, ax_kernel):
        plots.legend_sim_theory(ax, loc="lower center", fontsize=6)
    return {
        "fine-tuning: time to 1%": max_rel_error(*speed),
        "fine-tuning: kernel distance": max_rel_error(*kernel),
    }


@figure(
    "Fig. 6: a λ = 2 net forgets each task as the theory's restarts predict, reversal stalls at λ = 0 "
    "but succeeds at λ = 2, a new feature spreads further through the hierarchy as λ grows and "
    "hardly at all at λ = −8, and larger "
    "|λ_FT| fine-tunes faster with less NTK movement",
    title="Fig. 6 — applications: continual learning, reversal, transfer and fine-tuning",
)
def fig_6(out_dir: Path, small: bool) -> tuple[plt.Figure, dict[str, float]]:
    """Applications: continual learning, reversal, transfer and fine-tuning, each against its theory."""
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    errors = _continual(axes[0, 0], axes[0, 1], out_dir, small)
    errors |= _reversal(axes[0, 2], out_dir, small)
    errors |= _transfer(axes[1, 0], suite_table(out_dir, "transfer", transfer_overrides(small)))
    errors |= _finetune(axes[1, 1], axes[1, 2], suite_table(out_dir, "finetune", finetune_overrides(small)))
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    return fig, errors
