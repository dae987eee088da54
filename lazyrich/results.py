"""Where numbers go first: tidy tables and files in a run folder. W&B is a mirror of these, never the source.

A run folder holds ``config.yaml`` (resolved), ``metrics.csv`` (long format: one row per network per logged
step), ``matrices.npz`` (W2W1, W1ᵀW1, W_LW_Lᵀ on a subsampled t grid, simulated and predicted), ``summary.json``
and ``summary.csv`` (one record per network) and a ``DONE`` marker written last.
Metric columns are namespaced exactly like the W&B keys: ``sim/<metric>`` and ``theory/<metric>``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyrich import integrity, measures
from lazyrich.curves import SIM, Curves, from_frame, predicted, simulated
from lazyrich.metric_names import canonical

__all__ = ["DONE", "ResultsWarning", "load", "load_curves", "load_summary", "max_rel_error", "summarise", "summary_of",
           "to_frame", "write_run"]

DONE = integrity.DONE
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.csv"
AGREEMENT_RTOL = 0.05
"""Simulation and theory 'agree' when the loss curves differ by at most 5% of the theory's largest loss."""


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


def to_frame(trajectory, meta: pd.DataFrame | Mapping[str, Sequence[Any]] | None = None, prediction=None,
             *, phase: int | None = None, t_offset: torch.Tensor | float = 0.0) -> pd.DataFrame:
    """Long table of a :class:`~lazyrich.train.Trajectory`: one row per network per log point.

    ``meta`` holds one row per network (lam, seed, lr, …), repeated on each of its rows. ``prediction`` (a
    :class:`~lazyrich.theory.Prediction` on the same t grid) adds ``theory/<metric>`` columns.
    """
    n_batch, n_log = trajectory.t.shape
    net = np.repeat(np.arange(n_batch), n_log)
    columns: dict[str, Any] = {"net": net}
    if meta is not None:
        meta_df = pd.DataFrame(meta).reset_index(drop=True)
        if len(meta_df) != n_batch:
            raise ValueError(f"meta has {len(meta_df)} rows for {n_batch} networks.")
        for name in meta_df.columns:
            columns[name] = np.repeat(meta_df[name].to_numpy(), n_log)
    if phase is not None:
        columns["phase"] = phase
    columns["step"] = trajectory.step.cpu().numpy().reshape(-1)
    t_off = torch.as_tensor(t_offset, dtype=torch.float64)
    t_off = t_off.unsqueeze(-1) if t_off.dim() == 1 else t_off
    columns["t"] = _np(trajectory.t + t_off).reshape(-1)
    sources = [simulated(trajectory)] + ([predicted(prediction)] if prediction is not None else [])
    for prefix, source in zip(("sim", "theory"), sources, strict=False):
        for name, value in source.curves.items():
            columns[f"{prefix}/{name}"] = _np(value).reshape(-1)
    frame = pd.DataFrame(columns)
    frame["status"] = np.repeat(np.asarray(trajectory.status, dtype=object), n_log)
    return frame


def max_rel_error(sim: Any, theory: Any, scale: float | None = None) -> float:
    """The project's one agreement measure over whole arrays: max |sim − theory| / scale, ``scale`` defaulting
    to max |theory| (:func:`lazyrich.measures.relative_gap` of the flattened values).

    ``sim`` and ``theory`` (arrays or tensors, broadcast together) are compared where neither is NaN; an
    infinite simulation (a divergence) gives an infinite error. NaN when no pair is left. Simulation and theory
    "agree" when this is at most :data:`AGREEMENT_RTOL`; the summaries, W&B and the figures all use it.
    """
    sim, theory = np.broadcast_arrays(*(_np(v) if isinstance(v, torch.Tensor) else np.asarray(v, dtype=float)
                                        for v in (sim, theory)))
    flat = [torch.tensor(np.asarray(v, dtype=np.float64).reshape(-1)) for v in (sim, theory)]
    return float(measures.relative_gap(*flat, scale))


