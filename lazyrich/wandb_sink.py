"""Mirror a run's table to Weights & Biases: one W&B run per configuration, seeds averaged, t as the x-axis.

W&B is offline unless ``WANDB_MODE`` says otherwise (the CLI sets ``offline`` when it is unset; tests use
``disabled``). The local files are written before anything here runs, and every W&B error is caught and reported
as a warning, so a W&B failure never loses metrics. Keys are stable: ``sim/<metric>``, ``theory/<metric>``, ``t``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lazyrich.results import max_rel_error

__all__ = ["flatten", "log_to_wandb"]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → flat ``{"a.b": value}`` (lists kept as values), the form W&B filters and groups on."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def log_to_wandb(frame: pd.DataFrame, *, config: Mapping[str, Any], group: str, run_dir: str | Path,
                 config_columns: Sequence[str], project: str = "lazyrich", entity: str | None = None,
                 mode: str | None = None, tags: Sequence[str] = ()) -> list[str]:
    """Log ``frame`` (see :func:`lazyrich.results.to_frame`) as one W&B run per value of ``config_columns``.

    Rows that differ only in ``seed`` go to the same W&B run as their mean (and ``…_std`` when there are several
    seeds). Returns the W&B run directories written; returns [] with a warning if W&B fails or is disabled.
    """
    mode = mode or os.environ.get("WANDB_MODE", "offline")
    if mode == "disabled":
        return []
    try:
        import wandb
    except Exception as err:  # wandb is a dependency, but a broken install must not cost the local results
        warnings.warn(f"W&B logging skipped: cannot import wandb ({err}). Local metrics are complete.", stacklevel=2)
        return []
    keys = [c for c in config_columns if c in frame and c != "seed"]
    metric_cols = [c for c in frame.columns if c.startswith(("sim/", "theory/"))]
    written = []
    groups = frame.groupby(keys, sort=True, dropna=False) if keys else [((), frame)]
    for values, part in groups:
        values = values if isinstance(values, tuple) else (values,)
        point = dict(zip(keys, values, strict=True))
        name = ",".join(f"{k}={v}" for k, v in point.items()) or "run"
        by_t = part.groupby(["phase", "step"] if "phase" in part else ["step"], sort=True)
        mean = by_t[["t", *metric_cols]].mean()
        n_seeds = int(part["seed"].nunique()) if "seed" in part else 1
        std = by_t[metric_cols].std() if n_seeds > 1 else None
        try:
            run = wandb.init(project=project, entity=entity, group=group, name=name, dir=str(run_dir),
                             config={**flatten(config), **point, "n_seeds": n_seeds},
                             mode=mode, tags=list(tags), reinit="create_new")
            run.define_metric("t")
            run.define_metric("sim/*", step_metric="t")
            run.define_metric("theory/*", step_metric="t")
            for i, (_, row) in enumerate(mean.iterrows()):
                record = {k: float(v) for k, v in row.items() if pd.notna(v)}
                if std is not None:
                    record.update({f"{k}_std": float(v) for k, v in std.iloc[i].items() if pd.notna(v)})
                run.log(record)
            final = part.sort_values("t").groupby("net").tail(1)
            run.summary.update({f"final/{c}": float(final[c].mean()) for c in metric_cols if final[c].notna().any()})
            run.summary["status"] = ",".join(sorted(set(part["status"])))
            if "theory/loss" in part and part["theory/loss"].notna().any():
                errors = [max_rel_error(g["sim/loss"].to_numpy(), g["theory/loss"].to_numpy())
                          for _, g in part.groupby("net")]
                run.summary["agreement/loss_max_rel_err"] = max(errors)
            written.append(str(getattr(run, "dir", "")))
            run.finish()
        except Exception as err:  # noqa: BLE001 — any W&B failure is reported, never raised
            warnings.warn(f"W&B logging failed for {name!r} ({err}); local metrics in {run_dir} are complete.",
                          stacklevel=2)
    return written
