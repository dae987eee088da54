"""Processes (issue 11): joblib workers die with the main process; a bench with failed units says so."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lazyrich.store import watchdog

ENV = {**os.environ, "WANDB_MODE": "disabled"}


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists() and
            Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()[0] != "Z"}


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes through /proc (Linux)")
@pytest.mark.slow
def test_joblib_workers_stop_within_10_s_of_the_main_process_death(tmp_path):
    args = [sys.executable, "-m", "lazyrich.cli", "run", "-m", "model.depth=2,3", "hydra.sweep.dir=sweep",
            "hydra.launcher.n_jobs=2", "logger=none", "theory=none", "trainer.t_max=20000", "trainer.n_log=3",
            "trainer.progress=false"]  # two jobs of 2·10⁶ steps: minutes, unless stopped
    main = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while sum("work:" in p.read_text() for p in (tmp_path / "sweep").glob("*/*.log")) < 2:  # both training
        assert main.poll() is None and time.monotonic() < deadline, "the jobs never started"
        time.sleep(0.2)
    workers = _descendants(main.pid)
    assert workers, "no worker processes"
    os.kill(main.pid, signal.SIGKILL)  # kill -9: no handler runs in the main process
    main.wait()
    killed_at = time.monotonic()
    while _alive(workers) and time.monotonic() - killed_at < 15:
        time.sleep(0.2)
    left = _alive(workers)
    for pid in left:  # never leave them running, whatever the verdict
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {sorted(left)} outlived the main process by 15 s"
    assert time.monotonic() - killed_at < 10 + 1  # polled every 0.2 s
    assert not list((tmp_path / "sweep").glob("*/DONE"))


@pytest.mark.slow
def test_the_watchdog_ends_a_worker_whose_main_process_is_gone():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    code = ("import os, time; from lazyrich.store import watchdog; "
            "assert watchdog.start(poll=0.1); time.sleep(30)")
    start = time.monotonic()
    env = {**ENV, watchdog.ENV: f"{gone.pid}@{socket.gethostname()}"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == watchdog.EXIT_CODE and "is gone" in proc.stderr
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("value", ["", "123@another-host.example", "not-a-pid", "{self}"])
def test_no_watch_without_a_main_process_on_this_host(monkeypatch, value):
    value = value.replace("{self}", f"{os.getpid()}@{socket.gethostname()}")
    monkeypatch.setenv(watchdog.ENV, value)
    assert not watchdog.start()  # nothing to watch: SLURM jobs elsewhere, or the main process itself


@pytest.mark.slow
def test_a_bench_with_failed_units_finishes_the_rest_and_exits_non_zero_naming_them(tmp_path):
    args = [sys.executable, "-m", "lazyrich.cli", "bench", "suite=reversal", "logger=none", "progress=false",
            "suite.lams=[1,1e6]", "seed=[0]", "suite.reversal.t_phase=2", "suite.reversal.n_log=11",
            "hydra.run.dir=out"]
    proc = subprocess.run(args, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stderr[-2000:]
    table = pd.read_csv(tmp_path / "out" / "suite.csv").set_index("lam")
    assert table.loc[1.0, "status"] == "ok" and table.loc[1e6, "status"] == "failed"
    failed = table.loc[1e6, "unit"]
    last = proc.stderr.strip().splitlines()[-1]
    assert "1 unit(s) failed" in last and f"unit {failed}" in last and "max_steps" in last
    assert (tmp_path / "out" / "runs" / failed / "FAILED").exists()
    # the estimate, printed before any training, already named the unit past the step budget
    assert f"1 unit(s) exceed it and will be refused: {failed} (lam=1000000.0)" in proc.stdout
