"""One unit's network table: every network of a finished run folder, its axis values, the simulation's measures
and, for each theory of the atlas, its measures, its agreement and its domain (:mod:`~lazyrich.atlas.measures`,
:mod:`~lazyrich.atlas.domain`).

The simulation is read back from the run folder block by block (:func:`block_size` networks, only the columns
needed), and the theories predict each block from the same initial weights the run started from
(:func:`~lazyrich.experiment.run.make_plan` rebuilds them: a network's weights depend only on its own seed and
batch values). The run's own theory, when it is the atlas's first, is read from the folder instead of predicted
again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from lazyrich import metrics
from lazyrich.atlas.domain import domain_of, predict_block
from lazyrich.atlas.measures import curve_measures, gaps, lam_drift
from lazyrich.atlas.sharpness import sharpness
from lazyrich.atlas.spec import BATCH_AXES, Axis
from lazyrich.experiment.batch import options_of
from lazyrich.experiment.run import Plan
from lazyrich.results.curves import Curves, from_frame
from lazyrich.store import SUMMARY_FILE
from lazyrich.store.storage import read_metrics

__all__ = ["BLOCK_POINTS", "block_size", "network_rows"]

BLOCK_POINTS = 8192 * 21
"""Network × log points read back and predicted at once: it bounds the memory of the atlas's own step (8192
networks a block at 21 log points; 65 536 networks at 101 points took 3.0 GiB in blocks of 8192)."""


def block_size(n_log: int) -> int:
    """Networks a block holds at ``n_log`` log points (:data:`BLOCK_POINTS` of them, at least 64 networks)."""
    return max(64, BLOCK_POINTS // max(1, n_log))

_CURVES = ("loss", "kernel_distance", "test_loss", "lam_hat_1")


def _read_block(unit_dir: Path, names: Sequence[str], start: int, stop: int) -> pd.DataFrame:
    wanted = ["net", "t", *(f"{p}/{c}" for p in ("sim", "theory") for c in _CURVES)]
    columns = [c for c in wanted if c in names]
    return read_metrics(unit_dir / "metrics.parquet", columns=columns,
                        filters=[("net", ">=", start), ("net", "<", stop)])


def _floor(plan: Plan) -> float:
    task = plan.first_task
    rank = min(min(w.shape[-2:]) for w in plan.weights)
    return float(metrics.loss_floor(task.sigma_xx, task.sigma_yx, task.sigma_yy, rank=rank))


def _theory_columns(name: str, sim: Curves, recorded: Curves | None, plan: Plan, rows: slice, floor: float,
                    options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``<name>/…`` columns of one block: measures and gaps where predictable, NaN elsewhere, the domain."""
    weights = [w[rows] for w in plan.weights]
    domain = domain_of(name, plan.first_task, weights, options, plan.training.activation,
                       plan.training.batch_size is None)
    keep = np.flatnonzero(domain.predictable)
    theory = recorded.select(keep) if recorded is not None else predict_block(name, plan.first_task, weights,
                                                                                sim.t, options, keep)
    out: dict[str, Any] = {f"{name}/in_domain": domain.inside, f"{name}/domain": domain.reason}
    if theory is None:
        return out
    for key, value in gaps(sim.select(keep), theory, floor).items():
        column = np.full(sim.batch, np.nan)
        column[keep] = value
        out[f"{name}/{key}"] = column
    return out


def _axis_values(axes: Sequence[Axis], unit_values: Mapping[str, Any], meta: pd.DataFrame) -> dict[str, Any]:
    return {a.column: (meta[BATCH_AXES[a.key]].to_numpy() if a.batch else np.full(len(meta), unit_values[a.key],
                                                                                 dtype=object))
            for a in axes}


def _sharpness(plan: Plan, meta: pd.DataFrame, rows: slice) -> dict[str, np.ndarray]:
    task, options = plan.first_task, options_of(meta)
    s = sharpness([w[rows] for w in plan.weights], task.X, task.Y, plan.training.activation,
                  options["output_scale"], options["weight_decay"])
    return {"sharpness": s, "lr_S_over_2": meta["lr"].to_numpy() * s / 2}


def network_rows(unit_dir: Path, plan: Plan, theories: Sequence[str], run_theory: str | None, axes: Sequence[Axis],
                 unit_values: Mapping[str, Any], unit: str, *, with_sharpness: bool = False) -> pd.DataFrame:
    """The network table of the finished run folder ``unit_dir`` (built from ``plan``): one row per network with
    ``unit``, the ``axes``' values, seed, status, the simulation's measures and each theory's columns.
    ``run_theory`` is the theory the run itself recorded (read back instead of predicted). ``with_sharpness``
    adds S at init and lr·S/2 (:mod:`~lazyrich.atlas.sharpness`)."""
    names = pq.ParquetFile(unit_dir / "metrics.parquet").schema_arrow.names
    floor, parts, size = _floor(plan), [], block_size(plan.training.n_log)
    for start in range(0, len(plan.meta), size):
        rows = slice(start, min(start + size, len(plan.meta)))
        meta = plan.meta.iloc[rows].reset_index(drop=True)
        frame = _read_block(unit_dir, names, rows.start, rows.stop)
        sim = from_frame(frame, "sim")
        options = {"lr": meta["lr"].to_numpy(), "dtype": plan.training.dtype, **options_of(meta)}
        block: dict[str, Any] = {"unit": unit, **_axis_values(axes, unit_values, meta),
                                 "net": np.arange(rows.start, rows.stop), "seed": meta["seed"].to_numpy(),
                                 "lr": meta["lr"].to_numpy(), **curve_measures(sim, floor), "lam_drift": lam_drift(sim)}
        if with_sharpness:
            block.update(_sharpness(plan, meta, rows))
        for name in theories:
            recorded = from_frame(frame, "theory") if name == run_theory and "theory/loss" in frame else None
            block.update(_theory_columns(name, sim, recorded, plan, rows, floor, options))
        parts.append(pd.DataFrame(block))
        del frame, sim
    out = pd.concat(parts, ignore_index=True)
    out["diverged"] = ~np.isfinite(out["loss_final"].to_numpy(dtype=float))
    return _with_balance_law(out, unit_dir)


def _with_balance_law(out: pd.DataFrame, unit_dir: Path) -> pd.DataFrame:
    """The run summary's ``lam_law_gap`` (λ̂(t) against λ̂(0)·e^{−2γt}, with weight decay) beside each network."""
    summary = pd.read_csv(unit_dir / SUMMARY_FILE, usecols=lambda c: c in ("net", "lam_law_gap"))
    if "lam_law_gap" in summary:
        out["lam_law_gap"] = summary.set_index("net")["lam_law_gap"].reindex(out["net"]).to_numpy()
    return out

