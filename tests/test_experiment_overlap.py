"""A chunk predicted and written on a spare core while the next one trains: the same bits, the same order, and an
error that still stops the run."""

import signal
import threading

import numpy as np
import pandas as pd
import pytest

from lazyrich import results, store
from lazyrich.experiment import run as run_module
from lazyrich.experiment import run_experiment
from lazyrich.experiment.overlap import ChunkQueue
from lazyrich.store.storage import MatrixStore

CFG = {
    "task": {"name": "hierarchy"},
    "init": {"kind": "balanced", "lam": [-2.0, 0.0, 2.0], "scale": 0.1},
    "trainer": {"lr": [0.01, 0.02], "t_max": 1.0, "n_log": 6, "n_matrix": 3, "progress": False, "batch_chunk": 5},
    "theory": {"name": "exact"},
    "seed": [0, 1],
}  # 12 networks in chunks of 5, 5 and 2


def test_the_queue_runs_jobs_in_order_on_one_worker_and_raises_their_errors():
    with ChunkQueue(threaded=True) as queue:
        for k in range(4):
            queue.submit(lambda k=k: (k, threading.current_thread().name))
        done = queue.drain()
    assert [k for k, _ in done] == [0, 1, 2, 3]
    assert {name for _, name in done} == {done[0][1]} and done[0][1] != threading.current_thread().name
    with ChunkQueue(threaded=True) as queue, pytest.raises(ZeroDivisionError):
        queue.submit(lambda: 1 / 0)
        queue.submit(lambda: None)  # the first job's error comes out here, before the second job is queued
    with ChunkQueue(threaded=False) as queue:
        queue.submit(lambda: threading.current_thread().name)
        assert queue.drain() == [threading.current_thread().name]  # inline: no spare core


def test_a_backlog_of_two_keeps_the_order_and_runs_nothing_after_a_failure():
    start, fail, ran = threading.Event(), threading.Event(), []

    def job(k):
        (fail if k == 1 else start).wait(5)  # held until the test lets it go
        ran.append(k)
        if k == 1:
            raise ZeroDivisionError(k)
        return k

    with ChunkQueue(threaded=True, backlog=2) as queue:
        queue.submit(job, 0)
        queue.submit(job, 1)  # queued at once: the first is still running
        assert len(queue._pending) == 2 and not ran
        start.set()
        queue.submit(job, 2)  # waits for job 0 only, and is queued behind job 1, which is still held
        assert len(queue._pending) == 2
        fail.set()
        with pytest.raises(ZeroDivisionError):
            queue.drain()
    assert ran == [0, 1] and queue.results == [0]  # job 2 was queued but never ran


def test_a_run_is_the_same_bits_with_or_without_the_spare_core(tmp_path, monkeypatch):
    written = {}
    for threaded in (True, False):
        monkeypatch.setattr(run_module, "spare_core", lambda threaded=threaded: threaded)
        run_dir = tmp_path / f"threaded-{threaded}"
        result = run_experiment(CFG, run_dir, plot=False)
        assert [(a, b) for a, b, _ in MatrixStore(run_dir).chunks()] == [(0, 5), (5, 10), (10, 12)]
        assert (run_dir / store.DONE).is_file()
        frame = results.load(run_dir).drop(columns="run").sort_values(["net", "t"], ignore_index=True)
        written[threaded] = frame, result.summary, results.load_matrices(run_dir)
    (frame, summary, mats), (frame0, summary0, mats0) = written[True], written[False]
    pd.testing.assert_frame_equal(frame, frame0, check_exact=True)
    pd.testing.assert_frame_equal(summary, summary0, check_exact=True)
    assert set(mats) == set(mats0) and all(np.array_equal(mats[k], mats0[k], equal_nan=True) for k in mats)


def test_an_error_in_a_chunk_on_the_worker_stops_the_run_unfinished(tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "spare_core", lambda: True)
    real = run_module._tabulate_chunk

    def failing(plan, init64, meta, start, trajectories):
        if start == 5:
            raise RuntimeError("the theory failed on the second chunk")
        return real(plan, init64, meta, start, trajectories)

    monkeypatch.setattr(run_module, "_tabulate_chunk", failing)
    with pytest.raises(RuntimeError, match="second chunk"):
        run_experiment(CFG, tmp_path / "run", plot=False)
    assert not (tmp_path / "run" / store.DONE).exists()
    assert [(a, b) for a, b, _ in MatrixStore(tmp_path / "run").chunks()] == [(0, 5)]  # nothing after the failure


class _Freed:
    """An object whose finalizer receives a Ctrl-C: Python prints the KeyboardInterrupt and drops it."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_dropped_in_a_finalizer_still_stops_the_queue():
    previous = signal.getsignal(signal.SIGINT)
    with ChunkQueue(threaded=True) as queue:
        queue.submit(lambda: 1)
        _Freed()  # freed at once: the interrupt lands in its __del__ and is dropped there
        with pytest.raises(KeyboardInterrupt):
            queue.submit(lambda: 2)
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is restored on leaving
