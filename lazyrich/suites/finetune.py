"""Fine-tuning (docs/theory.md §10): pretrain, re-factorise the pretrained product at λ_FT, fine-tune on a new task.

One unit per λ_FT, batched over seeds. Each unit pretrains the source (a ``random_regression`` task) from
the same seeds — deterministic, so every unit starts from the same pretrained products, and units stay
independent for resuming — then factors each product W2W1 as λ_FT-balanced weights
(:func:`lazyrich.init.refactorise`, same function, new balance) and trains on the target, the source's
``rotated_pair`` partner. The re-factorised weights are exactly balanced, so the exact theory applies.

Measured against λ_FT: the time until the excess loss over the target's floor (at the network's rank) is
``threshold`` × its value at the start of fine-tuning, the kernel distance at
the end (NTK relative to the start of fine-tuning), and how far the representations moved,
‖ΔW1ᵀW1‖/‖W1ᵀW1‖ and ‖ΔW2W2ᵀ‖/‖W2W2ᵀ‖ (``metrics.relative_change``), each beside the theory's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import metrics
from lazyrich.config.suites import FinetuneSuite
from lazyrich.experiment import run_experiment
from lazyrich.init import refactorise
from lazyrich.results import measures
from lazyrich.suites import charts
from lazyrich.suites.common import Suite, flow_step, loss_floor, suite_run
from lazyrich.suites.runner import Unit, UnitOutput
from lazyrich.suites.spec import Axis, Measure, Monotone, measure_columns

__all__ = ["SUITE"]

PRETRAIN_N_LOG = 21
"""Log points of the pretraining: only the pretrained product, at its end, is read."""


def _tasks(params: FinetuneSuite) -> dict[str, Any]:
    """The task-sequence config: source = random_regression(params.task), target = its rotated partner."""
    return {"name": "transfer_rotated", "base": "random_regression", "base_params": params.task,
            "angle": float(params.relation.angle), "side": params.relation.side}


def _units(params: FinetuneSuite, device: str) -> list[Unit]:
    tasks, pre = _tasks(params), params.pretrain
    pretrain = suite_run(params, {"name": "random_regression", **params.task}, lam=pre.lam,
                         lr=flow_step(params, pre.lam, tasks), t_max=pre.t_max, device=device, scale=pre.init_scale,
                         align=pre.align, n_log=PRETRAIN_N_LOG, theory="none")
    values = {"suite": "finetune", "threshold": params.threshold}
    # The fine-tuning starts from the re-factorised products (run_experiment's initial=): its init is not drawn,
    # its init.lam records λ_FT.
    return [Unit({"lam": lam}, values, {
        "pretrain": pretrain,
        "fine_tune": suite_run(params, {**tasks, "phase": 1}, lam=lam, lr=flow_step(params, lam, tasks),
                               t_max=params.t_max, device=device, spacing=params.spacing),
    }) for lam in params.lams]


def _refactorised(pre, lam: float) -> tuple[torch.Tensor, list[torch.Tensor], list[int]]:
    """(the pretrained products (B, No, Ni), their λ-balanced factors [W1, W2], the seeds): each product
    re-factorised at ``lam`` with its network's seed."""
    product = metrics.product(pre.trajectories[0].final_weights).cpu()
    seeds = pre.meta["seed"].astype(int).tolist()
    pairs = [refactorise(p, lam, generator=torch.Generator().manual_seed(s))
             for p, s in zip(product, seeds, strict=True)]
    return product, [torch.stack([w1 for w1, _ in pairs]), torch.stack([w2 for _, w2 in pairs])], seeds


