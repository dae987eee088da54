"""One result shape (lazyrich.results.curves) and the batched measures over it (lazyrich.results.measures,
spec.measure_columns).

References are independent: hand-computed crossings and plateaus on piecewise-linear curves, and a per-network
NumPy loop for the batched measures on a real run.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import batch_of, rel_err

from lazyrich import results
from lazyrich.experiment import run_experiment
from lazyrich.results import measures
from lazyrich.results.curves import SIM, Curves, predicted, simulated
from lazyrich.suites.spec import Measure, measure_columns


def _curves(t, source=SIM, **curves):
    t = torch.as_tensor(t, dtype=torch.float64)
    values = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in curves.items()}
    return Curves(source, t.expand_as(next(iter(values.values()))), values)


def test_time_measures_interpolate_between_log_points_as_computed_by_hand():
    # Loss 4 → 2 → 1 → 0.5 at t = 0, 1, 2, 3: 1/4 of the start (=1) is reached at t = 2 exactly; 1/8 (=0.5) at 3;
    # the level 1.5 lies halfway between t = 1 (2) and t = 2 (1).
    c = _curves([0.0, 1.0, 2.0, 3.0], loss=[[4.0, 2.0, 1.0, 0.5], [4.0, 4.0, 4.0, 4.0]])
    assert measures.time_to_fraction(c, 0.25).tolist()[0] == 2.0
    assert math.isnan(measures.time_to_fraction(c, 0.25).tolist()[1])  # never falls
    assert measures.time_to_level(c, 1.5).tolist()[0] == pytest.approx(1.5)
    assert measures.reaches(c, 0.125).tolist() == [True, False]
    assert measures.initial(c).tolist() == [4.0, 4.0] and measures.final(c).tolist() == [0.5, 4.0]


def test_rise_half_time_and_plateau_as_computed_by_hand():
    # A kernel distance 0, 0.2, 0.6, 0.8 reaches half its final value (0.4) halfway between t = 1 and t = 2.
    c = _curves([0.0, 1.0, 2.0, 3.0], kernel_distance=[[0.0, 0.2, 0.6, 0.8], [0.0, 0.0, 0.0, 0.0]],
                loss=[[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    half = measures.rise_half_time(c).tolist()
    assert half[0] == pytest.approx(1.5) and math.isnan(half[1])  # a curve that never moves has no half time
    # Within 1% of level 1: net 0 for [0, 2] plus half of [2, 3] (trapezoid on the indicator) = 2.5; net 1: 0.5.
    assert measures.plateau_time(c, 1.0, 0.01).tolist() == [2.5, 0.5]


def test_matrix_change_is_the_relative_frobenius_change_between_first_and_last():
    m0, m1 = torch.eye(2), torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    c = Curves(SIM, torch.zeros(1, 2), {}, {"w1tw1": torch.stack([m0, m1])[None].double()})
    assert measures.matrix_change(c, "w1tw1").item() == pytest.approx(2.0 / math.sqrt(2.0))


def test_a_missing_curve_is_one_line_naming_what_the_source_has():
    c = _curves([0.0, 1.0], loss=[[1.0, 0.5]])
    with pytest.raises(KeyError, match="sim has no curve or matrix 'kernel_distance'; it has: loss"):
        measures.final(c, "kernel_distance")


@pytest.fixture(scope="module")
def run():
    cfg = {"task": {"name": "random_regression", "n_in": 3, "n_out": 2, "seed": 1},
           "init": {"lam": [-1.0, 0.0, 1.0], "scale": 0.2},
           "trainer": {"lr": 0.05, "t_max": 6.0, "n_log": 25, "n_matrix": 4, "progress": False},
           "theory": {"name": "exact"}, "seed": [0, 1], "logger": {"wandb": {"enabled": False}}}
    return run_experiment(cfg)


def test_simulation_and_theory_have_one_shape(run):
    (sim,), (theory,) = run.curves()
    assert sim.source == SIM and theory.source == "exact"
    assert {"loss", "kernel_distance", "ntk_rel_change", "sval_1", "sval_2"} <= set(sim.curves) & set(theory.curves)
    assert set(theory.matrices) == {"product", "w1tw1", "wwt_out"} <= set(sim.matrices)
    for name in ("loss", "kernel_distance"):
        assert sim[name].shape == theory[name].shape == (6, 25)
    for name in theory.matrices:
        assert sim[name].shape == theory[name].shape  # theory matrices at the simulation's log points
    assert torch.equal(sim.matrix_t, theory.matrix_t)
    assert len(sim.meta) == 6 and sim.meta["lam"].tolist() == run.meta["lam"].tolist()
    # The prediction's matrices are its own values at those points, not a copy of the simulation's.
    pred = run.predictions[0]
    assert torch.equal(theory["product"], pred.product[:, sim.matrix_index])


def test_select_keeps_the_chosen_networks_in_order(run):
    (sim,), _ = run.curves()
    part = sim.select([4, 1])
    assert torch.equal(part["loss"], sim["loss"][[4, 1]])
    assert part.meta["lam"].tolist() == [sim.meta["lam"][4], sim.meta["lam"][1]]


def test_one_declared_measure_fills_the_simulation_and_theory_columns_like_a_per_network_loop(run):
    declared = (Measure("time_to_1pct", "", "theory_time_to_1pct",
                        of=lambda c, p: measures.time_to_fraction(c, p["f"])),
                Measure("kd", "", "theory_kd", of=lambda c, p: measures.final(c, "kernel_distance")),
                Measure("no_theory", "", of=lambda c, p: measures.initial(c)),
                Measure("filled_by_hand", "", "theory_filled_by_hand"))
    sim, theory = run.curves()
    cols = measure_columns(declared, sim, theory, {"f": 0.01})
    assert set(cols) == {"time_to_1pct", "theory_time_to_1pct", "kd", "theory_kd", "no_theory"}
    frame = run.frame
    for net in range(6):  # reference: each network's rows of the long table, crossing found in NumPy
        part = frame[frame["net"] == net].sort_values("t")
        for prefix, column in (("", "sim/loss"), ("theory_", "theory/loss")):
            t, loss = part["t"].to_numpy(), part[column].to_numpy()
            k = int(np.argmax(loss <= 0.01 * loss[0]))
            want = t[k - 1] + (loss[k - 1] - 0.01 * loss[0]) / (loss[k - 1] - loss[k]) * (t[k] - t[k - 1])
            # One interpolation formula in torch and in NumPy: ~10 flops on O(1) values, 1e-12 relative.
            assert cols[prefix + "time_to_1pct"][net] == pytest.approx(want, rel=1e-12)
            kd = part[column.replace("loss", "kernel_distance")].to_numpy()[-1]
            assert cols[prefix + "kd"][net] == pytest.approx(kd, rel=1e-12, abs=1e-300)  # the same stored value
    no_theory = measure_columns(declared, sim, [None], {"f": 0.01})
    assert set(no_theory) == {"time_to_1pct", "kd", "no_theory"}


def test_chunked_results_refuse_curves_in_one_line():
    cfg = {"task": {"name": "random_regression", "n_in": 2, "n_out": 2}, "init": {"lam": 0.0},
           "trainer": {"t_max": 1.0, "n_log": 3, "progress": False}}
    result = run_experiment(cfg)
    result.trajectories = []  # as a run in several chunks keeps them
    with pytest.raises(ValueError, match="several chunks"):
        result.curves()


def test_meta_must_have_one_row_per_network(run):
    with pytest.raises(ValueError, match="meta has 2 rows for 6 networks"):
        simulated(run.trajectories[0], pd.DataFrame({"lam": [0.0, 1.0]}))
    assert predicted(run.predictions[0]).matrix_index is None  # every point kept by default


def test_a_run_folder_reads_back_as_the_curves_it_was_computed_from(tmp_path):
    cfg = {"task": {"name": "reversal", "base": "random_regression", "base_params": {"n_in": 3, "n_out": 2},
                    "t_budget": 3.0},
           "init": {"lam": [0.0, 1.5], "scale": 0.3}, "trainer": {"lr": 0.05, "n_log": 11, "progress": False},
           "theory": {"name": "exact"}, "seed": 0}
    result = run_experiment(cfg, tmp_path / "run", plot=False)
    sims, theories = result.curves()
    with pytest.raises(ValueError, match="pass phase=<index>"):
        results.load_curves(tmp_path / "run")
    for phase in (0, 1):
        sim, theory = results.load_curves(tmp_path / "run", phase=phase)
        # From the phase's start, as in memory: one subtraction's rounding, of t ≤ 3.
        assert rel_err(sim.t, sims[phase].t, batch_dims=1) <= 1e-12
        for name in ("loss", "kernel_distance", "sval_1"):
            assert torch.equal(sim[name], sims[phase][name].cpu().double())
            assert torch.equal(theory[name], theories[phase][name].cpu())
        assert sim.meta["lam"].tolist() == [0.0, 1.5] and set(sim.meta["status"]) == {"ok"}
    one, _ = results.load_curves(tmp_path / "run", phase=1, filters=[("lam", "==", 1.5)])
    assert one.batch == 1 and torch.equal(one["loss"][0], sims[1]["loss"][1].cpu().double())


def test_a_batch_started_from_given_weights_is_the_batch_its_config_would_build():
    """run_experiment(initial=…) trains and predicts given weights exactly as the config route does."""
    from lazyrich.device import resolve_device
    from lazyrich.experiment.batch import build_task

    cfg = {"task": {"name": "random_regression", "n_in": 3, "n_out": 2, "seed": 1},
           "init": {"lam": [-1.0, 1.0], "scale": 0.2}, "seed": [0, 1],
           "trainer": {"lr": 0.05, "t_max": 3.0, "n_log": 11, "progress": False}, "theory": {"name": "exact"}}
    task = build_task(cfg["task"])
    weights, meta = batch_of(cfg, task.n_in, task.n_out, task.sigma_yx, resolve_device("auto"))
    built = run_experiment(cfg)
    given = run_experiment({**cfg, "init": {}, "seed": 99}, plot=False,
                           initial=(weights, meta[["lam", "lr", "seed"]]))
    (s1,), (t1,) = built.curves()
    (s2,), (t2,) = given.curves()
    assert torch.equal(s1["loss"], s2["loss"]) and torch.equal(t1["loss"], t2["loss"])
    # λ̂ = ±1 of the same weights: rounding at most, relative.
    assert given.meta["lam_hat"].tolist() == pytest.approx(built.meta["lam_hat"].tolist(), rel=1e-12)
    with pytest.raises(ValueError, match="needs an `lr` column"):
        run_experiment(cfg, initial=(weights, meta[["lam"]]))
    with pytest.raises(ValueError, match="hold 4 networks but their meta has 2 rows"):
        run_experiment(cfg, initial=(weights, meta.iloc[:2]))
    with pytest.raises(ValueError, match="runs in memory only"):
        run_experiment(cfg, "some_folder", initial=(weights, meta))


def test_task_phase_picks_one_phase_of_a_sequence_and_refuses_a_single_task():
    from lazyrich.experiment.batch import build_task

    seq = {"name": "transfer_rotated", "base_params": {"n_in": 3, "n_out": 3}, "angle": 0.4}
    target = build_task({**seq, "phase": 1})
    assert torch.equal(target.sigma_yx, build_task(seq).tasks[1].sigma_yx)
    with pytest.raises(ValueError, match="has phases 0 … 1; pick one of those"):
        build_task({**seq, "phase": 2})
    with pytest.raises(ValueError, match="is a single task; drop task.phase"):
        build_task({"name": "random_regression", "phase": 0})
