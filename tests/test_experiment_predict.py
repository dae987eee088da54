"""The experiment layer's side of issue 13: trainer dtype, derived agreement tolerance, GD theories with the
trainer's lr, and the near-singular fallback flagged in the summary."""

import logging

import numpy as np
import pytest
from conftest import batch_of

from lazyrich.device import torch_threads
from lazyrich.experiment import run_experiment


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets: one torch thread (as the CLI runs) keeps kernels from waiting on a busy second core."""
    with torch_threads(1):
        yield


BASE = {
    "task": {"name": "hierarchy"},
    "init": {"kind": "balanced", "lam": [-2.0, 0.0, 2.0], "scale": 0.1, "align": True},
    "model": {"depth": 2},
    "trainer": {"lr": 0.02, "t_max": 4.0, "n_log": 41, "n_matrix": 3, "progress": False},
    "theory": {"name": "exact"},
    "seed": 0,
}


def test_float32_run_warns_and_widens_the_tolerance(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="lazyrich.experiment"):
        f32 = run_experiment({**BASE, "trainer": {**BASE["trainer"], "dtype": "float32"}}, tmp_path,
                             plot=False)
    assert any("trainer.dtype=float32" in r.message for r in caplog.records)
    assert "trainer.dtype=float32" in (tmp_path / "theory.txt").read_text()
    f64 = run_experiment(BASE)
    # Same derived O(lr) part; the float32 floor 1000·u32 = 1.2e-4 on top of float64's 2.2e-13.
    extra = (f32.summary["theory_rtol"] - f64.summary["theory_rtol"]).to_numpy()
    assert np.allclose(extra, 1000 * (np.finfo(np.float32).eps - np.finfo(np.float64).eps), rtol=1e-3)
    assert f32.summary["theory_agrees"].all() and f64.summary["theory_agrees"].all()
    with pytest.raises(ValueError, match="trainer.dtype='int8'"):
        run_experiment({**BASE, "trainer": {**BASE["trainer"], "dtype": "int8"}})


def test_flow_tolerance_is_derived_and_the_gd_theory_needs_none(tmp_path):
    flow = run_experiment(BASE)
    gd = run_experiment({**BASE, "theory": {"name": "aligned_gd"}})
    # The flow misses GD by O(lr); the derived tolerance covers it without being loose (≤ 10× the gap) ...
    err, rtol = flow.summary["theory_max_rel_err"], flow.summary["theory_rtol"]
    assert (err <= rtol).all() and (rtol <= 10 * err).all(), flow.summary
    # ... while aligned_gd, handed the trainer's lr, is exact to rounding and judged at rounding.
    # (theory_max_rel_err is already relative, max |sim − theory| / max |theory|; rounding is ~1e-15 of it.)
    assert (gd.summary["theory_max_rel_err"] <= 1e-12).all() and gd.summary["theory_agrees"].all()
    assert (gd.summary["theory_rtol"] <= 1e-12).all()


def test_near_singular_fallback_is_flagged_in_the_summary(tmp_path):
    cfg = {**BASE, "task": {"name": "random_regression", "n_in": 4, "n_out": 4, "seed": 5},
           "init": {"kind": "balanced", "lam": [1e-9, 1.0], "scale": 0.3}, "seed": 1}
    result = run_experiment(cfg, tmp_path, plot=False)
    summary = result.summary.set_index("lam")
    # Seed 1's product has det(ŨᵀWṼ) < 0 (−3.3e-4): at λ = 1e-9, σ_min(B) ~ 1e-9, handed to the ode theory.
    assert summary.loc[1e-9, "theory_ode_fallback"] and not summary.loc[1.0, "theory_ode_fallback"]
    assert summary["theory_agrees"].all()
    assert "nearly singular" in (tmp_path / "theory.txt").read_text()


def test_init_perturb_option_seeds_every_weight():


    cfg = {"init": {"kind": "balanced", "lam": 0.0, "scale": 0.1, "perturb": 1e-6}, "seed": [0, 1]}
    plain, _ = batch_of({**cfg, "init": {**cfg["init"], "perturb": 0.0}}, 8, 8, None, "cpu")
    seeded, meta = batch_of(cfg, 8, 8, None, "cpu")
    for p, s in zip(plain, seeded, strict=True):
        rms = float((s - p).pow(2).mean().sqrt())
        assert 0.8e-6 <= rms <= 1.2e-6  # δ·N(0, 1) entries: rms δ over 128 entries per layer
    assert (meta["balance_dev0"] > 1e-8).all()  # no longer λ-balanced to rounding