def _compute(unit: Unit, run_dir: Path) -> UnitOutput:
    pre = run_experiment(unit.runs["pretrain"])
    fine_tune = unit.runs["fine_tune"]
    lam = fine_tune.init.lam  # λ_FT: the balance the fine-tuning starts from, given by the re-factorisation
    product, weights, seeds = _refactorised(pre, lam)
    meta = pd.DataFrame({"lam": lam, "scale": np.nan, "lr": fine_tune.trainer.lr, "seed": seeds,
                         "pretrain_loss": pre.summary["loss_final"].to_numpy()})
    result = run_experiment(fine_tune, initial=(weights, meta))
    (simulation,), (theory,) = result.curves()
    params = {**unit.values, "floor": loss_floor(result.task, weights)}
    table = pd.DataFrame({
        "lam": lam,
        "seed": seeds,
        "lr": fine_tune.trainer.lr,
        "pretrain_loss": meta["pretrain_loss"].to_numpy(),
        "loss_floor": params["floor"],
        **measure_columns(SUITE.measures, [simulation], [theory], params),
    })
    if theory is not None:
        table.insert(table.columns.get_loc("time_to_threshold"), "theory", theory.source)
    return UnitOutput(result.frame, table, {"pretrained_product": product.numpy()}, result.theory_notes)


def _gap_note(ok: pd.DataFrame) -> list[str]:
    if not len(ok) or "theory_time_to_threshold" not in ok:
        return []
    gap = ((ok["time_to_threshold"] - ok["theory_time_to_threshold"]).abs()
           / ok["theory_time_to_threshold"].abs()).max()
    return [f"- Max relative gap between measured and predicted time to threshold: {gap:.2g}."]


_SWEPT = ["time_to_threshold", "kernel_distance_final", "rep_change_in", "rep_change_out"]

SUITE = Suite(
    "finetune",
    "re-factorise a pretrained product at λ_FT and fine-tune: speed, laziness, representation change",
    _units,
    _compute,
    axes=(Axis("lam", "λ_FT, the balance of the re-factorised pretrained product"),
          Axis("seed", "seed of pretraining and re-factorisation", (0, 1))),
    phases=("pretrain", "re-factorise", "fine-tune"),
    measures=(
        Measure("ft_loss0", "loss at the start of fine-tuning", headline=False, of=lambda c, p: measures.initial(c)),
        Measure("loss_final", "loss at the end of fine-tuning", of=lambda c, p: measures.final(c)),
        Measure("loss_floor", "the target's loss floor at the network's rank (metrics.loss_floor)", headline=False),
        Measure("time_to_threshold", "t until the excess loss over `loss_floor` is `threshold` × its value at the "
                "start of fine-tuning", "theory_time_to_threshold",
                of=lambda c, p: measures.time_to_learn(c, p["threshold"], p["floor"])),
        Measure("kernel_distance_final", "NTK movement over fine-tuning", "theory_kernel_distance_final",
                of=lambda c, p: measures.final(c, "kernel_distance")),
        Measure("rep_change_in", "‖ΔW1ᵀW1‖/‖W1ᵀW1‖ (metrics.relative_change)", "theory_rep_change_in",
                of=lambda c, p: measures.matrix_change(c, "w1tw1")),
        Measure("rep_change_out", "‖ΔW2W2ᵀ‖/‖W2W2ᵀ‖", "theory_rep_change_out",
                of=lambda c, p: measures.matrix_change(c, "wwt_out")),
    ),
    # λ > 0 makes the output layer the large one (W2ᵀW2 − W1W1ᵀ = λI), λ < 0 the input layer.
    expectations=(
        Monotone("time_to_threshold", "falls", by_abs=True),
        Monotone("kernel_distance_final", "falls", by_abs=True),
        Monotone("rep_change_out", "falls", by_abs=True, signs=(1,)),
        Monotone("rep_change_in", "falls", by_abs=True, signs=(-1,)),
    ),
    protocol="Pretrain on a source task, re-factorise each pretrained W2W1 at λ_FT (init.refactorise; the column "
    "`lam` is λ_FT), fine-tune on the rotated target.",
    prediction="larger |λ_FT| gives faster, lazier fine-tuning with less change in the larger layer's "
    "representation (the output layer's for λ_FT > 0, the input layer's for λ_FT < 0).",
    figures=(charts.curves("fine-tuning at λ_FT"),
             charts.sweep(_SWEPT, "fine-tuning against λ_FT", log_y=_SWEPT,
                          labels={"lam": "λ_FT"})),
    notes=(_gap_note,),
    key=("lam",),
)
