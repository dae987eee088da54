"""The resumable sweep runner: units of work with stable ids, skipped when finished, recorded when they fail.

A unit is one point of a suite's sweep (one λ batched over seeds, or one (arch, λ) point). Its id is the
short sha1 of its config (its values and its runs' records) as sorted JSON, so the same command computes the
same ids.

Results go to ``<suite folder>/runs/<id>/``, a unit folder like a run's (:mod:`lazyrich.store.run_folder`):
``config.yaml``, ``metrics.parquet`` (long table), ``matrices-<start>-<stop>.npz`` (matrices, batch first),
``summary.csv`` and ``summary.json`` (the unit's rows of ``suite.csv``), ``theory.txt``, ``MANIFEST.json`` and
``DONE``, written last by :func:`lazyrich.store.write_run`. A unit with ``DONE`` whose files match its manifest
is never computed again; a unit without it (killed, or failed), or whose files were damaged since, is cleared and
redone. A failure writes ``runs/<id>/FAILED`` (the traceback) and a ``status=failed`` row, and the other units
go on. ``computed.log`` lists, one per line, every id this folder ever computed: the audit trail of what a
resumed run redid.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lazyrich import results, store
from lazyrich.config.run import RunConfig
from lazyrich.experiment.cluster import LOGS, Launch, run_all
from lazyrich.results.names import canonical
from lazyrich.store import integrity

__all__ = ["FAILED", "Unit", "UnitOutput", "SweepResult", "run_sweep", "unit_id"]

FAILED = "FAILED"
COMPUTED_LOG = "computed.log"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def unit_id(config: Mapping[str, Any]) -> str:
    """Stable id of a resolved config: the first 12 hex digits of sha1(sorted JSON)."""
    text = json.dumps(_jsonable(config), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Unit:
    """One unit of work: ``key`` (its identifying columns in suite.csv, e.g. {"lam": 2.0}), ``values`` (the
    suite's own JSON-able values its compute step reads: the suite's name, thresholds, …) and ``runs`` (what it
    trains: :func:`~lazyrich.experiment.run_experiment` configs by role, e.g. {"experiment": RunConfig})."""

    key: Mapping[str, Any]
    values: Mapping[str, Any]
    runs: Mapping[str, RunConfig] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        """Everything that determines what the unit computes, as plain data: ``values`` and each run's
        :meth:`~lazyrich.config.run.RunConfig.record` under its role (its id, its config.yaml, its W&B config)."""
        return {**self.values, **{role: run.record() for role, run in self.runs.items()}}

    @property
    def id(self) -> str:
        return unit_id(self.config)


@dataclass
class UnitOutput:
    """What a unit computed: the long ``frame`` (sim/ and theory/ columns against t), its ``rows`` of
    suite.csv (one per configuration, e.g. per seed), optional ``matrices`` (batch first) and the
    ``theory_notes`` of its runs (which theory ran, or why none), which the runner writes to theory.txt."""

    frame: pd.DataFrame
    rows: pd.DataFrame
    matrices: dict[str, np.ndarray] = field(default_factory=dict)
    theory_notes: Sequence[str] = ()


@dataclass
class SweepResult:
    """The sweep's rows (finished and failed units), and which ids were computed, skipped or failed."""

    rows: pd.DataFrame
    runs_dir: Path
    computed: list[str]
    skipped: list[str]
    failed: list[str]
    ids: dict[str, str]  # unit id → its key as text


def _key_text(key: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items())


def _failed_row(unit: Unit, error: str) -> pd.DataFrame:
    return pd.DataFrame([{**unit.key, "status": "failed", "error": error, "unit": unit.id}])


def _finished(run_dir: Path, unit: Unit) -> bool:
    """Whether ``run_dir`` holds this unit, finished and intact; a damaged finished unit is named and redone."""
    if not (run_dir / store.DONE).exists():
        return False
    reason = integrity.verify_unit(run_dir)
    if reason is not None:
        warnings.warn(f"unit {unit.id} ({_key_text(unit.key)}) failed verification, recomputing it: {reason}",
                      results.ResultsWarning, stacklevel=3)
    return reason is None


