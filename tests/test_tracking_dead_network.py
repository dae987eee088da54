"""A silent W&B host costs one bounded wait per process, not one per run, and the runs land offline, complete.

A local server on 127.0.0.1 accepts connections and never answers; ``WANDB_BASE_URL`` points at it, with a dummy
API key and ``WANDB_MODE=online``. The same run is timed offline as the baseline.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lazyrich.tracking.read import read_run
from lazyrich.tracking.sync import find_offline_runs

pytestmark = pytest.mark.slow  # real W&B runs (offline), each seconds

SCRIPT = """
from lazyrich.experiment import run_experiment

cfg = {"task": {"name": "hierarchy"}, "init": {"kind": "balanced", "lam": [0.0, 2.0], "scale": 0.1},
       "model": {"depth": 2}, "trainer": {"lr": 0.02, "t_max": 1.0, "n_log": 7, "progress": False},
       "theory": {"name": "exact"}, "seed": [0, 1],
       "logger": {"wandb": {"enabled": True, "project": "lazyrich-test", "layout": "network"}}}
run_experiment(cfg, "run")
"""


class SilentServer:
    """Accepts TCP connections on loopback and never answers; stops by itself after ``lifetime`` seconds."""

    def __init__(self, lifetime: float = 120.0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.deadline = time.monotonic() + lifetime
        self.held: list[socket.socket] = []
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while time.monotonic() < self.deadline and not self.stopped:  # bounded by the deadline
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)
            except OSError:
                continue
        for conn in self.held:
            conn.close()
        self.sock.close()

    def stop(self) -> None:
        self.stopped = True
        self.thread.join(timeout=5)


def _run(cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=240)
    return time.perf_counter() - start, proc


def test_a_silent_host_costs_at_most_30_s_per_process_and_the_offline_runs_are_complete(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    base["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), base.get("PYTHONPATH", "")])
    (tmp_path / "offline").mkdir()
    (tmp_path / "dead").mkdir()
    baseline, proc = _run(tmp_path / "offline", {**base, "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    server = SilentServer()
    try:
        dead, proc = _run(tmp_path / "dead", {**base, "WANDB_MODE": "online", "WANDB_BASE_URL": server.url,
                                             "WANDB_API_KEY": "0" * 40})
        connections = len(server.held)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert connections >= 1  # it did try the silent host
    assert dead - baseline <= 30.0, f"the silent host cost {dead - baseline:.1f} s (baseline {baseline:.1f} s)"
    assert proc.stderr.count("W&B is unreachable") == 1
    assert (tmp_path / "dead" / "run" / "metrics.parquet").exists()
    runs = [read_run(p) for p in find_offline_runs(tmp_path / "dead" / "run")]
    assert len(runs) == 4 and all(len(r.history) == 7 and "sim/loss" in r.history_keys for r in runs)
