"""lazyrich.experiment split by job: batch (config → weights), predict (theory), run_sink (files, W&B), loop."""

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from lazyrich import batch, experiment, predict, results, run_sink
from lazyrich.config_schema import fill_run
from lazyrich.storage import load_matrices

CFG = {"task": {"name": "hierarchy"}, "init": {"kind": "balanced", "lam": [-1.0, 1.0], "scale": 0.1},
       "trainer": {"lr": 0.02, "t_max": 1.0, "n_log": 6, "n_matrix": 3, "progress": False},
       "theory": {"name": "exact"}, "seed": [0, 1]}


def test_the_public_names_stay_importable_from_the_experiment():
    homes = {"BATCH_KEYS": batch, "META_COLUMNS": batch, "as_list": batch, "build_batch": batch,
             "build_task": batch, "choose_theory": predict, "predict_theory": predict}
    for name in experiment.__all__:
        home = homes.get(name, experiment)
        assert getattr(experiment, name) is getattr(home, name), name  # re-exported, not a copy
    assert {"run_experiment", "ExperimentResult", "plan_work"} <= set(experiment.__all__)
    assert set(homes) <= set(experiment.__all__)


def _imported_modules(module) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_split_modules_do_not_import_the_experiment():
    for module in (batch, predict, run_sink):
        assert "lazyrich.experiment" not in _imported_modules(module), module.__name__
    assert "lazyrich.predict" not in _imported_modules(run_sink)  # the sink writes; it does not predict
    # the scan sees both spellings of an import (so the checks above cannot pass vacuously)
    assert {"lazyrich.batch", "lazyrich.run_sink.RunSink"} <= _imported_modules(experiment)
    assert {"lazyrich.results", "lazyrich.identity"} <= _imported_modules(run_sink)  # from lazyrich import …


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


def test_the_sink_alone_writes_what_the_experiment_holds_in_memory(tmp_path):
    cfg = fill_run(CFG)
    res = experiment.run_experiment(cfg, None, log_wandb=False, plot=False)
    sink = run_sink.RunSink(tmp_path, res.meta, matrix_seeds=1)
    arrays = run_sink.matrices(res.trajectories, res.predictions, res.loss_matrix)
    sink.append(0, len(res.meta), res.frame, arrays)
    figures = sink.finish(cfg, res.frame, res.summary, res.meta, res.theory_notes, log_wandb=False, plot=False,
                          started=0.0)
    assert figures == [] and (tmp_path / results.DONE).is_file()
    back = results.load(tmp_path).drop(columns="run")
    pd.testing.assert_frame_equal(back[res.frame.columns], res.frame, check_dtype=False)
    stored = load_matrices(tmp_path)
    kept = np.flatnonzero(res.meta["seed"].to_numpy() == 0)  # matrix_seeds=1: the first seed of each λ
    assert stored["net"].tolist() == kept.tolist()
    np.testing.assert_array_equal(stored["theory_product"], arrays["theory_product"][kept])
    assert (tmp_path / "theory.txt").read_text().splitlines() == res.theory_notes
