"""One writer per folder: a lock file holding the owner's PID and host.

``with FolderLock(folder): ...`` creates ``folder/.lazyrich.lock`` atomically (a hard link of a complete
temporary file, so nobody ever reads a half-written lock). A second writer is refused with a message naming
the owner. Within the process that holds it the lock is re-entrant (the command line takes it before Hydra
writes anything into the folder, and the run inside takes it again); the file goes with the last release. A lock
whose owner is dead (same host; PID gone, or reused by a later process) is stale: it is taken over with one
warning. A lock from another host cannot be checked from here; the message says how to clear it.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["LOCK_FILE", "FolderLock", "FolderLocked", "describe", "holder", "is_stale", "pid_alive", "started"]

LOCK_FILE = ".lazyrich.lock"

_HELD: dict[Path, int] = {}
"""Folders this process holds, with how many times it took each (a nested take only counts)."""


class FolderLocked(RuntimeError):
    """Another live process writes into this folder."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie (an exited process not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): existence is all we can tell
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def started(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux), to tell it from a later one reusing its
    PID; None where /proc cannot tell."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def holder(folder: str | Path) -> dict[str, Any] | None:
    """The lock's owner record ({pid, host, since, started}) if ``folder`` is locked, else None ({} if unreadable)."""
    path = Path(folder) / LOCK_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def is_stale(owner: dict[str, Any]) -> bool:
    """Whether a lock record is stale: unreadable (never completed, as the link is atomic), or its owner is
    dead on this host (gone, or its PID now belongs to a process that started later)."""
    if not owner:
        return True
    if owner.get("host") != socket.gethostname():
        return False  # cannot be checked from here
    pid = owner.get("pid")
    if not (isinstance(pid, int) and pid_alive(pid)):
        return True
    recorded, now = owner.get("started"), started(pid)
    return recorded is not None and now is not None and recorded != now  # the PID was reused


def describe(owner: dict[str, Any], folder: Path) -> str:
    """One line naming the lock's owner and what to do about it."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))
    return (f"{folder} is being written by PID {owner.get('pid')} on host {owner.get('host')} (since {since}); "
            f"wait for it to finish, or write elsewhere (hydra.run.dir=<new folder>). If that process is gone "
            f"for sure, delete {folder / LOCK_FILE}.")


def _owned(owner: dict[str, Any] | None) -> bool:
    """Whether a lock record is this process's."""
    return bool(owner) and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname()


class FolderLock:
    """Context manager holding the one-writer lock of ``folder`` (created if needed) for this process."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE

    def _try_create(self) -> bool:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                  "started": started(os.getpid())}
        tmp = self.folder / f"{LOCK_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record))
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def acquire(self) -> None:
        """Take the lock, taking over a stale one with a warning; FolderLocked if a live process holds it. Taking
        a lock this process already holds only counts the take."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.folder.resolve()
        if _HELD.get(key) and _owned(holder(self.folder)):
            _HELD[key] += 1
            return
        for _ in range(3):
            if self._try_create():
                _HELD[key] = 1
                return
            owner = holder(self.folder)
            if owner is None:
                continue  # released meanwhile
            if not is_stale(owner):
                raise FolderLocked(describe(owner, self.folder))
            warnings.warn(f"taking over the stale lock of {self.folder} (PID {owner.get('pid')} on "
                          f"{owner.get('host')} is gone).", RuntimeWarning, stacklevel=3)
            self.path.unlink(missing_ok=True)
        raise FolderLocked(f"could not lock {self.folder}: other processes keep taking it; retry.")

    def release(self) -> None:
        """Undo one take; the last one removes the lock if this process still owns it."""
        key = self.folder.resolve()
        _HELD[key] = _HELD.get(key, 1) - 1
        if _HELD[key] > 0:
            return
        del _HELD[key]
        if _owned(holder(self.folder)):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
