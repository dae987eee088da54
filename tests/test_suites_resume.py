"""Resuming a killed sweep: `lazyrich bench` killed midway, re-run with the same hydra.run.dir, redoes nothing
that had finished and completes the table."""

import os
import subprocess
import sys
import time

import pandas as pd
import pytest

ARGS = [
    "bench",
    "suite=architecture",
    "logger=none",
    "progress=false",
    "suite.lams=-4,-2,0,2,4",
    "suite.architecture.seeds=[0]",
    "suite.architecture.t_max=15",
    "suite.architecture.n_log=31",
    "suite.architecture.archs.funnel={n_in:4,n_out:2}",
    "suite.architecture.archs.inverted_funnel={n_in:2,n_out:4}",
    "~suite.architecture.archs.square",
]
N_UNITS = 10  # 2 archs × 5 λ


def bench(out, **kwargs):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return [sys.executable, "-m", "lazyrich.cli", *ARGS, f"hydra.run.dir={out}"], env


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_recomputing_finished_runs(tmp_path):
    out = tmp_path / "sweep"
    cmd, env = bench(out)
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while len(list(out.glob("runs/*/DONE"))) < 2:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "no run finished within 120 s"
            time.sleep(0.02)
        proc.kill()
        proc.wait()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/DONE")}
    assert 2 <= len(done_before) < N_UNITS, "the sweep was not interrupted midway"
    assert not (out / "suite.csv").exists()

    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    computed = (out / "computed.log").read_text().split()
    assert len(computed) == len(set(computed)), "a run was computed twice"
    assert {
        p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/DONE") if p.parent.name in done_before
    } == done_before, "a finished run was rewritten"
    table = pd.read_csv(out / "suite.csv")
    assert len(table) == N_UNITS and (table["status"] == "ok").all()
    assert set(table["unit"]) == {p.parent.name for p in out.glob("runs/*/DONE")}
    assert sorted(table["lam"].unique()) == [-4.0, -2.0, 0.0, 2.0, 4.0]  # the comma list was one sweep
    assert f"{len(done_before)} resumed" in second.stdout and "outcome:" in second.stdout
