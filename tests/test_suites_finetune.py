"""The fine-tuning suite, tiny: larger |λ_FT| fine-tunes faster and lazier, as the theory predicts."""

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from lazyrich import metrics
from lazyrich.config.compose import conf_dir
from lazyrich.results.io import load_matrices
from lazyrich.suites import run_suites

TINY = [
    "suite.finetune.lams=[0,4]",
    "suite.finetune.seeds=[0]",
    "suite.finetune.task.n_in=3",
    "suite.finetune.task.n_out=3",
    "suite.finetune.pretrain.t_max=12",
    "suite.finetune.t_max=6",
    "suite.finetune.n_log=61",
    "suite.finetune.eta=0.1",
]


def run(tmp_path, name, overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("bench", overrides=[f"suite={name}", "logger=none", "progress=false", *overrides])
    return run_suites(cfg, tmp_path)[name]


def test_finetune_is_faster_and_lazier_at_large_lambda_ft(tmp_path):
    table = run(tmp_path, "finetune", TINY).set_index("lam")
    assert {
        "time_to_threshold",
        "kernel_distance_final",
        "rep_change_in",
        "rep_change_out",
        "seed",
        "theory_time_to_threshold",
    } <= set(table.columns)
    assert (table["status"] == "ok").all()
    # Both units fine-tune from the same pretrained product (same seeds, deterministic pretraining).
    products = [load_matrices(tmp_path / "runs" / u)["pretrained_product"] for u in table["unit"]]
    np.testing.assert_array_equal(products[0], products[1])
    assert (table["pretrain_loss"] <= 1e-6 * table["ft_loss0"].max()).all()  # pretraining converged
    assert table.loc[4.0, "time_to_threshold"] < 0.8 * table.loc[0.0, "time_to_threshold"]
    assert table.loc[4.0, "kernel_distance_final"] < 0.5 * table.loc[0.0, "kernel_distance_final"]
    # λ_FT > 0 makes W2W2ᵀ the large, task-agnostic factor: it moves less (relative) than at λ_FT = 0.
    assert table.loc[4.0, "rep_change_out"] < table.loc[0.0, "rep_change_out"]
    np.testing.assert_allclose(table["rep_change_in"], table["theory_rep_change_in"], rtol=0.02)
    # 10%: GD at lr·(fastest rate) = 0.1 runs ahead of the flow by O(lr), and crossings are interpolated on a
    # grid of step 0.1 through an exponential decay.
    np.testing.assert_allclose(table["time_to_threshold"], table["theory_time_to_threshold"], rtol=0.1)


def test_relative_change_is_the_representation_change_used():
    g0 = torch.eye(2, dtype=torch.float64)
    assert float(metrics.relative_change(g0, 2 * g0)) == 1.0
