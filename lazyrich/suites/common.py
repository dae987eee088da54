"""Pieces every suite shares: the learning-rate rule, run configs, training from given weights, tables.

Nothing here is a metric: losses, thresholds and transfer scores come from :mod:`lazyrich.metrics`, and the
predictions from :mod:`lazyrich.theory`. Conventions follow docs/theory.md §1 (t = step·lr, float64).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import results
from lazyrich.device import resolve_device
from lazyrich.experiment import predict_theory
from lazyrich.tasks import Task
from lazyrich.train import train

__all__ = [
    "Report",
    "Suite",
    "experiment_config",
    "flow_lr",
    "load_frames",
    "markdown_table",
    "ok_rows",
    "phase_curve",
    "train_from",
]


def flow_lr(lam: float, s_max: float, eta: float, lr_max: float) -> float:
    """A GD step that follows gradient flow: η/√(λ² + 4s̃₁²), the fastest rate near convergence (§1), ≤ lr_max.

    GD tracks the flow when lr·max(|λ|, s̃₁) ≪ 1, so the step shrinks as |λ| grows; ``eta`` is the fraction
    of that fastest rate taken per step.
    """
    return min(float(lr_max), float(eta) / math.hypot(float(lam), 2.0 * float(s_max)))


def experiment_config(
    task: Mapping[str, Any],
    *,
    lam: float,
    seeds: Sequence[int],
    lr: float,
    t_max: float,
    init: Mapping[str, Any],
    trainer: Mapping[str, Any],
    theory: str,
    device: str = "auto",
) -> dict[str, Any]:
    """A :func:`lazyrich.experiment.run_experiment` config for one λ batched over ``seeds`` (no logger)."""
    return {
        "task": dict(task),
        "init": {"kind": "balanced", **dict(init), "lam": float(lam)},
        "model": {"depth": 2, "hidden": None, "activation": "none"},
        "trainer": {
            "n_log": 101,
            "spacing": "linear",
            "n_matrix": 5,
            "check_every": 10,
            **dict(trainer),
            "lr": float(lr),
            "t_max": float(t_max),
            "batch_size": None,
            "progress": False,
        },
        "theory": {"name": theory},
        "seed": [int(s) for s in seeds],
        "device": device,
    }


def phase_curve(
    frame: pd.DataFrame, net: int, phase: int | None, column: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(t since the start of ``phase``, ``column``) of network ``net`` as float64 tensors (T,)."""
    part = frame[frame["net"] == net]
    if phase is not None:
        part = part[part["phase"] == phase]
    part = part.sort_values("t")
    t = torch.tensor(part["t"].to_numpy(), dtype=torch.float64)
    return t - t[0], torch.tensor(part[column].to_numpy(dtype=np.float64), dtype=torch.float64)


def train_from(
    task: Task,
    weights: Sequence[torch.Tensor],
    meta: pd.DataFrame,
    trainer: Mapping[str, Any],
    theory_name: str,
    device: str = "auto",
):
    """Train the batch ``weights`` [W1 (B, Nh, Ni), W2 (B, No, Nh)] on ``task`` and predict it.

    For suites that start from weights no init config describes (a re-factorised pretrained product).
    ``meta`` has one row per network (lam, seed, lr, …); ``trainer`` holds lr, t_max, n_log, spacing.
    Returns (frame, trajectory, prediction or None, notes as one text); ``frame`` as
    :func:`lazyrich.results.to_frame`.
    """
    dev = resolve_device(device)
    task = task.to(dev)
    traj = train(
        task,
        [w.to(dev) for w in weights],
        meta["lr"].to_numpy(),
        t_max=float(trainer["t_max"]),
        n_log=int(trainer.get("n_log", 101)),
        spacing=trainer.get("spacing", "linear"),
        n_matrix=int(trainer.get("n_matrix", 5)),
        progress=False,
    )
    prediction, notes = predict_theory(theory_name, task, traj.init_weights, traj.t)
    return results.to_frame(traj, meta, prediction), traj, prediction, "\n".join(notes)


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, digits: int = 4, index: bool = False) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (floats to ``digits`` significant digits, NaN as –)."""
    if index:
        frame = frame.reset_index()
    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


@dataclass
class Report:
    """A suite's write-up: Markdown (what was measured, the table, the outcome against docs/theory.md §10), its
    figures, a one-line verdict and the suite.csv columns worth printing; the runner fills ``seconds``."""

    markdown: str
    figures: list[Path] = field(default_factory=list)
    verdict: str = ""
    columns: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Suite:
    """A benchmark suite: ``units(params, device)`` lists its sweep, ``compute(unit, run_dir)`` runs one
    point, ``report(table, suite_dir)`` writes figures and returns the :class:`Report`. ``key`` names the
    columns that identify a configuration in suite.csv (besides ``seed``)."""

    name: str
    description: str
    units: Callable[..., list]
    compute: Callable[..., Any]
    report: Callable[[pd.DataFrame, Path], Report]
    key: tuple[str, ...] = ("lam",)
    orders: Mapping[str, Sequence[str]] = field(default_factory=dict)  # sort order of text key columns
    columns: tuple[str, ...] = ()  # the headline columns of suite.csv (printed, compared)


def load_frames(suite_dir: Path, table: pd.DataFrame) -> pd.DataFrame:
    """The long metrics tables of the finished units listed in ``table`` (its ``unit`` column), joined."""
    ids = [
        u
        for u in table.get("unit", pd.Series(dtype=object)).dropna().unique()
        if (suite_dir / "runs" / str(u) / results.DONE).exists()
    ]
    frames = [pd.read_csv(suite_dir / "runs" / str(u) / results.METRICS_FILE).assign(unit=u) for u in ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of finished configurations (status ok)."""
    return table[table["status"] == "ok"] if "status" in table else table
