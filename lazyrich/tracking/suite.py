"""W&B for benchmark suites: each unit's networks as runs (job type ``bench/<suite>``), one suite-level run.

The unit runs carry the unit's suite.csv rows in their summaries (seed means in the per-configuration layout),
and their config's ``theory`` is the theory that ran (the rows' ``theory``, else the unit's ``theory.txt``); the
suite-level run holds ``suite.csv`` as the ``wandb.Table`` ``suite``, every figure as a ``wandb.Image``
(``figures/<name>``) and ``summary.md``. Both are called after the local files are on disk. The group is the
suite's folder (see :func:`lazyrich.tracking.schema.sweep_group`), so two suites of one ``bench`` call, or two
sweeps, never share one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lazyrich.config.run import WandbConfig

__all__ = ["suite_logger", "log_suite_run"]


def suite_logger(wandb: WandbConfig | None, suite_name: str, key: Sequence[str], folder: Path) -> Callable | None:
    """The per-unit W&B mirror of suite ``suite_name`` written into ``folder`` (None when W&B is off):
    ``log(unit, output, run_dir)`` logs the unit's networks (the layout from the unit's own networks)."""
    if wandb is None or not wandb.enabled:
        return None
    os.environ.setdefault("WANDB_SILENT", "true")  # one banner per unit would drown the progress bar

    def log(unit, output, run_dir: Path) -> None:
        from lazyrich.tracking.schema import sweep_group
        from lazyrich.tracking.sink import Target, log_networks

        target = Target.from_logger(wandb, group=sweep_group(folder),
                                    job_type=f"bench/{suite_name}", config={**unit.config, "suite": suite_name},
                                    unit=unit.id, run_dir=run_dir,
                                    extra={k: v for k, v in unit.key.items() if not _is_nan(v)},
                                    theory=_theory_notes(run_dir))
        log_networks(output.frame, target, key, rows=output.rows, network_table=False)

    return log


def _theory_notes(run_dir: Path) -> str | None:
    """The theory that ran, from the unit's ``theory.txt`` (None when it has none or it does not say)."""
    from lazyrich.tracking.schema import theory_that_ran

    path = Path(run_dir) / "theory.txt"
    return theory_that_ran(path.read_text().splitlines()) if path.is_file() else None


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
