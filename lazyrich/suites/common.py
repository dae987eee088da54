"""Pieces every suite shares: the learning-rate rule, the run of one λ, configuration columns, tables.

A suite's runs are :class:`~lazyrich.config.run.RunConfig` objects built from the schema defaults by
:func:`run_config`, which replaces only the fields a suite sets (:func:`suite_run`: its seeds, log grid and
theory; :func:`lam_run`: also its fresh init and the flow-limited step). Nothing here is a metric: losses,
thresholds and transfer scores come from :mod:`lazyrich.metrics`, and the predictions from :mod:`lazyrich.theory`.
Every loss threshold of a suite is taken above the loss floor of the phase's task at the network's rank
(:func:`loss_floor`, :func:`excess`), as the summary of a plain run takes ``time_to_1pct``: a task that cannot be
fit exactly never reaches a fraction of its starting loss, only of its starting excess over that floor.
Conventions follow docs/theory.md §1 (t = step·lr, float64).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import metrics, results
from lazyrich.config.run import InitConfig, ModelConfig, RunConfig, TheoryConfig, TrainerConfig
from lazyrich.config.suites import FreshInitSuite, SuiteParams
from lazyrich.experiment import build_task
from lazyrich.results.curves import Curves
from lazyrich.suites.spec import Axis, Expectation, Figure, Measure
from lazyrich.tasks import Task, TaskSequence

__all__ = [
    "Report",
    "Suite",
    "config_columns",
    "excess",
    "flow_lr",
    "flow_step",
    "lam_run",
    "lam_seed_axes",
    "load_frames",
    "loss_floor",
    "ok_rows",
    "run_config",
    "suite_run",
    "top_singular_value",
    "zero_map_loss",
]


def flow_lr(lam: float, s_max: float, eta: float, lr_max: float) -> float:
    """A GD step that follows gradient flow: η/√(λ² + 4s̃₁²), the fastest rate near convergence (§1), ≤ lr_max.

    GD tracks the flow when lr·max(|λ|, s̃₁) ≪ 1, so the step shrinks as |λ| grows; ``eta`` is the fraction
    of that fastest rate taken per step.
    """
    return min(float(lr_max), float(eta) / math.hypot(float(lam), 2.0 * float(s_max)))


@functools.lru_cache(maxsize=256)
def _top_singular_value(task: str) -> float:
    built = build_task(json.loads(task))
    return max(t.top_singular_value for t in (built.tasks if isinstance(built, TaskSequence) else [built]))


def top_singular_value(task: Mapping[str, Any]) -> float:
    """s̃₁ of the task config ``task`` in whitened units (:attr:`lazyrich.tasks.Task.top_singular_value`); of a
    task sequence, the largest over its phases. Each config is built once per process."""
    return _top_singular_value(json.dumps(dict(task), sort_keys=True))


def flow_step(params: SuiteParams, lam: float, task: Mapping[str, Any]) -> float:
    """The suite's step at ``lam`` on the task config ``task``: :func:`flow_lr` with the suite's ``eta`` and
    ``lr_max`` and the task's :func:`top_singular_value`."""
    return flow_lr(lam, top_singular_value(task), params.eta, params.lr_max)


_GROUPS = {"init": InitConfig, "model": ModelConfig, "trainer": TrainerConfig}


def run_config(task: Mapping[str, Any], **fields: Any) -> RunConfig:
    """The run of ``task`` with the schema defaults (:mod:`lazyrich.config.run`) except ``fields``, each a field
    of :class:`~lazyrich.config.run.InitConfig`, :class:`~lazyrich.config.run.ModelConfig`,
    :class:`~lazyrich.config.run.TrainerConfig` or :class:`~lazyrich.config.run.RunConfig` by name (``lam``,
    ``lr``, ``hidden``, ``seed``, …), or ``theory`` (the theory's name). A name of none of them is a TypeError.
    :func:`~lazyrich.experiment.run_experiment` checks the values."""
    groups = {}
    for group, schema in _GROUPS.items():
        names = {f.name for f in dataclasses.fields(schema)} & set(fields)
        groups[group] = dataclasses.replace(schema(), **{name: fields.pop(name) for name in names})
    theory = TheoryConfig(**({"name": fields.pop("theory")} if "theory" in fields else {}))
    return RunConfig(task=dict(task), **groups, theory=theory, **fields)


def suite_run(params: SuiteParams, task: Mapping[str, Any], *, lam: float, lr: float, t_max: float, device: str,
              **fields: Any) -> RunConfig:
    """The run of one λ of a suite on ``task``, batched over the suite's seeds: its log grid (``n_log``,
    ``n_matrix``) and theory, no progress bar of its own; ``fields`` (:func:`run_config`'s) replace more."""
    return run_config(task, **{"lam": float(lam), "lr": float(lr), "t_max": float(t_max), "n_log": params.n_log,
                               "n_matrix": params.n_matrix, "theory": params.theory, "seed": list(params.seeds),
                               "device": device, "progress": False, **fields})


def lam_run(params: FreshInitSuite, task: Mapping[str, Any], lam: float, t_max: float, device: str,
            **fields: Any) -> RunConfig:
    """:func:`suite_run` from a fresh λ-balanced init of size ``init_scale``, at the suite's :func:`flow_step`
    for ``task``."""
    return suite_run(params, task, lam=lam, lr=flow_step(params, lam, task), t_max=t_max, device=device,
                     scale=params.init_scale, **fields)


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


def loss_floor(task: Task, weights: Sequence[torch.Tensor]) -> float:
    """The loss floor of ``task`` for the networks of ``weights`` ([W1, …, WL], each (B, out, in)): the lowest loss
    a linear map of the networks' rank (their narrowest layer) reaches, :func:`lazyrich.metrics.loss_floor`. 0 on
    a task a network can fit exactly; above 0 on a noisy or rank-limited one."""
    rank = min(min(w.shape[-2:]) for w in weights)
    return float(metrics.loss_floor(task.sigma_xx, task.sigma_yx, task.sigma_yy, rank=rank))


def excess(curves: Curves, floor: float, name: str = "loss") -> Curves:
    """``curves`` (the simulation's or a theory's) with the curve ``name`` replaced by its excess over ``floor``
    (B, T): any measure of :mod:`lazyrich.results.measures` applied to it is taken above the floor, the same way
    for both sources."""
    return dataclasses.replace(curves, curves={**curves.curves, name: curves[name] - floor})


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
    """A benchmark suite, declared: ``units(params, device)`` lists its sweep from the suite's schema object
    (:mod:`lazyrich.config.suites`), ``compute(unit, run_dir)`` runs one point; the rest states what
    :func:`lazyrich.suites.writeup.render` writes into summary.md.

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
    """The long metrics tables of the finished units listed in ``table`` (its ``unit`` column), joined, with a
    ``unit`` column: read by :func:`lazyrich.results.load`, so a unit that fails verification is left out and
    named in a :class:`~lazyrich.results.ResultsWarning`."""
    units = set(ok_rows(table).get("unit", pd.Series(dtype=object)).dropna().astype(str))
    if not units or not (suite_dir / "runs").is_dir():
        return pd.DataFrame()
    try:
        frame = results.load(suite_dir / "runs").rename(columns={"run": "unit"})
    except FileNotFoundError:  # no unit finished intact: each one is named in a warning
        return pd.DataFrame()
    return frame[frame["unit"].isin(units)].reset_index(drop=True)


def ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of finished configurations (status ok)."""
    return table[table["status"] == "ok"] if "status" in table else table
