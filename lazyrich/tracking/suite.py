"""W&B for benchmark suites: each unit's networks as runs (job type ``bench/<suite>``), one suite-level run.

The unit runs carry the unit's suite.csv rows in their summaries (seed means in the per-configuration layout),
and their config's ``theory`` is the theory that ran (the rows' ``theory``, else the unit's ``theory.txt``); the
suite-level run holds ``suite.csv`` as the ``wandb.Table`` ``suite``, every figure as a ``wandb.Image``
(``figures/<name>``) and ``summary.md``. Both are called after the local files are on disk. The group is the
suite's folder (see :func:`lazyrich.tracking.schema.sweep_group`), so two suites of one ``bench`` call, or two
sweeps, never share one.

The runner calls the unit logger for a finished unit it skips too (``log(unit, None, run_dir)``): a unit whose
mirror is complete (:func:`lazyrich.tracking.mirror.mirror_state`) is left alone, and one whose logging was cut
short (the process was killed while logging) is logged again from its files on disk.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lazyrich.config.run import WandbConfig

__all__ = ["suite_logger", "log_suite_run"]


def suite_logger(wandb: WandbConfig | None, suite_name: str, key: Sequence[str], folder: Path) -> Callable | None:
    """The per-unit W&B mirror of suite ``suite_name`` written into ``folder`` (None when W&B is off):
    ``log(unit, output, run_dir)`` logs the unit's networks (the layout from the unit's own count of networks);
    with ``output`` None (a finished unit the runner skipped) it logs them from ``run_dir`` only if that unit's
    mirror is not complete."""
    if wandb is None or not wandb.enabled:
        return None
    os.environ.setdefault("WANDB_SILENT", "true")  # one banner per unit would drown the progress bar

    def log(unit, output, run_dir: Path) -> None:
        from lazyrich.tracking.connect import resolve_mode
        from lazyrich.tracking.mirror import mirror_state

        if output is not None:
            _log_unit(wandb, suite_name, key, folder, unit, output.frame, output.rows, run_dir)
        elif resolve_mode(wandb.mode) != "disabled" and mirror_state(run_dir) is not None:
            try:
                _log_unit(wandb, suite_name, key, folder, unit, *_from_disk(run_dir), run_dir)
            except Exception as err:  # noqa: BLE001 — the runner calls this outside its guard: never stop a bench
                warnings.warn(f"W&B: could not log unit {unit.id} again from {run_dir} ({err}); its results are "
                              f"complete, re-run the bench to try again.", stacklevel=2)

    return log


def _log_unit(wandb: WandbConfig, suite_name: str, key: Sequence[str], folder: Path, unit, frame: pd.DataFrame,
              rows: pd.DataFrame, run_dir: Path) -> None:
    """The unit's networks as W&B runs of the suite's group, its rows' metrics in their summaries."""
    from lazyrich.tracking.schema import sweep_group
    from lazyrich.tracking.sink import Target, log_networks

    target = Target.from_logger(wandb, group=sweep_group(folder), job_type=f"bench/{suite_name}",
                                config={**unit.config, "suite": suite_name}, unit=unit.id, run_dir=run_dir,
                                extra={k: v for k, v in unit.key.items() if not _is_nan(v)},
                                theory=_theory_notes(run_dir))
    log_networks(frame, target, key, rows=rows, network_table=False)


def _from_disk(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long table, suite.csv rows) of a finished unit, read back (and verified) from its folder."""
    from lazyrich import results

    return results.load(run_dir).drop(columns="run"), results.load_summary(run_dir).drop(columns="run")


def _theory_notes(run_dir: Path) -> str | None:
    """The theory that ran, from the unit's ``theory.txt`` (None when it has none or it does not say)."""
    from lazyrich.results.notes import read_notes, theory_that_ran

    return theory_that_ran(read_notes(run_dir))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def log_suite_run(wandb: WandbConfig | None, suite_name: str, folder: Path, table: pd.DataFrame,
                  figures: Sequence[Path], verdict: str = "") -> str | None:
    """The suite-level run: suite.csv as the table ``suite``, figures as images, summary.md saved; None if off."""
    if wandb is None or not wandb.enabled or not len(table):
        return None
    from lazyrich.tracking.schema import sweep_group
    from lazyrich.tracking.sink import Target, log_table_run

    target = Target.from_logger(wandb, group=sweep_group(folder), job_type=f"bench/{suite_name}",
                                config={"suite": suite_name}, unit=f"suite-{suite_name}", run_dir=folder)
    summary_md = folder / "summary.md"
    return log_table_run(target, "suite", table, name=f"suite {suite_name}",
                         images={f"figures/{Path(p).stem}": Path(p) for p in figures if Path(p).exists()},
                         files=[summary_md] if summary_md.exists() else [],
                         summary={"verdict": verdict, "units": int(table["unit"].nunique()) if "unit" in table else 0})
