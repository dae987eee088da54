"""A suite takes any registered task from the command line, with only that task's own parameters: a plug-in
sequence task (registered by an entry point) for the continual suite, the installed example plug-in for the
reversal suite. Each runs the real ``lazyrich bench`` in a subprocess, where entry points are read afresh."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # each test runs the real `lazyrich bench` in a subprocess

SMALL = ["suite.lams=[1]", "seed=0", "logger=none", "progress=false", "hydra.run.dir=out"]

STREAM = '''
"""A plug-in sequence task: K whitened diagonal tasks on shared inputs, each with its spectrum rolled by one."""

import numpy as np


def mode_stream(K: int = 2, n: int = 3):
    """K tasks of n modes, X = √n·I (whitened), task k's singular values linspace(2, 0.5, n) rolled by k."""
    from lazyrich.tasks import Phase, Task, TaskSequence

    X = np.sqrt(n) * np.eye(n)
    spectrum = np.linspace(2.0, 0.5, n)
    phases = [Phase(Task(X, X @ np.diag(np.roll(spectrum, k)), name=f"modes_{k}")) for k in range(K)]
    return TaskSequence(phases, name="mode_stream")
'''


@pytest.fixture
def stream_plugin(tmp_path) -> Path:
    """A folder for PYTHONPATH holding the module and a dist-info that registers ``mode_stream`` in the
    ``lazyrich.tasks`` entry-point group, as ``pip install`` of a plug-in package would."""
    root = tmp_path / "site"
    info = root / "lazyrich_mode_stream-0.1.dist-info"
    info.mkdir(parents=True)
    (root / "mode_stream_plugin.py").write_text(textwrap.dedent(STREAM))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lazyrich-mode-stream\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lazyrich.tasks]\nmode_stream = mode_stream_plugin:mode_stream\n")
    return root


def bench(cwd: Path, *overrides: str, path: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(path), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "lazyrich.cli", "bench", *overrides, *SMALL], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("overrides", "k"), [
    (["suite.continual.task.name=mode_stream"], 2),
    (["+suite.continual.task={name: mode_stream, K: 3}"], 3),
])
def test_the_continual_suite_runs_a_plugin_sequence_task_given_on_the_command_line(tmp_path, stream_plugin,
                                                                                    overrides, k):
    proc = bench(tmp_path, "suite=continual", "suite.continual.t_phase=8", "suite.continual.n_log=21",
                 "suite.continual.eta=0.1", *overrides, path=stream_plugin)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "out" / "suite.csv")
    assert (table["status"] == "ok").all() and len(table) == 1
    # K phases reached the suite: the loss matrix is K × K, and every phase converged to its optimum.
    assert {f"R_{i}_{j}" for i in range(k) for j in range(k)} <= set(table.columns)
    assert f"R_{k}_{k}" not in table.columns and table["converged"].all()
    assert "As predicted." in (tmp_path / "out" / "summary.md").read_text()


def test_the_reversal_suite_runs_an_installed_plugin_task(tmp_path, example_plugin_installed):
    proc = bench(tmp_path, "suite=reversal", f"suite.reversal.task.name={example_plugin_installed}",
                 "+suite.reversal.task.n=3", "suite.reversal.t_phase=8", "suite.reversal.n_log=41",
                 "suite.reversal.eta=0.1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "out" / "suite.csv")
    assert (table["status"] == "ok").all() and table["success"].all()
    assert "example_plugin" in (tmp_path / "out" / "runs" / table["unit"][0] / "config.yaml").read_text()
