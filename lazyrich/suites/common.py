"""Pieces every suite shares: the learning-rate rule, run configs, configuration columns, tables.

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

from lazyrich import metrics, store
from lazyrich.suites.spec import Axis, Expectation, Figure, Measure
from lazyrich.tasks import Task

__all__ = [
    "Report",
    "Suite",
    "config_columns",
    "experiment_config",
    "flow_lr",
    "lam_config",
    "lam_seed_axes",
    "load_frames",
    "ok_rows",
    "zero_map_loss",
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


def lam_config(
    task: Mapping[str, Any],
    lam: float,
    params: Mapping[str, Any],
    s_max: float,
    *,
    t_max: float,
    align: bool = False,
    spacing: str | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """:func:`experiment_config` for one λ of a suite whose ``params`` hold ``seeds``, ``init_scale``, ``eta``,
    ``lr_max``, ``n_log`` and ``theory``; the step is :func:`flow_lr` for the task's largest singular value."""
    trainer = {"n_log": params["n_log"], **({"spacing": spacing} if spacing is not None else {})}
    return experiment_config(
        task,
        lam=lam,
        seeds=params["seeds"],
        lr=flow_lr(lam, s_max, params["eta"], params["lr_max"]),
        t_max=t_max,
        init={"scale": params["init_scale"], "align": align},
        trainer=trainer,
        theory=params["theory"],
        device=device,
    )


def lam_seed_axes(lam_meaning: str) -> tuple[Axis, Axis]:
    """The λ and seed axes that most suites sweep; ``lam_meaning`` says which init λ sets."""
    return Axis("lam", lam_meaning), Axis("seed", "init seed", (0, 1))


def config_columns(meta: pd.DataFrame) -> dict[str, np.ndarray]:
    """The configuration columns that open a suite table, from a batch's meta table: ``lam``, ``seed`` (int)
    and ``lr``, each (B,)."""
    return {"lam": meta["lam"].to_numpy(), "seed": meta["seed"].to_numpy(dtype=np.int64),
            "lr": meta["lr"].to_numpy()}


def zero_map_loss(task: Task) -> float:
    """The loss of the zero map on ``task`` (½ tr Σyy): where a network waits at the saddle W = 0."""
    zero = torch.zeros(task.n_out, task.n_in, dtype=torch.float64)
    return float(metrics.loss_from_product(zero, task.sigma_xx, task.sigma_yx, task.sigma_yy))


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
    """A benchmark suite, declared: ``units(params, device)`` lists its sweep, ``compute(unit, run_dir)`` runs
    one point; the rest states what :func:`lazyrich.suites.writeup.render` writes into summary.md.

    ``axes`` identify a configuration in suite.csv (``key``: the ones besides ``seed`` that sort it),
    ``phases`` name the training phases of one unit, ``measures`` every measured column and its theory
    column, ``expectations`` what docs/theory.md predicts (each a predicate over the table, see
    :mod:`lazyrich.suites.spec`), ``figures`` the figure callables, ``sections`` extra Markdown blocks after
    the table (table, suite folder → lines) and ``notes`` extra outcome lines (table → lines).
    """

    name: str
    description: str
    units: Callable[..., list]
    compute: Callable[..., Any]
    axes: tuple[Axis, ...]
    phases: tuple[str, ...]
    measures: tuple[Measure, ...]
    expectations: tuple[Expectation, ...]
    protocol: str
    prediction: str
    section: str = "§10"
    title: str = ""
    figures: tuple[Figure, ...] = ()
    sections: tuple[Callable[[pd.DataFrame, Path], list[str]], ...] = ()
    notes: tuple[Callable[[pd.DataFrame], list[str]], ...] = ()
    key: tuple[str, ...] = ("lam",)
    orders: Mapping[str, Sequence[str]] = field(default_factory=dict)  # sort order of text key columns

    @property
    def columns(self) -> tuple[str, ...]:
        """The headline columns of suite.csv (printed, compared): axes, then each headline measure beside its
        theory column."""
        out = [a.name for a in self.axes]
        for m in (m for m in self.measures if m.headline):
            out += [m.column] + ([m.theory] if m.theory else [])
        return tuple(dict.fromkeys(out))


def load_frames(suite_dir: Path, table: pd.DataFrame) -> pd.DataFrame:
    """The long metrics tables of the finished units listed in ``table`` (its ``unit`` column), joined."""
    ids = [
        u
        for u in table.get("unit", pd.Series(dtype=object)).dropna().unique()
        if (suite_dir / "runs" / str(u) / store.DONE).exists()
    ]
    frames = [pd.read_csv(suite_dir / "runs" / str(u) / store.METRICS_FILE).assign(unit=u) for u in ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of finished configurations (status ok)."""
    return table[table["status"] == "ok"] if "status" in table else table
