"""Benchmark suites: λ sweeps with their theory, one table per suite, resumable.

``lazyrich bench suite=<name>`` composes ``conf/bench.yaml`` and calls :func:`run_suites`. Each suite (see
``SUITES``) turns its config into units of work (one λ batched over seeds, …), runs them with the resumable
:func:`~lazyrich.suites.runner.run_sweep`, and writes into its folder:

- ``suite.csv``: one row per configuration (``lam``, ``seed``, the suite's key columns and metrics,
  ``status``);
- ``summary.md``: what was measured, the table, and the measured outcome against docs/theory.md §10;
- PNG figures (simulation solid, theory dotted) and ``runs/<id>/`` per unit (``DONE`` when finished).

A single suite writes into the run folder itself; several (``suite=all``, ``suite=default``) write one
sub-folder each plus a top-level ``summary.md`` and ``timings.csv``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lazyrich.config.suites import BenchConfig, SuiteParams, build_suite, resolve_bench
from lazyrich.device import torch_threads
from lazyrich.experiment.cluster import Launch
from lazyrich.results.tables import markdown_table
from lazyrich.store import identity, locking
from lazyrich.suites import architecture, continual, finetune, generalisation, reversal, rotation, transfer, width
from lazyrich.suites.common import Report, Suite
from lazyrich.suites.runner import SweepResult, Unit, run_sweep
from lazyrich.suites.writeup import render, report_view
from lazyrich.tracking.suite import log_suite_run, suite_logger
from lazyrich.train import step_budget

__all__ = ["SUITES", "Suite", "report_views", "run_suite", "run_suites", "work_estimate"]

SUITES: dict[str, Suite] = {
    s.name: s
    for s in (reversal.SUITE, continual.SUITE, transfer.SUITE, rotation.SUITE, finetune.SUITE, architecture.SUITE,
              width.SUITE, generalisation.SUITE)
}
"""Every suite by name, in the order ``suite=all`` runs them."""


def report_views() -> dict:
    """Every suite's view for ``lazyrich report`` (:class:`~lazyrich.results.report.SuiteView`) by name."""
    return {name: report_view(suite) for name, suite in SUITES.items()}


def run_suite(
    suite: Suite,
    params: Mapping[str, Any] | SuiteParams,
    folder: Path,
    *,
    device: str = "auto",
    progress: bool = True,
    log=None,
    units: list[Unit] | None = None,
    launch: Launch | None = None,
) -> tuple[pd.DataFrame, Report, SweepResult]:
    """Run one suite into ``folder`` (resuming finished units); write suite.csv, figures and summary.md.
    ``params`` (a mapping or the suite's schema object, :mod:`lazyrich.config.suites`) is completed from the
    suite's defaults, checked and built into the schema object ``suite.units`` reads; ``units``, when given, are
    the ones ``suite.units`` lists for them; ``launch``: where the units run (None: here; SLURM array tasks or
    submitit processes, :mod:`lazyrich.experiment.cluster`)."""
    start = time.perf_counter()
    units = suite.units(build_suite(suite.name, params), device) if units is None else units
    sweep = run_sweep(units, suite.compute, folder, desc=suite.name, progress=progress, log=log, launch=launch)
    table = sweep.rows
    if len(table):
        table.insert(0, "suite", suite.name)
    keys = [c for c in (*suite.key, "seed") if c in table]
    if keys and len(table):
        table = table.sort_values(
            keys,
            kind="stable",
            ignore_index=True,
            key=lambda col: _declared_order(col, suite.orders[col.name]) if col.name in suite.orders else col,
        )
    table.to_csv(folder / "suite.csv", index=False)
    if "status" in table and (table["status"] == "ok").any():
        try:
            report = render(suite, table, folder)
        except Exception:  # noqa: BLE001 — the table is written; a broken write-up must not hide it
            report = Report(
                f"The write-up failed (the table in suite.csv is complete):\n\n```\n"
                f"{traceback.format_exc()}```\n",
                verdict="write-up failed, see summary.md",
            )
    else:
        report = Report("No configuration finished; see the failures below.\n", verdict="every unit failed")
    seconds = time.perf_counter() - start
    lines = [
        f"# Suite `{suite.name}`: {suite.description}",
        "",
        f"{len(units)} units: {len(sweep.computed)} computed, {len(sweep.skipped)} already done (resumed), "
        f"{len(sweep.failed)} failed; {seconds:.1f} s. Table: `suite.csv`; per-unit results: `runs/<id>/`. "
        f"To resume or retry failures, re-run the same command with `hydra.run.dir=<this run folder>`.",
        "",
        report.markdown,
    ]
    if sweep.failed:
        failed = table[table["status"] == "failed"]
        lines += [
            "### Failed configurations",
            "",
            "Tracebacks in `runs/<id>/FAILED`; rerun the same command to retry them.",
            "",
            markdown_table(failed[[c for c in failed if c in (*keys, "unit", "error")]]),
        ]
    lines += ["", "Figures: " + ", ".join(f"`{p.name}`" for p in report.figures)] if report.figures else []
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
    report.seconds = seconds
    return table, report, sweep


