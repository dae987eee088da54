"""Mirror results to Weights & Biases: one W&B run per network (configuration × seed), ``t`` as the x-axis.

Called only after the local files are written, so W&B never holds anything the disk does not. Each network's run
has a stable id (sweep, unit, seed) and ``resume="allow"``: re-running into the same folder updates the same run,
and its new offline run replaces the earlier one (:func:`lazyrich.tracking.mirror.supersede`). Its history holds
``t``, ``step``, ``phase`` and the ``sim/<metric>`` and ``theory/<metric>`` columns; its summary the final values
(``final/sim/…``, ``final/theory/…``), ``status``, ``agreement/loss_max_rel_err`` and its row of summary.csv or,
for a suite, of suite.csv (``success``, ``time_to_reverse``, …); its config's ``theory`` is the theory that ran.

The layout is a function of the command alone (:func:`choose_layout`): with ``logger.wandb.layout=auto``, one
run per network up to :data:`NETWORK_RUNS_MAX` networks in a run folder (or a suite unit), else one run per
configuration (seeds averaged, ``…_std``; the rows' metrics as seed means) plus, for ``lazyrich run``, one run
whose ``networks`` table holds every network's summary. Once every run of a unit has finished, the unit's
mirror is marked complete (:func:`lazyrich.tracking.mirror.mark_mirrored`). Every W&B error is a warning: a W&B
failure never costs the local results. An OSError while W&B writes its files (a full disk, a read-only folder)
stops the mirror of that call with one warning, rather than one per run, and the tracebacks W&B's own loggers would
print for each record they fail to write are not printed: the local files are the source of truth.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lazyrich.config.run import WANDB_LAYOUTS as LAYOUTS
from lazyrich.config.run import WandbConfig
from lazyrich.results import max_rel_error
from lazyrich.tracking.connect import resolve_mode, start_run
from lazyrich.tracking.mirror import mark_mirrored, supersede
from lazyrich.tracking.schema import flatten, network_config, run_id, run_name, tags

log = logging.getLogger(__name__)

__all__ = ["LAYOUTS", "NETWORK_RUNS_MAX", "Target", "choose_layout", "flatten", "log_networks", "log_table_run",
           "plan_layout"]

NETWORK_RUNS_MAX = 64
"""``layout=auto`` logs one W&B run per network up to this many networks in a run folder (or a suite unit), and
one run per configuration beyond. Measured offline, a per-network run costs 0.16–0.25 s, so 64 of them ≈ 10–16 s."""

_ROW_SKIP = {"net", "unit", "status", "suite", "seed", "run"}
"""Columns of summary.csv / suite.csv rows that name a network rather than measure it."""


@dataclass
class Target:
    """Where a sweep's W&B runs go and what they share: group (the sweep), job type, base config, unit; ``theory``
    the theory that ran (it replaces the configured name, e.g. ``auto``, in each run's config)."""

    group: str
    job_type: str
    config: Mapping[str, Any]
    unit: str
    run_dir: Path
    project: str = "lazyrich"
    entity: str | None = None
    tags: Sequence[str] = ()
    layout: str = "auto"
    mode: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    theory: str | None = None

    @classmethod
    def from_logger(cls, wandb: WandbConfig, *, layout: str | None = None, **fields: Any) -> Target:
        """A target from the ``logger.wandb`` settings (mode, project, entity, group, tags, layout; ``layout``
        replaces the configured one) and ``fields``; the configured group, if any, replaces ``fields``' group."""
        group = wandb.group or fields.pop("group")
        fields.pop("group", None)
        return cls(group=str(group), project=wandb.project, entity=wandb.entity, tags=list(wandb.tags),
                   layout=layout or wandb.layout, mode=wandb.mode, **fields)


def choose_layout(n_networks: int, n_configurations: int, layout: str = "auto") -> tuple[str, str]:
    """(``network`` or ``configuration``, why) for ``n_networks`` networks in ``n_configurations``
    configurations: ``layout`` unless auto; else per network when each configuration has one network (the
    layouts coincide) or there are at most :data:`NETWORK_RUNS_MAX` networks, per configuration beyond. A pure
    function of the command: two sweeps of one size always get one layout."""
    if layout != "auto":
        return layout, f"W&B layout {layout} (set by logger.wandb.layout)"
    if n_networks <= max(n_configurations, NETWORK_RUNS_MAX):
        return "network", f"W&B layout network: {n_networks} networks, one W&B run each"
    return "configuration", (f"W&B layout configuration: {n_networks} networks > {NETWORK_RUNS_MAX}, so one W&B "
                             f"run per configuration ({n_configurations}, seeds averaged) instead of one per "
                             f"network; set logger.wandb.layout=network to force per-network runs.")


def plan_layout(frame: pd.DataFrame, keys: Sequence[str], layout: str = "auto") -> str:
    """The layout for ``frame`` (:func:`choose_layout` on its networks and configurations, ``keys`` naming a
    configuration besides ``seed``); a fallback to per-configuration runs is logged as a warning."""
    keys = [k for k in keys if k in frame and k != "seed"]
    n_configs = frame.groupby(keys, dropna=False).ngroups if keys else 1
    chosen, why = choose_layout(int(frame["net"].nunique()), n_configs, layout)
    (log.warning if layout == "auto" and chosen == "configuration" else log.debug)(why)
    return chosen


def _history(part: pd.DataFrame, std: pd.DataFrame | None = None) -> list[dict[str, float]]:
    cols = [c for c in ("t", "step", "phase") if c in part] + [c for c in part if c.startswith(("sim/", "theory/"))]
    records = []
    for i, row in enumerate(part[cols].itertuples(index=False)):
        record = {k: float(v) for k, v in zip(cols, row, strict=True) if pd.notna(v)}
        if std is not None:
            record.update({f"{k}_std": float(v) for k, v in std.iloc[i].items() if pd.notna(v)})
        records.append(record)
    return records


def _final(part: pd.DataFrame) -> dict[str, Any]:
    """Final values, status and agreement of the networks in ``part`` (means over networks)."""
    metric_cols = [c for c in part if c.startswith(("sim/", "theory/"))]
    final = part.sort_values("t").groupby("net").tail(1)
    out: dict[str, Any] = {f"final/{c}": float(final[c].mean()) for c in metric_cols if final[c].notna().any()}
    out["status"] = ",".join(sorted(set(part["status"].astype(str)))) if "status" in part else "ok"
    if "theory/loss" in part and part["theory/loss"].notna().any():
        out["agreement/loss_max_rel_err"] = max(
            max_rel_error(g["sim/loss"].to_numpy(), g["theory/loss"].to_numpy()) for _, g in part.groupby("net"))
    return out


def _own_row(rows: pd.DataFrame | None, net: Any, seed: Any, index: int, n_nets: int,
             skip: set[str]) -> dict[str, Any]:
    """The row of ``rows`` (summary.csv or a unit's suite.csv rows) that belongs to one network: by ``net``, else
    by ``seed`` when that is unique, else by position when there is one row per network; {} otherwise."""
    if rows is None or not len(rows):
        return {}
    for column, value in (("net", net), ("seed", seed)):
        if column in rows and (rows[column] == value).sum() == 1:
            row = rows[rows[column] == value].iloc[0]
            break
    else:
        if len(rows) != n_nets:
            return {}
        row = rows.iloc[index]
    return {k: v.item() if hasattr(v, "item") else v for k, v in row.items()
            if k not in skip and not (isinstance(v, float) and math.isnan(v))}


def _rows_of(rows: pd.DataFrame | None, part: pd.DataFrame, point: Mapping[str, Any],
             varying: set[str]) -> pd.DataFrame | None:
    """The rows of ``rows`` (summary.csv, or a unit's suite.csv rows) that belong to the networks of ``part``, one
    configuration: by ``net``, else by the configuration's values; None where a varying key is not in the rows."""
    if rows is None or not len(rows):
        return None
    if "net" in rows and "net" in part:
        return rows[rows["net"].isin(part["net"].unique())]
    if varying - set(rows.columns):
        return None  # several configurations, and nothing in the rows to tell which is whose
    mask = np.ones(len(rows), dtype=bool)
    for key, value in point.items():
        if key in rows:
            mask &= rows[key].isna().to_numpy() if pd.isna(value) else (rows[key] == value).to_numpy()
    return rows[mask]


def _seed_means(rows: pd.DataFrame | None, skip: set[str]) -> dict[str, Any]:
    """One configuration's rows as summary values: numbers as seed means (a bool: the fraction of seeds where it
    holds), text as its one value (or the distinct values, comma-joined)."""
    out: dict[str, Any] = {}
    for column in [] if rows is None else [c for c in rows if c not in skip]:
        values = rows[column].dropna().tolist()
        if not values:
            continue
        if all(isinstance(v, bool | int | float | np.number | np.bool_) for v in values):
            out[column] = float(np.mean(np.asarray(values, dtype=float)))
        else:
            out[column] = ",".join(sorted({str(v) for v in values}))
    return out


def _theory_of(row: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """The config's ``theory``: the row's own (the theory that ran), else the target's, else none given."""
    ran = row.get("theory") if isinstance(row.get("theory"), str) else target.theory
    return {"theory": ran} if ran else {}


class _Stopped(Exception):
    """W&B could not write its files (an OSError that is not the network's): the rest of the mirror is skipped."""


@contextlib.contextmanager
def _mirroring() -> Iterator[None]:
    """W&B calls inside: the first file-system OSError stops them all with one warning; and a log record that W&B's
    loggers cannot write (their files on the same full disk) is dropped, not printed as a traceback."""
    quiet, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        yield
    except _Stopped as stop:
        warnings.warn(str(stop), stacklevel=4)
    finally:
        logging.raiseExceptions = quiet


def _guarded(target: Target, *, rid: str, name: str, config: Mapping[str, Any], fill: Callable[[Any], None],
             light: bool = True) -> str | None:
    """Open the W&B run ``rid`` (``resume="allow"``), let ``fill(run)`` log into it, finish it, and delete the
    earlier offline runs of ``rid`` beside it; any W&B error becomes a warning, and a file-system OSError raises
    :class:`_Stopped` (one warning from :func:`_mirroring`). Returns the run's directory, or None (W&B disabled or
    failed)."""
    try:
        run = start_run(target.mode, light=light, project=target.project, entity=target.entity,
                        group=target.group, job_type=target.job_type, name=name, id=rid, resume="allow",
                        # Absolute: W&B's service, started once per process, resolves a relative dir against
                        # the working directory it started in, not the caller's current one.
                        dir=str(Path(target.run_dir).resolve()), config=dict(config),
                        tags=[*tags(config), *target.tags])
        if run is None:
            return None
        fill(run)
        directory = str(Path(run.dir).parent)
        run.finish()
    except OSError as err:
        if isinstance(err, ConnectionError | TimeoutError):
            warnings.warn(f"W&B logging failed for {name!r} ({err}); local results in {target.run_dir} are "
                          f"complete.", stacklevel=3)
            return None
        raise _Stopped(f"W&B logging stopped at {name!r}: {err}; the local files in {target.run_dir} are complete "
                       f"and are the results (W&B only mirrors them).") from None
    except Exception as err:  # noqa: BLE001 — any W&B failure is reported, never raised
        warnings.warn(f"W&B logging failed for {name!r} ({err}); local results in {target.run_dir} are complete.",
                      stacklevel=3)
        return None
    supersede(directory)
    return directory


def _write_run(target: Target, *, rid: str, name: str, config: Mapping[str, Any], history: list[dict[str, float]],
               summary: Mapping[str, Any]) -> str | None:
    """One network's (or configuration's) run: history against ``t`` and the summary."""
    def fill(run) -> None:
        run.define_metric("t")
        for prefix in ("sim/*", "theory/*", "step", "phase"):
            run.define_metric(prefix, step_metric="t")
        for record in history:
            run.log(record)
        run.summary.update(dict(summary))

    return _guarded(target, rid=rid, name=name, config=config, fill=fill)


def log_networks(frame: pd.DataFrame, target: Target, keys: Sequence[str], *, rows: pd.DataFrame | None = None,
                 elapsed: float | None = None, network_table: bool = True) -> list[str]:
    """Log ``frame`` (see :func:`lazyrich.results.to_frame`) as one W&B run per network, or per configuration
    when :func:`plan_layout` says so (then, if ``network_table``, one more run with the ``networks`` table), and
    mark the unit's mirror complete (:func:`lazyrich.tracking.mirror.mark_mirrored`) once every run has finished.

    ``keys`` are the columns naming a configuration (besides ``seed``); ``rows`` the run's summary.csv or the
    unit's suite.csv rows, whose metrics go into the summaries (seed means per configuration); ``elapsed``, if
    given, the seconds the logged work took (for the log line only). Returns the W&B run directories written
    (none if W&B is disabled, or stopped by a file-system error: one warning).
    """
    if resolve_mode(target.mode) == "disabled":
        return []
    start = time.perf_counter()
    keys = [k for k in keys if k in frame and k != "seed"]
    layout = plan_layout(frame, keys, target.layout)
    attempted: list[str | None] = [None]  # stopped before any run: nothing written, the mirror is not complete
    with _mirroring():
        if layout == "configuration":
            attempted = _log_configurations(frame, target, keys, rows, network_table)
        else:
            attempted = _log_each_network(frame, target, keys, rows)
    written = [d for d in attempted if d]
    if written and len(written) == len(attempted):
        mark_mirrored(target.run_dir, written, layout)
    seconds = time.perf_counter() - start
    total = (f", {seconds / (elapsed + seconds):.0%} of the {elapsed + seconds:.1f} s taken by them and the work "
             f"they log") if elapsed else ""
    (log.info if len(written) > 1 else log.debug)(f"W&B: {len(written)} runs ({layout} layout) in {seconds:.1f} s"
                                                  f"{total}")
    return written


def _log_each_network(frame: pd.DataFrame, target: Target, keys: list[str],
                      rows: pd.DataFrame | None) -> list[str | None]:
    """One run per network: its own history and summary (and its row of ``rows``)."""
    nets = list(frame.groupby("net", sort=True))
    shown = [k for k in keys if frame[k].nunique(dropna=False) > 1] or keys[:1]
    attempted = []
    for index, (net, part) in enumerate(nets):
        point = {k: part[k].iloc[0] for k in [*keys, "seed"] if k in part}
        seed = point.get("seed")
        own = _own_row(rows, net, seed, index, len(nets), {*point, *_ROW_SKIP})
        attempted.append(_write_run(
            target, rid=run_id(target.group, f"{target.unit}/{index}", seed),
            name=run_name({k: point[k] for k in [*shown, "seed"] if k in point}),
            config={**network_config(target.config, point), **target.extra, **_theory_of(own, target), "net": index,
                    "unit": target.unit},
            history=_history(part.sort_values("t")), summary={**_final(part), **own}))
    return attempted


def _log_configurations(frame: pd.DataFrame, target: Target, keys: list[str], rows: pd.DataFrame | None,
                        network_table: bool) -> list[str | None]:
    """One run per configuration (seeds averaged, ``…_std``; its rows' metrics as seed means), plus, if
    ``network_table``, the ``networks`` table run."""
    attempted = []
    metric_cols = [c for c in frame if c.startswith(("sim/", "theory/"))]
    varying = {k for k in keys if frame[k].nunique(dropna=False) > 1}
    for values, part in (frame.groupby(keys, sort=True, dropna=False) if keys else [((), frame)]):
        point = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
        by_t = part.groupby([c for c in ("phase", "step") if c in part], sort=True)
        mean = by_t[["t", *metric_cols]].mean().reset_index()
        n_seeds = int(part["seed"].nunique()) if "seed" in part else 1
        std = by_t[metric_cols].std().reset_index(drop=True) if n_seeds > 1 else None
        own = _seed_means(_rows_of(rows, part, point, varying), {*point, *_ROW_SKIP})
        attempted.append(_write_run(
            target, rid=run_id(target.group, f"{target.unit}/{run_name(point)}"), name=run_name(point),
            history=_history(mean, std), summary={**_final(part), **own},
            config={**network_config(target.config, point), **target.extra, **_theory_of(own, target),
                    "n_seeds": n_seeds, "unit": target.unit}))
    if network_table and rows is not None and len(rows):
        table = rows.reset_index(drop=True)
        attempted.append(log_table_run(target, "networks", table, name=f"networks {target.unit}"))
    return attempted


def as_table(frame: pd.DataFrame):
    """``frame`` as a ``wandb.Table`` (text columns as str, missing values as None)."""
    import wandb

    clean = frame.copy()
    for col in clean.columns:
        if clean[col].dtype == object:
            clean[col] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                          for v in clean[col]]
    return wandb.Table(dataframe=clean)


def log_table_run(target: Target, key: str, table: pd.DataFrame, *, name: str,
                  images: Mapping[str, Path] | None = None, files: Sequence[Path] = (),
                  summary: Mapping[str, Any] | None = None) -> str | None:
    """One sweep- or suite-level run holding ``table`` as the ``wandb.Table`` ``key``, ``images`` as
    ``wandb.Image`` (key → PNG) and ``files`` saved beside it (e.g. summary.md)."""
    import wandb

    def fill(run) -> None:
        run.log({key: as_table(table), **{k: wandb.Image(str(p)) for k, p in (images or {}).items()}})
        for path in files:
            run.save(str(path), base_path=str(Path(path).parent), policy="now")
        run.summary.update({**dict(summary or {}), f"{key}_rows": len(table)})

    config = {**network_config(target.config, {}), **target.extra, **_theory_of({}, target), "unit": target.unit}
    with _mirroring():
        return _guarded(target, rid=run_id(target.group, f"{target.unit}/{key}"), name=name, config=config,
                        fill=fill, light=False)
    return None  # stopped by a file-system error (one warning)
