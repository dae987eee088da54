"""A real plug-in package (tests/plugin_pkg) found through the `lazyrich.tasks` entry-point group."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _in_fresh_process(code: str) -> subprocess.CompletedProcess[str]:
    # a fresh interpreter: entry points are read from the installed metadata, not from this process's state
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_plugin_task_is_made_via_entry_point(example_plugin_installed: str) -> None:
    name = example_plugin_installed
    code = (
        "import json; from lazyrich.tasks import make, available, task_defaults; "
        f"t = make({name!r}, n=3, scale=2.0); "
        "print(json.dumps(dict(shape=list(t.shape), s=t.svd[1].tolist(), white=t.is_whitened, "
        f"listed={name!r} in available(), defaults=task_defaults({name!r}))))"
    )
    proc = _in_fresh_process(code)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["shape"] == [3, 3, 3] and out["white"] and out["listed"]
    # scale·(n, n−1, …)/n, float64 round-off of an SVD: 1e-12 relative (each value ≥ a third of the largest).
    assert out["s"] == pytest.approx([2.0, 4 / 3, 2 / 3], rel=1e-12)
    assert out["defaults"] == {"n": 4, "scale": 1.0}


@pytest.mark.slow
def test_plugin_errors_name_the_plugin(example_plugin_installed: str) -> None:
    proc = _in_fresh_process(f"from lazyrich.tasks import make; make({example_plugin_installed!r}, n=0)")
    assert proc.returncode != 0
    assert "TaskError" in proc.stderr and "example_plugin" in proc.stderr
    assert "lazyrich-example-plugin" in proc.stderr  # the distribution is named
