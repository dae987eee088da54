"""Worker processes stop when the command that launched them dies.

``lazyrich -m`` sweeps run jobs in joblib (loky) worker processes, which outlive a killed parent and would
keep writing into folders a resume is about to use. The CLI records ``PID@host`` in ``LAZYRICH_MAIN_PID``
before launching; :func:`start` (called at the top of every job) asks Linux to kill the worker with its parent
(``PR_SET_PDEATHSIG``) and starts a daemon thread that polls that PID and ends the worker with ``os._exit``
once it is gone, within ``POLL_SECONDS`` or so (the portable fallback, also for deeper descendants). Jobs on
another host (SLURM) are not watched: a PID means nothing there.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time

from lazyrich.store.locking import pid_alive

__all__ = ["ENV", "POLL_SECONDS", "mark_main", "start"]

ENV = "LAZYRICH_MAIN_PID"
POLL_SECONDS = 1.0
EXIT_CODE = 75
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_started: set[int] = set()


def mark_main() -> None:
    """Record this process (PID@host) as the main one, for the workers it launches."""
    os.environ[ENV] = f"{os.getpid()}@{socket.gethostname()}"


def _main_pid() -> int | None:
    """The recorded main PID if it is another process on this host, else None."""
    pid, _, host = os.environ.get(ENV, "").partition("@")
    if not pid.isdigit() or host != socket.gethostname() or int(pid) == os.getpid():
        return None
    return int(pid)


def _watch(main_pid: int, parent_pid: int, poll: float) -> None:
    while True:
        time.sleep(poll)
        if not pid_alive(main_pid) or os.getppid() != parent_pid:
            sys.stderr.write(f"lazyrich: main process {main_pid} is gone; worker {os.getpid()} stops.\n")
            sys.stderr.flush()
            os._exit(EXIT_CODE)


def _kernel_watch(main_pid: int) -> bool:
    """Linux: ask the kernel to SIGKILL this process when its parent, the main process, dies (no CPU needed
    from this process, so it holds on a loaded machine where a polling thread could be starved)."""
    if not sys.platform.startswith("linux") or os.getppid() != main_pid:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != main_pid:  # the parent died before the request took effect
        os._exit(EXIT_CODE)
    return True


def start(poll: float = POLL_SECONDS) -> bool:
    """In a worker process (PID ≠ ``LAZYRICH_MAIN_PID``), watch the main process; True if a watch started.

    Two watches: on Linux, when the worker is the main process's child, the kernel's parent-death signal;
    everywhere, a daemon thread polling the main PID every ``poll`` seconds.
    """
    main_pid = _main_pid()
    if main_pid is None or os.getpid() in _started:
        return False
    _started.add(os.getpid())
    _kernel_watch(main_pid)
    thread = threading.Thread(target=_watch, args=(main_pid, os.getppid(), poll), daemon=True,
                              name="lazyrich-watchdog")
    thread.start()
    return True
