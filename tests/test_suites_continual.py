"""The continual suite, tiny: the measured loss matrix is the analytic one at convergence, for every λ."""

import numpy as np
import torch
from conftest import rel_err
from hydra import compose, initialize_config_dir

from lazyrich.config.compose import conf_dir
from lazyrich.results import load_matrices
from lazyrich.suites import run_suites
from lazyrich.suites.continual import _saddle_text, analytic_loss_matrix
from lazyrich.tasks import make

TINY = [
    "suite.continual.lams=[-2,2]",
    "suite.continual.seeds=[0,1]",
    "+suite.continual.task.n_in=3",
    "+suite.continual.task.n_out=3",
    "suite.continual.t_phase=10",
    "suite.continual.n_log=41",
    "suite.continual.eta=0.1",
]


def run(tmp_path, name, overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("bench", overrides=[f"suite={name}", "logger=none", "progress=false", *overrides])
    return run_suites(cfg, tmp_path)[name]


def test_analytic_loss_matrix_is_half_the_squared_distance_of_the_maps():
    tasks = make("continual_stream", K=2, n_in=3, n_out=3, seed=1).tasks
    r_hat = analytic_loss_matrix(tasks)
    gap = 0.5 * float(
        torch.sum((tasks[1].sigma_yx - tasks[0].sigma_yx) ** 2)
    )  # whitened, realisable: L_min = 0
    assert rel_err(r_hat, [[0.0, gap], [gap, 0.0]]) <= 1e-12  # a few float64 flops on O(gap) traces


def test_continual_measured_forgetting_matches_the_analytic_prediction(tmp_path):
    table = run(tmp_path, "continual", TINY)
    assert {
        "lam",
        "seed",
        "forgetting",
        "analytic_forgetting",
        "bwt",
        "r_err_analytic",
        "R_0_2",
        "status",
    } <= set(table.columns)
    assert len(table) == 4 and (table["status"] == "ok").all() and table["converged"].all()
    # Trained to convergence (t = 10 per phase at rate ≥ 2·s̃_min): R = R̂ to 1e-6 of the largest loss (≈ 10);
    # r_err_analytic is an absolute gap (suites/continual.py), so it is bounded against that scale.
    r_max = table[[c for c in table if c.startswith("R_")]].abs().to_numpy().max()
    assert (table["r_err_analytic"] <= 1e-6 * r_max).all()
    assert rel_err(table["forgetting"], table["analytic_forgetting"]) <= 1e-6
    assert rel_err(table["bwt"], -table["forgetting"]) <= 1e-12  # the same sums, in another order
    # The same forgetting for λ = −2 and λ = 2 (docs/theory.md §10: λ changes the path, not the end point).
    by_lam = table.groupby("lam")["forgetting"].mean()
    assert abs(by_lam[-2.0] - by_lam[2.0]) < 1e-6 * abs(by_lam[2.0])
    summary = (tmp_path / "summary.md").read_text()
    assert "the same for every λ. As predicted." in summary and "NOT as predicted" not in summary
    assert (tmp_path / "sweep.png").stat().st_size > 0
    _check_phase_matrices(tmp_path, table, k=3, t_phase=10.0)


def _check_phase_matrices(folder, table, k: int, t_phase: float) -> None:
    """What Fig. 6 (a, b) reads from each unit: W2W1 and every task's loss per phase; at each phase's end they
    are the loss matrix R the experiment computed from the final weights (and the theory's R)."""
    for unit, rows in table.groupby("unit"):
        m = load_matrices(folder / "runs" / unit)
        for phase in range(k):
            t = m[f"phase{phase}_t"]
            assert t.shape == (len(rows), 5) and np.allclose(t[:, 0], 0.0) and np.allclose(t[:, -1], t_phase, rtol=1e-3)
            assert m[f"phase{phase}_sim_product"].shape == (len(rows), 5, 3, 3)
            for source, r in (("sim", m["loss_matrix"]), ("theory", m["theory_loss_matrix"])):
                # converged losses are ≈ 0 from cancelling O(½ tr Σyy ≈ 10) terms: scaled by the matrix's largest
                assert rel_err(m[f"phase{phase}_{source}_task_losses"][:, -1], r[:, :, phase],
                               scale=np.abs(r).max()) <= 1e-12
        # the measured R of the table is the stored one, row by row (same order as the batch)
        assert rel_err(rows["R_0_2"], m["loss_matrix"][:, 0, 2]) <= 1e-12  # the same numbers, stored twice


def test_saddle_phases_text_names_each_saddle_phase_or_none():
    saddles = np.array([[True, False, True], [False, False, False], [False, True, False]])
    assert list(_saddle_text(saddles)) == ["0 2", "none", "1"]
    assert list(_saddle_text(np.zeros((0, 3), dtype=bool))) == []
