"""Read an offline W&B run back with W&B's own decoder (``wandb leet inspect --json``): what a user would see.

Used by ``lazyrich dashboard`` (the panels use the keys the runs really logged, and the group they really have)
and by the tests, which check the offline files rather than what lazyrich meant to write.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["OfflineRun", "UnreadableRun", "read_run", "wandb_exe"]


class UnreadableRun(RuntimeError):
    """An offline run W&B's decoder cannot read, or that holds no run record (a 0-byte or cut-short file)."""


@dataclass
class OfflineRun:
    """One decoded offline run: its identity, config, history rows and final summary."""

    path: Path
    run_id: str = ""
    project: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def history_keys(self) -> set[str]:
        """Every key of any history row, W&B's own (``_step``, ``_runtime``…) left out."""
        return {k for row in self.history for k in row if not k.startswith("_")}


def wandb_exe() -> str:
    """The wandb executable beside this Python if there is one, else the one on PATH."""
    beside = Path(sys.executable).parent / "wandb"
    return str(beside) if beside.exists() else (shutil.which("wandb") or "wandb")


def _records(run_dir: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run([wandb_exe(), "leet", "inspect", "--json", str(run_dir)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    if proc.returncode != 0:
        raise UnreadableRun(f"wandb leet inspect failed on {run_dir} (it needs wandb ≥ 0.31, as pyproject.toml "
                            f"asks): {proc.stderr[-300:]}")
    try:
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    except ValueError as err:
        raise UnreadableRun(f"{run_dir}: W&B's decoder wrote a line that is not JSON ({err})") from None


def read_run(run_dir: str | Path) -> OfflineRun:
    """Decode the offline run in ``run_dir`` (an ``offline-run-*`` folder); raises :class:`UnreadableRun` when
    its ``.wandb`` file is empty or holds no run record (W&B wrote nothing readable: the run is cut short)."""
    run = OfflineRun(Path(run_dir))
    files = sorted(run.path.glob("*.wandb"))
    if not files or all(f.stat().st_size == 0 for f in files):
        raise UnreadableRun(f"{run.path}: its .wandb file is missing or empty (0 bytes)")
    for record in _records(run.path):
        kind = record.get("type")
        if kind == "run":
            info = record["run"]
            run.run_id, run.name = info.get("run_id", ""), info.get("display_name", "")
            run.group, run.job_type = info.get("run_group", ""), info.get("job_type", "")
            run.project = info.get("project", "")
            run.tags = list(info.get("tags", []))
            run.config.update({k: v for k, v in info.get("config", {}).get("update", {}).items() if k != "_wandb"})
        elif kind == "config":
            run.config.update({k: v for k, v in record["config"].get("update", {}).items() if k != "_wandb"})
        elif kind == "history":
            run.history.append(record["history"]["item"])
        elif kind == "summary":
            run.summary.update(record["summary"].get("update", {}))
        elif kind == "files":
            run.files += [f["path"] for f in record["files"].get("files", [])]
    if not run.run_id:
        raise UnreadableRun(f"{run.path}: holds no run record (the run was cut short before W&B wrote it)")
    return run