def summary_of(simulation: Curves, theory: Curves | None = None, meta_columns: Sequence[str] = (),
               threshold: float = 0.01, first_net: int = 0) -> pd.DataFrame:
    """One row per network (numbered from ``first_net``): its ``meta_columns`` and status, then the measures
    ``loss_final``, ``kernel_distance_final`` and ``time_to_1pct`` (first t, interpolated, at which the loss is
    ``threshold`` × its initial value; NaN if never) of the simulation.

    With a theory, adds its final loss, the per-network agreement of the loss curves (``theory_max_rel_err``,
    :func:`lazyrich.measures.agreement`) and whether that is within ``AGREEMENT_RTOL`` (``theory_agrees``);
    networks without a theory value get NaN there.
    """
    meta = simulation.meta if simulation.meta is not None else pd.DataFrame(index=range(simulation.batch))
    out = {"net": first_net + np.arange(simulation.batch),
           **{k: meta[k].to_numpy() for k in meta_columns if k in meta},
           "status": meta["status"].to_numpy() if "status" in meta else np.full(simulation.batch, "ok", object),
           "loss_final": _np(measures.final(simulation)),
           "kernel_distance_final": _np(measures.final(simulation, "kernel_distance")),
           "time_to_1pct": _np(measures.time_to_fraction(simulation, threshold))}
    if theory is not None:
        out.update(_theory_agreement(simulation, theory))
    return pd.DataFrame(out)


def summarise(frame: pd.DataFrame, meta_columns: Sequence[str] = (), threshold: float = 0.01) -> pd.DataFrame:
    """:func:`summary_of` a long table (one run phase: every network logged at the same number of points)."""
    if frame.empty:
        return pd.DataFrame()
    keep = [*meta_columns, "status"]
    simulation = from_frame(frame, SIM, keep)
    theory = from_frame(frame, "theory") if "theory/loss" in frame else None
    return summary_of(simulation, theory, meta_columns, threshold, first_net=int(frame["net"].min()))


def _theory_agreement(simulation: Curves, theory: Curves) -> dict[str, np.ndarray]:
    """Per network: the theory's final loss, the agreement of the loss curves and whether it is close enough."""
    loss = theory["loss"].cpu()
    has = _np((~loss.isnan()).any(-1)).astype(bool)
    if not has.any():
        return {}
    err = _np(measures.agreement(simulation, theory))
    agrees = err <= AGREEMENT_RTOL
    return {"theory_loss_final": np.where(has, _np(loss[:, -1]), math.nan),
            "theory_max_rel_err": np.where(has, err, math.nan),
            "theory_agrees": agrees if has.all() else np.where(has, agrees.astype(object), math.nan)}