def _declared_order(column: pd.Series, order: Sequence[str]) -> pd.Series:
    """Sort keys of a text key column: the values ``order`` declares in that order, then any other value (a net
    added under a name of its own) in the order the units listed it."""
    ranks = {v: i for i, v in enumerate(order)}
    ranks |= {v: len(order) + i for i, v in enumerate(dict.fromkeys(v for v in column if v not in ranks))}
    return column.map(ranks)


def _print(suite: Suite, table: pd.DataFrame, report: Report, sweep: SweepResult, folder: Path) -> None:
    cols = [c for c in (report.columns or suite.columns) if c in table] or list(table.columns)
    with pd.option_context(
        "display.width",
        200,
        "display.max_columns",
        30,
        "display.max_rows",
        200,
        "display.float_format",
        "{:.4g}".format,
    ):
        print(
            f"\n== {suite.name}: {len(sweep.computed)} computed, {len(sweep.skipped)} resumed, "
            f"{len(sweep.failed)} failed, {report.seconds:.1f} s =="
        )
        print(table[cols].to_string(index=False))
    print(f"outcome: {report.verdict}")
    print(f"results: {folder} (suite.csv, summary.md, " + ", ".join(p.name for p in report.figures) + ")")


def _trainings(node: Any) -> list[tuple[float, float]]:
    """(t_max, lr) of every trainer section in a unit's config (a unit may train more than once)."""
    if not isinstance(node, Mapping):
        return []
    found = []
    if isinstance(node.get("lr"), int | float) and isinstance(node.get("t_max"), int | float):
        found.append((float(node["t_max"]), float(node["lr"])))
    for value in node.values():
        found += _trainings(value)
    return found


def work_estimate(units: list[Unit], max_steps: int) -> str:
    """One line: how many units, the most GD steps one network takes in one phase, and the units past
    ``max_steps`` (each is refused when it starts; the others run)."""
    steps = {u.id: max((t / lr for t, lr in _trainings(u.config) if lr > 0), default=0.0) for u in units}
    over = [u for u in units if steps[u.id] > max_steps]
    line = (f"work: {len(units)} units, at most {max(steps.values(), default=0):,.0f} GD steps per network per "
            f"phase (budget max_steps={max_steps:,})")
    if over:
        line += (f"; {len(over)} unit(s) exceed it and will be refused: "
                 + ", ".join(f"{u.id} ({', '.join(f'{k}={v}' for k, v in u.key.items())})" for u in over[:5])
                 + " (raise max_steps, or change lr / t_max)")
    return line


def run_suites(cfg: Mapping[str, Any] | BenchConfig, out_dir: str | Path,
               launch: Launch | None = None) -> dict[str, pd.DataFrame]:
    """Run the suites listed in ``cfg.suite.run`` into ``out_dir``; returns each suite's table by name.

    ``cfg`` (a mapping, the Hydra config of ``lazyrich bench`` or a :class:`~lazyrich.config.suites.BenchConfig`)
    is resolved and checked first, every suite's parameters included, before any training. Re-running with the same
    ``out_dir`` (``hydra.run.dir=...``) skips finished units and redoes the rest. The folder is locked for this
    process and holds one configuration (more λ values or seeds aside): a different one is refused before any
    training (:mod:`lazyrich.store.identity`). ``launch``: where the units run (None: here, one after another;
    ``lazyrich bench hydra/launcher=slurm`` runs each suite's units as one job array,
    :mod:`lazyrich.experiment.cluster`).
    """
    bench = cfg if isinstance(cfg, BenchConfig) else resolve_bench(cfg)
    out_dir = Path(out_dir)
    with locking.FolderLock(out_dir), torch_threads(bench.threads or 0), step_budget(bench.max_steps):
        return _run_suites(bench, out_dir, launch)


def _run_suites(bench: BenchConfig, out_dir: Path, launch: Launch | None) -> dict[str, pd.DataFrame]:
    out_dir.mkdir(parents=True, exist_ok=True)
    names = bench.suite.run
    units = {name: SUITES[name].units(bench.params[name], bench.device) for name in names}
    identity.claim(out_dir, bench.record(), identity.BENCH_IGNORED)
    print(work_estimate([u for name in names for u in units[name]], bench.max_steps))
    wandb = bench.logger.wandb if bench.logger is not None else None
    tables, summary = {}, []
    for name in names:
        suite = SUITES[name]
        folder = out_dir if len(names) == 1 else out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        log = suite_logger(wandb, suite.name, suite.key, folder)
        table, report, sweep = run_suite(suite, bench.params[name], folder, device=bench.device,
                                         progress=bench.progress, log=log, units=units[name], launch=launch)
        _print(suite, table, report, sweep, folder)
        log_suite_run(wandb, suite.name, folder, table, report.figures, report.verdict)
        tables[name] = table
        summary.append({"suite": name, "seconds": round(report.seconds, 2), "units": len(sweep.ids),
                        "computed": len(sweep.computed), "resumed": len(sweep.skipped), "failed": len(sweep.failed),
                        "outcome": report.verdict})
    if len(names) > 1:
        timings = pd.DataFrame(summary)
        timings.to_csv(out_dir / "timings.csv", index=False)
        text = ["# Benchmark suites", "", markdown_table(timings), "", *[f"- [{n}]({n}/summary.md)" for n in names]]
        (out_dir / "summary.md").write_text("\n".join(text) + "\n")
    return tables
