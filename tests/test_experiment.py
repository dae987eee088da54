"""lazyrich.experiment and lazyrich.results: one config end to end, sequences, the run folder, load()."""

import json
import math

import numpy as np
import pytest
from conftest import batch_of

from lazyrich import results, store
from lazyrich.experiment import run_experiment
from lazyrich.results import load_matrices

BASE = {
    "task": {"name": "hierarchy"},
    "init": {"kind": "balanced", "lam": [-2.0, 0.0, 2.0], "scale": 0.1},
    "model": {"depth": 2},
    "trainer": {"lr": 0.01, "t_max": 3.0, "n_log": 16, "n_matrix": 4, "progress": False},
    "theory": {"name": "exact"},
    "seed": [0, 1],
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return run_experiment(BASE, run_dir), run_dir


@pytest.mark.slow
def test_the_batch_is_the_product_of_the_batch_axes(finished):
    result, _ = finished
    assert len(result.meta) == 6
    assert sorted(result.meta["lam"].unique()) == [-2.0, 0.0, 2.0]
    # λ̂ measured on the built weights equals the requested λ: the init really is balanced.
    # To rounding of W2ᵀW2 − W1W1ᵀ, whose terms are of size ~|λ| + scale² (λ up to 2 here).
    lam = result.meta["lam"].to_numpy()
    np.testing.assert_allclose(result.meta["lam_hat"], lam, rtol=0, atol=1e-12 * (1 + abs(lam).max()))


def test_a_network_does_not_depend_on_its_batch_mates():
    import torch

    full, _ = batch_of(BASE, 8, 8, None, torch.device("cpu"))
    single, _ = batch_of({**BASE, "init": {**BASE["init"], "lam": 2.0}, "seed": 1}, 8, 8, None,
                            torch.device("cpu"))
    torch.testing.assert_close(full[0][5], single[0][0], atol=0, rtol=0)  # (lam=2, seed=1) is row 5


def test_theory_tracks_the_simulation(finished):
    result, _ = finished
    # lr 0.01 up to t = 3: GD's O(η) time-discretisation error keeps the loss within ~1% of the flow.
    ok = result.summary[~result.summary.get("theory_saddle", False)]
    assert (ok["theory_max_rel_err"] < 0.02).all(), ok


def result_nets(run_dir, seed: int) -> list[int]:
    summary = results.load_summary(run_dir)
    return sorted(summary.loc[summary["seed"] == seed, "net"].tolist())


def test_run_folder_contents(finished):
    _, run_dir = finished
    frame = results.load(run_dir)
    assert len(frame) == 6 * 16
    records = json.loads((run_dir / "summary.json").read_text())
    assert len(records) == 6
    for key in ("loss_final", "kernel_distance_final", "time_to_1pct", "status"):
        assert key in records[0]
    npz = load_matrices(run_dir)  # the first seed of each λ (trainer.matrix_seeds = 1): nets 0, 2, 4
    assert npz["net"].tolist() == result_nets(run_dir, seed=0)
    assert npz["sim_product"].shape == (3, 4, 8, 8)
    assert npz["theory_w1tw1"].shape == (3, 4, 8, 8)
    assert (run_dir / store.DONE).exists()


def test_load_a_sweep_folder_adds_the_run_column(finished, tmp_path):
    result, run_dir = finished
    for name in ("a", "b"):
        store.write_run(tmp_path / name, result.frame, result.summary)
    frame = results.load(tmp_path)
    assert sorted(frame["run"].unique()) == ["a", "b"]
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        results.load(tmp_path / "a" / "missing")


@pytest.mark.slow
def test_a_task_sequence_trains_phase_after_phase(tmp_path):
    cfg = {**BASE, "task": {"name": "reversal", "t_budget": 4.0}, "init": {**BASE["init"], "lam": [0.0, 3.0]},
           "seed": 0}
    result = run_experiment(cfg, None)
    frame = result.frame
    assert set(frame["phase"]) == {0, 1}
    assert frame.groupby("net")["t"].max().round(6).tolist() == [8.0, 8.0]  # t continues across phases
    r = result.loss_matrix
    assert r.shape == (2, 2, 2)
    # Just after learning the reversed task the loss on the original is ~2‖Σyx‖²: the task reversed.
    assert r[1, 0, 1] > 10 * r[1, 1, 1]


def test_summary_threshold_time_is_the_interpolated_first_crossing():
    frame = results.to_frame.__globals__["pd"].DataFrame(
        {"net": [0] * 4, "t": [0.0, 1.0, 2.0, 3.0], "sim/loss": [1.0, 0.5, 0.009, 0.001],
         "sim/kernel_distance": [0.0, 0.1, 0.2, 0.3], "status": ["ok"] * 4})
    summary = results.summarise(frame)
    crossing = 1.0 + (0.5 - 0.01) / (0.5 - 0.009)  # between t = 1 and t = 2, where 1% of the start is reached
    assert summary.loc[0, "time_to_1pct"] == pytest.approx(crossing, rel=1e-14)  # one formula, a few flops
    assert summary.loc[0, "kernel_distance_final"] == 0.3
    frame["sim/loss"] = 1.0
    assert math.isnan(results.summarise(frame).loc[0, "time_to_1pct"])


def test_unwhitened_inputs_skip_the_exact_theory_with_the_reason():
    cfg = {**BASE, "task": {"name": "student_teacher", "whiten_inputs": False, "n_samples": 32},
           "init": {**BASE["init"], "lam": 1.0}, "seed": 0}
    result = run_experiment(cfg, None)
    assert any("not whitened" in note and "task.whiten" in note for note in result.theory_notes)
    assert "theory/loss" not in result.frame
    whitened = run_experiment({**cfg, "task": {**cfg["task"], "whiten": True}}, None)
    assert "theory/loss" in whitened.frame


def test_gaussian_init_rejects_a_lambda_sweep():
    with pytest.raises(ValueError, match="sweep init.scale instead"):
        run_experiment({**BASE, "init": {"kind": "gaussian", "lam": [0.0, 1.0], "scale": 1.0}}, None)