def write_run(run_dir: str | Path, frame: pd.DataFrame | None, summary: pd.DataFrame, *,
              matrices: Mapping[str, np.ndarray] | None = None, config: Any = None) -> Path:
    """Write a run folder (see module docstring); ``DONE`` is written last, so a killed run is never 'done'.

    ``frame`` None: the metrics were written already (``metrics.parquet``, by :class:`lazyrich.storage.RunWriter`).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE).unlink(missing_ok=True)  # rewriting a folder: unfinished until the new manifest is in
    if config is not None:
        from omegaconf import OmegaConf

        text = OmegaConf.to_yaml(config) if not isinstance(config, str) else config
        (run_dir / "config.yaml").write_text(text)
    if frame is not None:
        frame.to_csv(run_dir / METRICS_FILE, index=False)
    summary.to_csv(run_dir / SUMMARY_FILE, index=False)
    records = json.loads(summary.to_json(orient="records"))
    (run_dir / "summary.json").write_text(json.dumps(records, indent=1))
    if matrices:
        np.savez_compressed(run_dir / "matrices.npz", **{k: np.asarray(v) for k, v in matrices.items()})
    integrity.write_manifest(run_dir)
    (run_dir / DONE).write_text("")
    return run_dir


class ResultsWarning(UserWarning):
    """A unit left out of a loaded table (unfinished, or failing verification); the message names it."""


REQUIRED_COLUMNS = {SUMMARY_FILE: ("status",)}


def _read_table(f: Path, filename: str) -> pd.DataFrame:
    """One table file, or a ValueError naming the file and what is wrong with it."""
    try:
        df = pd.read_csv(f)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{f}: not a readable {filename} table ({type(err).__name__}: {err}); re-run the "
                         f"unit that wrote it.") from None
    missing = [c for c in REQUIRED_COLUMNS.get(filename, ()) if c not in df]
    if missing:
        raise ValueError(f"{f}: not a lazyrich {filename} (no column {', '.join(missing)}); re-run the unit "
                         f"that wrote it.")
    return canonical(df)


def _verified(files: list[Path], path: Path, verify: Callable[[Path], str | None] | None = None) -> list[Path]:
    """The files whose run folder is a finished, intact unit (``verify``, default
    :func:`~lazyrich.integrity.verify_unit`, says why not); the others are named in a ResultsWarning."""
    kept = []
    for f in files:
        reason = (verify or integrity.verify_unit)(f.parent)
        if reason is None:
            kept.append(f)
        else:
            warnings.warn(f"skipped {f.parent}: {reason}", ResultsWarning, stacklevel=4)
    if files and not kept:
        raise FileNotFoundError(f"no finished, intact run under {path}: every one failed verification (see the "
                         f"warnings); re-run them.")
    return kept


def _collect(path: str | Path, filename: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {filename} at {path}: it does not exist; pass a run or sweep folder, or a file.")
    files = [path] if path.is_file() else _verified(sorted(path.rglob(filename)), path)
    if not files:
        raise FileNotFoundError(f"no {filename} under {path}: pass a run folder or a sweep folder that holds runs.")
    frames = []
    for f in files:
        df = _read_table(f, filename)
        rel = f.parent.relative_to(path) if path.is_dir() else Path(".")
        df.insert(0, "run", str(rel) if str(rel) != "." else f.parent.name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def load(path: str | Path, columns: Sequence[str] | None = None,
         filters: Sequence[tuple[str, str, Any]] | None = None,
         verify: Callable[[Path], str | None] | None = None) -> pd.DataFrame:
    """The long metrics table of one run folder, or of every run under a sweep folder (adds a ``run`` column).

    Reads ``metrics.parquet`` (or ``metrics.csv`` of older runs and suite units) lazily: only ``columns``
    (default all), and only the rows that satisfy every ``filters`` entry (column, op, value), e.g.
    ``[("lam", "==", 0.5)]``; see :func:`lazyrich.storage.read_metrics`. Only finished units whose files match
    their manifest are read (:func:`lazyrich.integrity.verify_unit`); the others are skipped with a
    :class:`ResultsWarning` naming them; ``verify`` replaces that check (e.g. one that remembers its verdicts).
    A file that is not a table raises a ValueError naming it.
    """
    from lazyrich.storage import read_metrics

    return read_metrics(path, columns=columns, filters=filters, select=functools.partial(_verified, verify=verify))


def load_summary(path: str | Path) -> pd.DataFrame:
    """The per-network summaries of one run or of every run under a folder (adds a ``run`` column)."""
    return _collect(path, SUMMARY_FILE)


def load_curves(path: str | Path, phase: int | None = None,
                filters: Sequence[tuple[str, str, Any]] | None = None) -> tuple[Curves, Curves | None]:
    """(simulation, theory or None) curves of one run folder, in the shape the trainer and theories give in
    memory (:class:`lazyrich.curves.Curves`; no matrices): read like :func:`load`, ``filters`` selecting
    networks (e.g. ``[("lam", "==", 0.5)]``) and ``phase`` one phase of a task sequence (needed there), with t
    counted from that phase's start."""
    frame = load(path, filters=filters)
    if frame["run"].nunique() > 1:
        raise ValueError(f"{path} holds {frame['run'].nunique()} runs; pass one run folder to load_curves.")
    if "phase" in frame:
        if phase is None:
            raise ValueError(f"{path} is a task sequence of {frame['phase'].nunique()} phases; pass phase=<index>.")
        frame = frame[frame["phase"] == phase]
    if frame.empty:
        raise ValueError(f"no rows in {path} for phase={phase} and filters={filters}.")
    meta = [c for c in frame.columns if c in ("net", "lam", "scale", "lr", "seed", "lam_hat", "task", "status")]
    simulation = from_frame(frame, SIM, meta)
    start = simulation.t[:, :1]
    simulation = dataclasses.replace(simulation, t=simulation.t - start)
    if "theory/loss" not in frame:
        return simulation, None
    theory = from_frame(frame, "theory", meta)
    return simulation, dataclasses.replace(theory, t=theory.t - start)