def run_sweep(
    units: Sequence[Unit],
    compute: Callable[[Unit, Path], UnitOutput],
    out_dir: str | Path,
    *,
    desc: str = "sweep",
    progress: bool = True,
    log: Callable[[Unit, UnitOutput | None, Path], None] | None = None,
    launch: Launch | None = None,
) -> SweepResult:
    """Compute every unit not yet ``DONE`` under ``out_dir/runs`` and collect all rows (see module docstring).

    ``compute(unit, run_dir)`` returns a :class:`UnitOutput`; ``log`` (e.g. the W&B mirror) runs after its
    results are written, so a W&B call never holds the only copy of a result, and as ``log(unit, None, run_dir)``
    for a finished unit it skips (the W&B mirror logs again a unit whose logging was cut short). ``launch``: where
    the units to compute run (:mod:`lazyrich.experiment.cluster`; None: here, one after another): as SLURM array
    tasks or submitit processes, each computes, writes and logs its unit as here, and a task that ends without a
    result (cancelled, out of time) is a failed unit whose ``FAILED`` names its log.
    """
    out_dir = Path(out_dir)
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    ids = [u.id for u in units]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{desc}: two units share a config (ids {ids}); every point of a sweep must differ.")
    rows: dict[str, pd.DataFrame] = {}
    todo = []
    for unit in units:
        run_dir = runs_dir / unit.id
        if _finished(run_dir, unit):
            rows[unit.id] = canonical(pd.read_csv(run_dir / store.SUMMARY_FILE))
            if log is not None:  # a finished unit whose W&B mirror was cut short is logged again
                log(unit, None, run_dir)
        else:
            todo.append(unit)
    done = (_here(todo, compute, runs_dir, log, desc, progress) if launch is None or launch.where == "here"
            else _elsewhere(todo, compute, runs_dir, log, desc, launch))
    rows.update({unit.id: frame for unit, (frame, _) in zip(todo, done, strict=True)})
    computed = [unit.id for unit, (_, ok) in zip(todo, done, strict=True) if ok]
    if computed:
        with open(out_dir / COMPUTED_LOG, "a") as handle:
            handle.writelines(f"{unit_id}\n" for unit_id in computed)
    frames = [rows[u.id] for u in units]
    failed = [unit.id for unit, (_, ok) in zip(todo, done, strict=True) if not ok]
    skipped = [u.id for u in units if u not in todo]
    return SweepResult(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), runs_dir, computed,
                       skipped, failed, {u.id: _key_text(u.key) for u in units})


def _here(todo: Sequence[Unit], compute: Callable[[Unit, Path], UnitOutput], runs_dir: Path, log, desc: str,
          progress: bool) -> list[tuple[pd.DataFrame, bool]]:
    """Compute the units in this process, one after another, with a progress bar."""
    done = []
    bar = tqdm(todo, desc=desc, unit="run", disable=not progress, leave=True)
    for unit in bar:
        done.append(_compute(unit, compute, str(runs_dir / unit.id), log))
        bar.set_postfix(done=sum(ok for _, ok in done), failed=sum(not ok for _, ok in done))
    bar.close()
    return done


def _elsewhere(todo: Sequence[Unit], compute: Callable[[Unit, Path], UnitOutput], runs_dir: Path, log, desc: str,
               launch: Launch) -> list[tuple[pd.DataFrame, bool]]:
    """Compute the units as pieces where ``launch`` says (one array task each); a piece that ended without a
    result is a failed unit, its FAILED naming the piece's error and log."""
    if not todo:
        return []
    pieces = [functools.partial(_compute, unit, compute, str(runs_dir / unit.id), log) for unit in todo]
    outcomes = run_all(pieces, launch, runs_dir.parent / LOGS, name=f"lazyrich:{desc}")
    done = []
    for unit, outcome in zip(todo, outcomes, strict=True):
        if outcome.ok:
            done.append(outcome.value)
            continue
        error = outcome.error + (f"; log {outcome.log}" if outcome.log is not None else "")
        (runs_dir / unit.id).mkdir(parents=True, exist_ok=True)
        (runs_dir / unit.id / FAILED).write_text(f"{_key_text(unit.key)}\n\njob {outcome.job}: {error}\n")
        done.append((_failed_row(unit, error), False))
    return done


def _compute(unit: Unit, compute: Callable[[Unit, Path], UnitOutput], run_dir: str,
             log: Callable[[Unit, UnitOutput | None, Path], None] | None) -> tuple[pd.DataFrame, bool]:
    """Compute one unit into ``run_dir`` (cleared first), write its folder, then log it: (its rows, True); or, if
    it raises, its traceback in ``FAILED`` and (a failed row, False)."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a killed or failed attempt: start clean
    run_dir.mkdir(parents=True)
    try:
        output = compute(unit, run_dir)
        rows = output.rows.copy()
        for name, value in reversed(list(unit.key.items())):
            if name not in rows:
                rows.insert(0, name, value)
        rows["unit"] = unit.id
        if "status" not in rows:
            rows["status"] = "ok"
        store.write_run(
            run_dir,
            output.frame,
            rows,
            matrices=output.matrices or None,
            config=json.dumps(_jsonable(unit.config), indent=1, sort_keys=True) + "\n",
            notes=output.theory_notes,
        )
        if log is not None:  # after write_run: the results are on disk before any W&B call
            log(unit, output, run_dir)
        return rows, True
    except Exception as err:  # noqa: BLE001 — one bad configuration must not cost the others
        (run_dir / FAILED).write_text(f"{_key_text(unit.key)}\n\n{traceback.format_exc()}")
        return _failed_row(unit, f"{type(err).__name__}: {err}"), False
