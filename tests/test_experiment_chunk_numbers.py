"""What the chunk size may change (issue 19 #5, docs: Performance, Chunks): nothing for the trainer and the closed
forms; an ODE-based theory's values within its solver tolerance, since a chunk is solved as one system."""

from __future__ import annotations

import numpy as np
import pytest

from lazyrich.experiment import run_experiment

BASE = {"task": {"name": "random_regression", "n_in": 5, "n_out": 3, "seed": 2},
        "init": {"lam": list(np.linspace(-3.0, 3.0, 8)), "scale": 0.2}, "seed": [0, 1, 2],
        "trainer": {"lr": 0.01, "t_max": 2.0, "n_log": 11, "progress": False}}


def _frames(theory: str, chunks=(1, 7, 24)):
    cfg = {**BASE, "theory": {"name": theory}}
    whole = run_experiment(cfg).frame
    parts = [run_experiment({**cfg, "trainer": {**cfg["trainer"], "batch_chunk": c}}).frame for c in chunks]
    return whole, parts


def _gap(a, b) -> float:
    a, b = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    return float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


@pytest.mark.slow
def test_the_trainer_and_the_closed_form_do_not_depend_on_the_chunking():
    whole, parts = _frames("exact")
    for part in parts:
        for column in (c for c in whole if c.startswith(("sim/", "theory/"))):
            assert _gap(part[column], whole[column]) == 0.0, column  # bit for bit


@pytest.mark.slow
def test_an_ode_theory_agrees_across_chunkings_to_its_solver_tolerance():
    whole, parts = _frames("ode")
    gaps = [_gap(part[c], whole[c]) for part in parts for c in whole if c.startswith("theory/")]
    assert max(gaps) <= 1e-7  # rtol 1e-10 per solve, accumulated over a shared adaptive step: measured ≤ 9e-9
    assert all(_gap(part[c], whole[c]) == 0.0 for part in parts for c in whole if c.startswith("sim/"))
