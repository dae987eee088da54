"""lazyrich.experiment split by job: batch (config → weights), predict (theory), run_sink (files, W&B), loop."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lazyrich import experiment, results, store
from lazyrich.config.run import resolve_run
from lazyrich.experiment import sink as run_sink
from lazyrich.results import load_matrices

CFG = {"task": {"name": "hierarchy"}, "init": {"kind": "balanced", "lam": [-1.0, 1.0], "scale": 0.1},
       "trainer": {"lr": 0.02, "t_max": 1.0, "n_log": 6, "n_matrix": 3, "progress": False},
       "theory": {"name": "exact"}, "seed": [0, 1]}


def test_matrices_names_each_phase_and_samples_the_theory_at_the_matrix_points():
    gen = torch.Generator().manual_seed(0)
    b, t, tm = 3, 7, 3
    index = torch.tensor([0, 3, 6])

    def phase(with_theory):
        times = torch.rand(b, t, generator=gen)
        traj = SimpleNamespace(t=times, matrix_index=index, scalars={}, status=["ok"] * b,
                               matrices={"product": torch.rand(b, tm, 2, 4, generator=gen)})
        curves = {name: torch.rand(b, t, generator=gen) for name in ("loss", "kernel_distance", "ntk_rel_change")}
        pred = SimpleNamespace(t=times, theory="exact", svals=torch.rand(b, t, 2, generator=gen), **curves,
                               product=torch.rand(b, t, 2, 4, generator=gen),
                               w1tw1=torch.rand(b, t, 4, 4, generator=gen),
                               wwt_out=torch.rand(b, t, 2, 2, generator=gen)) if with_theory else None
        return traj, pred

    (t0, p0), (t1, p1) = phase(True), phase(False)
    losses = np.arange(b * 4.0).reshape(b, 2, 2)
    two = run_sink.matrices([t0, t1], [p0, p1], losses)
    assert set(two) == {"phase0_t", "phase0_sim_product", "phase0_theory_product", "phase0_theory_w1tw1",
                        "phase0_theory_wwt_out", "phase1_t", "phase1_sim_product", "loss_matrix"}
    np.testing.assert_array_equal(two["phase0_t"], t0.t.numpy()[:, [0, 3, 6]])
    np.testing.assert_array_equal(two["phase0_theory_product"], p0.product.numpy()[:, [0, 3, 6]])
    np.testing.assert_array_equal(two["phase1_sim_product"], t1.matrices["product"].numpy())
    assert two["loss_matrix"] is losses
    one = run_sink.matrices([t0], [p0], None)
    assert set(one) == {"t", "sim_product", "theory_product", "theory_w1tw1", "theory_wwt_out"}


@pytest.mark.slow
def test_the_sink_alone_writes_what_the_experiment_holds_in_memory(tmp_path):
    cfg = resolve_run(CFG)
    res = experiment.run_experiment(cfg)
    sink = run_sink.RunSink(tmp_path, res.meta, cfg, plot=False)
    arrays = run_sink.matrices(res.trajectories, res.predictions, res.loss_matrix)
    sink.append(0, len(res.meta), res.frame, arrays)
    figures = sink.finish(res.frame, res.summary, res.theory_notes, started=0.0)
    assert figures == [] and (tmp_path / store.DONE).is_file()
    back = results.load(tmp_path).drop(columns="run")
    pd.testing.assert_frame_equal(back[res.frame.columns], res.frame, check_dtype=False)
    stored = load_matrices(tmp_path)
    kept = np.flatnonzero(res.meta["seed"].to_numpy() == 0)  # matrix_seeds=1: the first seed of each λ
    assert stored["net"].tolist() == kept.tolist()
    np.testing.assert_array_equal(stored["theory_product"], arrays["theory_product"][kept])
    assert (tmp_path / "theory.txt").read_text().splitlines() == res.theory_notes
