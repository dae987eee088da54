"""``lazyrich sync`` says when uploads fail and never hangs: it exits 1 naming the runs left unsynced (W&B's own
``wandb sync`` exits 0 even then), a host that refuses connections fails in seconds, and a silent one within the
documented limits (lazyrich/tracking/sync.py). Every server here is local, on 127.0.0.1."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import offline_wandb_in
from test_tracking_dead_network import SilentServer

from lazyrich.experiment import run_experiment
from lazyrich.tracking.connect import PROBE_TIMEOUT
from lazyrich.tracking.sync import find_offline_runs

pytestmark = pytest.mark.slow  # real W&B runs (offline), each seconds

CFG = {"task": {"name": "hierarchy"}, "init": {"kind": "balanced", "lam": [0.0, 2.0], "scale": 0.1},
       "model": {"depth": 2}, "trainer": {"lr": 0.02, "t_max": 1.0, "n_log": 4, "progress": False},
       "theory": {"name": "exact"}, "seed": 0,
       "logger": {"wandb": {"enabled": True, "project": "lazyrich-test", "layout": "network"}}}

START_SLACK = 15.0
"""Seconds allowed beyond a bound for starting Python, lazyrich and W&B's service on a loaded 2-core machine."""


@pytest.fixture(scope="module")
def offline_runs(tmp_path_factory):
    """A run folder holding two offline W&B runs."""
    root = tmp_path_factory.mktemp("sync")
    with offline_wandb_in(root):
        run_experiment(CFG, root / "run")
    assert len(find_offline_runs(root / "run")) == 2
    return root / "run"


class _Handler(BaseHTTPRequestHandler):
    """GET (the probe) answers ``get_status``; POST (W&B's API) answers 501 or, if ``hold``, never."""

    get_status, hold, released = 404, False, threading.Event()

    def do_GET(self):  # noqa: N802 — the name http.server calls
        self.send_response(self.get_status)
        self.end_headers()

    def do_POST(self):  # noqa: N802
        if self.hold:
            self.released.wait(timeout=120)  # bounded: the server never outlives the test by much
            return
        self.send_error(501, "this test server refuses every upload")

    def log_message(self, *args):
        pass


def http_server(**behaviour):
    handler = type("Handler", (_Handler,), {**behaviour, "released": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lazyrich_sync(folder: Path, base_url: str, *extra: str, limit: float = 90.0):
    """(seconds, exit status, output) of ``lazyrich sync folder`` against ``base_url``; fails the test past
    ``limit`` seconds (the whole process group is killed, so no ``wandb sync`` is left behind)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_BASE_URL=base_url, WANDB_API_KEY="0" * 40, WANDB_CONFIG_DIR=str(folder.parent / "wandb-config"),
               WANDB_CACHE_DIR=str(folder.parent / "wandb-cache"), WANDB_DATA_DIR=str(folder.parent / "wandb-data"),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]))
    command = [sys.executable, "-c", "import sys; from lazyrich.cli import main; main(sys.argv[1:])", "sync",
               str(folder), *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=folder.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, stdin=subprocess.DEVNULL, start_new_session=True)  # W&B logs into its cwd
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"lazyrich sync ran past {limit:g} s against {base_url}")
    return time.perf_counter() - start, proc.returncode, out


def test_sync_exits_1_naming_the_runs_when_every_upload_fails(offline_runs):
    server, _ = http_server()  # answers the probe, refuses every upload (as a broken or misconfigured server)
    try:
        seconds, status, out = lazyrich_sync(offline_runs, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert status == 1, out[-2000:]
    assert "2 of 2 offline W&B run(s) failed to upload" in out
    for run in find_offline_runs(offline_runs):
        assert f"  {run}: " in out


def test_sync_against_a_refusing_host_fails_within_seconds(offline_runs):
    seconds, status, out = lazyrich_sync(offline_runs, f"http://127.0.0.1:{closed_port()}", limit=60.0)
    assert status == 1, out[-2000:]
    assert "2 of 2 offline W&B run(s) failed to upload" in out and "not tried" in out
    assert seconds <= START_SLACK, f"a refusing host took {seconds:.1f} s"


def test_sync_against_a_silent_host_stops_after_the_probe(offline_runs):
    server = SilentServer()
    try:
        seconds, status, out = lazyrich_sync(offline_runs, server.url)
    finally:
        server.stop()
    assert status == 1 and "did not answer" in out, out[-2000:]
    assert seconds <= PROBE_TIMEOUT + START_SLACK, f"a silent host took {seconds:.1f} s"


def test_sync_against_a_host_silent_after_the_probe_stops_at_the_timeout(offline_runs):
    server, handler = http_server(get_status=200, hold=True)  # answers the probe, never an upload
    try:
        seconds, status, out = lazyrich_sync(offline_runs, f"http://127.0.0.1:{server.server_port}",
                                             "--timeout", "5")
    finally:
        handler.released.set()
        server.shutdown()
    assert status == 1, out[-2000:]
    assert "2 of 2 offline W&B run(s) failed to upload" in out and "did not finish within 5 s" in out
    assert seconds <= 5 + START_SLACK, f"a host silent after the probe took {seconds:.1f} s"
