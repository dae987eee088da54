"""Shared pieces of the performance benchmarks: timing, result rows, command-line flags.

A result row is a dict with the keys of :data:`COLUMNS` (extra keys are kept in the CSV). ``ratio`` is
baseline / lazyrich, so for times it is the speed-up, except in a cost row (``row(cost=…)``: lazyrich ÷ baseline,
lower is better, its target written ≤); ``status`` is "pass", "fail" or "info" (no target).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

Row = dict[str, Any]

COLUMNS = (
    "benchmark",
    "name",
    "unit",
    "baseline",
    "lazyrich",
    "ratio",
    "target",
    "status",
    "max_error",
    "tolerance",
    "notes",
)


def parser(description: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes: ``--quick`` (smoke-test workload) and ``--repeats``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="shrink the workload to a smoke test")
    p.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per measurement (median reported)"
    )
    return p


def repeat_time(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Wall times (s) of ``repeats`` calls of ``fn`` and the value of the first call."""
    times, first = [], None
    for i in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
        if i == 0:
            first = value
    return times, first


def per_call(fn: Callable[[], Any], *, min_seconds: float = 0.2, repeats: int = 3) -> float:
    """Median seconds per call of a fast ``fn``: each repeat loops it long enough to last ``min_seconds``."""
    fn()  # warm-up: first-call allocations and lazy initialisation are not part of the steady state
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    n = max(1, int(min_seconds / once))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n)
    return statistics.median(samples)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def row(
    benchmark: str,
    name: str,
    *,
    baseline: float | None,
    lazyrich: float | None,
    unit: str = "s",
    min_ratio: float | None = None,
    max_value: float | None = None,
    max_error: float | None = None,
    tolerance: float | None = None,
    notes: str = "",
    quick: bool = False,
    with_ratio: bool = True,
    cost: float | None = None,
    max_cost: float | None = None,
    **extra: Any,
) -> Row:
    """One result row. ``min_ratio``: baseline/lazyrich must reach it; ``max_value``: lazyrich must stay below
    it; ``tolerance``: ``max_error`` must not exceed it. With none of the three the status is "info".
    ``quick`` workloads are too small for their timings to mean anything: only the tolerance is judged.
    ``with_ratio=False`` leaves the ratio empty where baseline/lazyrich means nothing (memory).
    ``cost`` (with its bound ``max_cost``) is a row whose figure is a cost ratio, lazyrich ÷ baseline or any
    other "× as expensive" (lower is better): it is reported in the ratio column, judged ≤ ``max_cost``."""
    ratio = baseline / lazyrich if with_ratio and baseline is not None and lazyrich else None
    checks, targets = [], []
    if cost is not None:
        ratio = cost
        if max_cost is not None:
            checks.append(cost <= max_cost)
            targets.append(f"≤ {max_cost:g}×")
    if min_ratio is not None:
        checks.append(ratio is not None and ratio >= min_ratio)
        targets.append(f"≥ {min_ratio:g}×")
    if max_value is not None:
        checks.append(lazyrich is not None and lazyrich < max_value)
        targets.append(f"< {max_value:g} {unit}")
    if quick and targets:
        checks, targets = [], [*targets, "not judged (--quick)"]
    if tolerance is not None:
        checks.append(max_error is not None and max_error <= tolerance)
    status = "info" if not checks else ("pass" if all(checks) else "fail")
    return {
        "benchmark": benchmark,
        "name": name,
        "unit": unit,
        "baseline": baseline,
        "lazyrich": lazyrich,
        "ratio": ratio,
        "target": ", ".join(targets),
        "status": status,
        "max_error": max_error,
        "tolerance": tolerance,
        "notes": notes,
        **extra,
    }


_MEASURE = """
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvpe(sys.argv[1], sys.argv[1:], os.environ)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"seconds": time.perf_counter() - start, "status": os.waitstatus_to_exitcode(status),
                  "peak_mib": usage.ru_maxrss / 1024}))
"""


def run_measured(cmd: Sequence[str], *, env: dict[str, str], cwd: str | os.PathLike) -> dict[str, Any]:
    """Run ``cmd`` and return its wall time (s), exit status and peak RSS (MiB), its stderr's tail on failure.

    The command is the child of a small Python that forks it: Linux gives a process that a large parent started
    directly (vfork and exec) that parent's peak RSS as its own starting maximum, so a benchmark that has already
    trained in-process would read its own peak in the command's. A fork of a small process starts from that
    small process's size instead."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], env=env, cwd=cwd, capture_output=True, text=True,
                          check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd[:4])} … could not be measured:\n{done.stderr[-2000:]}")
    out = json.loads(lines[-1])
    out["stderr"] = done.stderr[-2000:]
    return out
