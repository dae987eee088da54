"""Predicting and writing a trained chunk on a spare core while the next chunk trains.

A chunked run alternates two kinds of work: training a chunk (the trainer's loop) and everything after it — the
theory's prediction, the agreement tolerance, the tables and the write to the run folder. With the trainer on one
torch thread (``threads=1``, the default) and a second core idle, :class:`ChunkQueue` runs the second kind on one
worker thread, so chunk k is predicted and written while chunk k + 1 trains. Jobs run one at a time and in order
(the run folder receives its chunks as a serial run writes them), at most ``backlog`` are pending (the one
running included), and an error in a job is raised in the caller at its next :meth:`~ChunkQueue.submit` after
the job has ended, or at :meth:`~ChunkQueue.drain`; no job after a failed one runs. Every operation is the same
on either thread, so the numbers are the same bits as a serial run's; without a spare core the jobs run inline.

Ctrl-C: Python raises KeyboardInterrupt in the main thread wherever it is, and where that is a finalizer (an
object freed, possibly one the worker made) it prints the exception and drops it. While the queue is open in the
main thread it also remembers the interrupt, and the next :meth:`~ChunkQueue.submit` or :meth:`~ChunkQueue.drain`
raises it again, so a dropped Ctrl-C still stops the run after the chunk in progress.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

__all__ = ["ChunkQueue", "spare_core"]


def spare_core() -> bool:
    """Whether this process may use a core its torch threads leave free (its CPU affinity counts, not the machine)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores > torch.get_num_threads()


class ChunkQueue:
    """Runs ``job(*args)`` calls in order on one worker thread (``threaded``) or inline, collecting their results.

    Use as a context manager: leaving it waits for the job in progress, also when the caller raised, so nothing
    is written to a run folder after its lock is released.
    """

    def __init__(self, threaded: bool, backlog: int = 1) -> None:
        self.results: list[Any] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lazyrich-chunk") if threaded else None
        self._backlog = backlog
        self._pending: deque[Future] = deque()
        self._failed = threading.Event()
        self._interrupted = threading.Event()
        self._previous: Any = None

    def submit(self, job: Callable[..., Any], *args: Any) -> None:
        """Queue ``job(*args)`` after the previous jobs; with ``backlog`` jobs pending, the oldest is waited for
        first. The jobs that have ended hand in their results (or raise their error) here."""
        self._raise_if_interrupted()
        while self._pending and (self._pending[0].done() or len(self._pending) >= self._backlog):
            self._wait()
        if self._pool is None:
            self.results.append(job(*args))
        else:
            self._pending.append(self._pool.submit(self._guarded, job, *args))

    def _guarded(self, job: Callable[..., Any], *args: Any) -> Any:
        """Run ``job`` on the worker unless an earlier job failed (then nothing after it may run)."""
        if self._failed.is_set():
            raise RuntimeError("not run: an earlier job of the queue failed")
        try:
            return job(*args)
        except BaseException:
            self._failed.set()
            raise

    def warm(self, job: Callable[[], Any]) -> None:
        """Run ``job()`` on the worker ahead of the chunks, e.g. an import the end of the run needs, while the
        first chunk trains; its result and any error are dropped (the caller meets the error again when it does
        the work itself). Inline nothing: without a worker there is no idle core to do it on."""
        if self._pool is not None:
            self._pool.submit(job)

    def drain(self) -> list[Any]:
        """Wait for the last job; every job's result, in the order submitted."""
        self._raise_if_interrupted()
        while self._pending:
            self._wait()
        self._raise_if_interrupted()
        return self.results

    def _raise_if_interrupted(self) -> None:
        if self._interrupted.is_set():
            self._interrupted.clear()
            raise KeyboardInterrupt

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """SIGINT while the queue is open: remembered, then handled as before (KeyboardInterrupt by default)."""
        self._interrupted.set()
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    def _wait(self) -> None:
        """The oldest pending job's result (its error raised)."""
        self.results.append(self._pending.popleft().result())

    def __enter__(self) -> ChunkQueue:
        main = threading.current_thread() is threading.main_thread()
        if self._pool is not None and main and signal.getsignal(signal.SIGINT) is not None:  # None: set from C
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
