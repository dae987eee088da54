"""benchmarks/perf, the correctness half (no timing): batched trainer == naive plain-torch loop, trace-form
NTK movement == torch.func NTK, and the runner end to end in --quick mode."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import rel_err

from benchmarks.perf import BENCHMARKS, bench_ntk, bench_training
from lazyrich.init import gaussian
from lazyrich.metrics import linear_ntk
from lazyrich.tasks import Task, hierarchy
from lazyrich.train import train

pytestmark = pytest.mark.slow  # trains the benchmarks' baselines, network by network

ROOT = Path(__file__).resolve().parents[1]
# The benchmark's workload cut down: λ ∈ {−4, 0, 4} (lazy and rich), 300 steps, one net per λ compared.
SMALL = bench_training.Workload(n_lam=3, n_seeds=2, steps=300, log_every=30, n_subset=3, n_matrix=4)


@pytest.fixture(scope="module")
def training_pair():
    task = hierarchy()
    _, weights = bench_training.sweep(SMALL)
    index = bench_training.subset_index(SMALL)
    traj = bench_training.batched_run(task, weights, SMALL)
    return traj, bench_training.naive_subset(task, weights, index, SMALL), index


def test_subset_spans_the_lambda_grid():
    assert bench_training.subset_index(SMALL).tolist() == [0, 2, 4]
    assert bench_training.subset_index(bench_training.FULL).tolist() == [
        0,
        1,
        32,
        33,
        64,
        65,
        96,
        97,
        128,
        129,
        160,
        161,
        192,
        193,
        224,
        225,
    ]


def test_batched_trainer_equals_the_naive_plain_torch_loop(training_pair):
    traj, runs, index = training_pair
    # The naive loop logs every metric the comparison needs, at the same steps and matrix points.
    assert {"loss", "kernel_distance", "ntk_rel_change", "sval_8", "balance_drift_1"} <= set(
        runs[0]["scalars"]
    )
    assert runs[0]["scalars"]["loss"].shape == (SMALL.n_log,)
    assert traj.step[0].tolist() == list(range(0, SMALL.steps + 1, SMALL.log_every))
    # Same GD in another order (statistics and fused kernels vs data and autograd): ~1e-14 after 300 steps,
    # the benchmark's own tolerance leaves four orders of magnitude.
    assert bench_training.max_difference(traj, runs, index) < bench_training.TOLERANCE


def test_the_training_comparison_can_fail(training_pair):
    traj, runs, index = training_pair
    traj.final_weights[1][int(index[1])] += 1e-8  # a change far below what any plot would show
    try:
        assert bench_training.max_difference(traj, runs, index) >= 1e-8
    finally:
        traj.final_weights[1][int(index[1])] -= 1e-8


@pytest.mark.parametrize("widths", [[5, 4, 3], [5, 4, 6, 2, 3]])
@pytest.mark.parametrize("whitened", [True, False])
def test_fused_statistics_step_equals_autograd_on_the_data(widths, whitened):
    # The benchmarked hot path (three fused baddbmm for two whitened layers) against autograd on X, Y, for
    # two and four layers, whitened (Σxx = 2I, the baddbmm branch) or not (the Σxx product branch).
    gen = torch.Generator().manual_seed(len(widths))
    x = torch.randn(10, 5, generator=gen, dtype=torch.float64)
    if whitened:
        x = torch.linalg.qr(x)[0] * math.sqrt(2 * 10)  # XᵀX/P = 2I
    task = Task(x, torch.randn(10, 3, generator=gen, dtype=torch.float64), name="check")
    assert (task.whitening_scale is not None) == whitened
    ws = gaussian(widths, 0.8, generator=gen, batch=3)
    kwargs = {"t_max": 0.5, "n_log": 3, "progress": False}
    fast, slow = train(task, ws, 0.01, **kwargs), train(task, ws, 0.01, batch_size=10, **kwargs)
    for a, b in zip(fast.final_weights, slow.final_weights, strict=True):
        # 50 steps, same maths in another order: rounding, ~1e-15 of each net's largest weight.
        assert rel_err(a, b, batch_dims=1) <= 1e-12


def test_torch_func_ntk_is_the_output_major_linear_ntk():
    x, w0, _ = bench_ntk.problem(bench_ntk.QUICK)
    k = bench_ntk.empirical_ntk(w0[0][0], w0[1][0], x)
    # Two float64 products of O(10²) entries: agreement to rounding, ~1e-16 of the kernel's largest entry.
    assert rel_err(k, linear_ntk([w0[0][0], w0[1][0]], x)) <= 1e-13


def test_trace_form_equals_the_torch_func_kernel_distance():
    sizes = bench_ntk.Sizes(n_samples=16, n_in=16, n_hidden=8, n_out=4)  # the benchmark's 64/64/32/16, ÷4
    x, w0, wt = bench_ntk.problem(sizes)
    fast, slow = bench_ntk.trace_form(x, w0, wt), bench_ntk.empirical(x, w0, wt)
    dist = fast[0]
    assert float(dist[0]) < 1e-9 < 1e-3 < float(dist[-1])  # from a lazy (cancellation-prone) to a rich move
    assert bench_ntk.max_difference(fast, slow) < bench_ntk.TOLERANCE


def test_quick_run_writes_the_table(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "benchmarks.perf", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    table = (tmp_path / "perf.md").read_text()
    assert "| Benchmark | Measurement | Baseline | lazyrich |" in table
    with open(tmp_path / "perf.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["benchmark"] for r in rows} == set(BENCHMARKS)
    assert not [r["name"] for r in rows if r["status"] in ("error", "fail")]
    for name in ("training", "ntk"):  # the correctness figures are judged even in --quick mode
        (r,) = [r for r in rows if r["benchmark"] == name]
        assert float(r["max_error"]) <= float(r["tolerance"])
        assert f"| {name} | {r['name']} |" in table
