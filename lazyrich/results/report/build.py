"""Building a report from a folder: every study under it — a run (a unit folder), a suite (a folder with
``suite.csv`` and its units under ``runs/``) or an atlas (:mod:`~lazyrich.results.report.atlas`) — becomes a
section, read through the verified reads of :mod:`lazyrich.results.io` only. A run folder, a ``-m`` sweep of runs,
a suite, a bench of suites, an atlas or a preset's atlases, or any folder of such folders is reported the same way.

What a section of a suite needs from the suite itself (its headline columns, its key, its verdicts) comes in as a
:class:`SuiteView` from the caller: results never imports suites.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lazyrich.results.io import ResultsWarning, load, load_summary
from lazyrich.results.notes import read_notes, theory_that_ran
from lazyrich.results.report import stats
from lazyrich.results.report.atlas import ATLAS_FILES, atlas_section
from lazyrich.results.report.model import Figure, Number, Report, Section, Table, cell, rows_table
from lazyrich.results.tables import AGREEMENT_RTOL, summarise
from lazyrich.store import DONE, SUMMARY_FILE, THEORY_FILE, integrity

__all__ = ["PER_NETWORK_MAX", "RUN_MEASURES", "SuiteView", "build", "discover"]

RUN_MEASURES = ("loss_final", "theory_loss_final", "kernel_distance_final", "theory_kernel_distance_final",
                "time_to_1pct", "theory_time_to_1pct", "theory_max_rel_err")
"""The per-network summary columns a run's seed-mean table shows (those present)."""
RUN_KEYS = ("lam", "scale", "lr")
"""What identifies a configuration of a run's batch (the seeds are its repeats)."""
PER_NETWORK_MAX = 256
"""A run's per-network rows are listed up to this many networks (beyond, summary.csv holds them)."""
UNIT_MARKERS = frozenset({DONE, integrity.MANIFEST, "FAILED", "metrics.parquet", SUMMARY_FILE})
IMAGES = {".png": "image/png", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class SuiteView:
    """What the report shows of a suite: its headline ``columns`` (axes first), the ``key`` columns of a
    configuration (besides seed), and ``verdicts``: its expectations checked on the finished rows, each
    (holds or None, Markdown line)."""

    columns: Sequence[str]
    key: Sequence[str] = ("lam",)
    verdicts: Callable[[pd.DataFrame], list[tuple[bool | None, str]]] | None = None
    title: str = ""


def discover(root: Path) -> list[tuple[str, Path]]:
    """(kind, folder) of every study under ``root``, in path order: ``suite`` for a folder with suite.csv (its
    ``runs/`` are its units), ``atlas`` for an atlas folder (atlas.json and cells.parquet; its units inside it),
    ``run`` for a unit folder (DONE, MANIFEST.json, FAILED, metrics or summary)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "wandb")
        if "suite.csv" in files:
            found.append(("suite", Path(folder)))
            dirs[:] = [d for d in dirs if d != "runs"]
        elif ATLAS_FILES <= set(files):  # its units' run folders are inside it: the atlas is the study
            found.append(("atlas", Path(folder)))
            dirs[:] = []
        elif UNIT_MARKERS & set(files):
            found.append(("run", Path(folder)))
            dirs[:] = []
    return found


def build(root: str | Path, suites: Mapping[str, SuiteView] | None = None) -> Report:
    """The report of every study under ``root`` (:func:`discover`); ``suites``: each suite's view by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"lazyrich report: {root} is not a folder; pass a run, sweep, suite or bench folder.")
    studies = discover(root)
    if not studies:
        raise FileNotFoundError(f"lazyrich report: no run or suite under {root}; pass a folder that holds "
                                f"run folders (DONE) or suite folders (suite.csv).")
    report = Report(str(root), [], _method())
    for kind, folder in studies:
        rel = folder.relative_to(root).as_posix()
        if kind == "suite":
            report.sections.append(_suite(root, folder, (suites or {}).get(_suite_name(folder))))
            continue
        reason = integrity.verify_unit(folder)
        if reason is None:
            report.sections.append(_run(root, folder) if kind == "run" else
                                   atlas_section(root, folder, _figures(root, folder, rel, manifest=True),
                                                 PER_NETWORK_MAX))
        else:
            report.skipped.append(Number(f"skipped/{rel}", f"{rel}: {reason}", reason,
                                         f"{rel}: integrity.verify_unit"))
    report.overview = _overview(report.sections)
    return report


def _method() -> list[Number]:
    """How the numbers were made, in sentences (their constants are numbers of the page too)."""
    source = "lazyrich.results.report.stats"
    return [
        Number("method/means", f"Seed means: the mean over the seeds of a configuration that have a finite value, "
               f"with a {stats.LEVEL:.0%} percentile-bootstrap interval from {stats.RESAMPLES} resamples (generator "
               f"seeded with {stats.SEED} and the configuration, so the same folder gives the same interval).",
               {"resamples": stats.RESAMPLES, "level": stats.LEVEL, "seed": stats.SEED}, source),
        Number("method/agreement", f"Theory agreement: per network, theory_max_rel_err, the largest |simulated − "
               f"predicted| loss over the theory's largest loss; a theory agrees within "
               f"{AGREEMENT_RTOL:.0%}. Regimes are bands of |λ|: λ = 0, "
               + ", ".join(name for _, _, name in stats.REGIMES) + ".",
               {"rtol": AGREEMENT_RTOL, "regimes": [list(r[:2]) for r in stats.REGIMES]}, source),
    ]


def _overview(sections: list[Section]) -> Table:
    """One row per section: its kind, size, verdicts as predicted, and the units left out."""
    body = []
    for s in sections:
        judged = [h for h, _ in s.verdicts if h is not None]
        stem = f"overview/{s.id}"
        verdict = f"{sum(judged)} of {len(judged)}" if judged else "not judged"
        body.append([Number(f"{stem}/title", s.title, s.path, s.path), Number(f"{stem}/kind", s.kind, s.kind, s.path),
                     s.size,
                     Number(f"{stem}/verdicts", verdict, judged, f"the verdicts of {s.path}"),
                     cell(f"{stem}/left_out", len(s.problems), f"the units of {s.path} left out")])
    return Table("overview", "Studies", ["study", "kind", "networks or rows", "as predicted", "units left out"],
                 body, sortable=True)


def _in(rel: str, name: str) -> str:
    """The path of ``name`` in the folder ``rel`` (relative to the report's folder)."""
    return name if rel == "." else f"{rel}/{name}"


def _suite_csv(folder: Path) -> pd.DataFrame:
    """A suite folder's suite.csv (what it names: the suite, its failed units); empty if it is not a table."""
    try:
        return pd.read_csv(folder / "suite.csv")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return pd.DataFrame()


def _suite_name(folder: Path) -> str:
    """The suite a folder holds: its suite.csv's ``suite`` column, else the folder's name."""
    head = _suite_csv(folder)
    return str(head["suite"].iloc[0]) if "suite" in head and len(head) else folder.name


def _figures(root: Path, folder: Path, sid: str, manifest: bool) -> list[Figure]:
    """The figures of ``folder`` (PNG, or SVG without a PNG of the same name), each with its sha256."""
    out = []
    pngs = {p.stem for p in folder.glob("*.png")}
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGES and p.is_file()):
        if path.suffix.lower() == ".svg" and path.stem in pngs:
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        rel = path.relative_to(root).as_posix()
        where = f"sha256 of {rel}" + (" (listed in the unit's MANIFEST.json)" if manifest else "")
        out.append(Figure(rel, IMAGES[path.suffix.lower()], data,
                          Number(f"{sid}/figure/{path.name}", digest[:16], digest, where)))
    return out


def _texts(root: Path, unit: Path, sid: str) -> list[tuple[str, Number]]:
    """The unit's config.yaml and theory.txt, shown as they are."""
    out = []
    for name in ("config.yaml", THEORY_FILE):
        path = unit / name
        if path.is_file():
            rel = path.relative_to(root).as_posix()
            text = path.read_text()
            out.append((rel, Number(f"{sid}/text/{name}", text, hashlib.sha256(text.encode()).hexdigest(), rel)))
    return out


def _run(root: Path, folder: Path) -> Section:
    """The section of a verified run folder: verdicts, figures, seed means, agreement, networks, config."""
    rel = folder.relative_to(root).as_posix()
    sid = rel  # a section's id is its path (``.``: the folder itself)
    source = _in(rel, SUMMARY_FILE)
    summary = load_summary(folder).drop(columns="run")
    theory = theory_that_ran(read_notes(folder)) or "unknown"
    section = Section(sid, f"Run {rel}" if rel != "." else f"Run {folder.name}", "run", rel)
    section.verdicts = _run_verdicts(summary, theory, sid, source)
    section.size = cell(f"{sid}/networks", len(summary), source)
    section.figures = _figures(root, folder, sid, manifest=True)
    keys = [k for k in RUN_KEYS if k in summary]
    tables = [stats.seed_means(summary, keys, RUN_MEASURES, sid, source),
              stats.agreement_table(_run_networks(summary, theory), sid, source)]
    if len(summary) <= PER_NETWORK_MAX:
        tables.append(rows_table(summary, ["net", *keys, "seed", "status", *RUN_MEASURES], sid, "networks",
                                 "Networks", source))
    section.tables = [t for t in tables if t is not None]
    section.texts = _texts(root, folder, sid)
    return section


def _run_networks(summary: pd.DataFrame, theory: str) -> pd.DataFrame:
    """One row per network: the theory that predicted it (its ODE fallback named), λ and its error."""
    err = summary["theory_max_rel_err"] if "theory_max_rel_err" in summary else pd.Series(np.nan, summary.index)
    names = pd.Series(theory if "theory_max_rel_err" in summary else "none", index=summary.index)
    if "theory_ode_fallback" in summary:
        names = names.where(~summary["theory_ode_fallback"].fillna(False).astype(bool), f"{theory} → ode fallback")
    frame = pd.DataFrame({"theory": names, "err": err.astype(float)})
    return frame.assign(lam=summary["lam"].astype(float)) if "lam" in summary else frame


def _run_verdicts(summary: pd.DataFrame, theory: str, sid: str, source: str) -> list[tuple[bool | None, Number]]:
    """How many networks finished, and how many the theory predicted within the agreement tolerance."""
    status = summary["status"].astype(str)
    n, diverged = len(summary), int((status == "diverged").sum())
    counts = {"networks": n, "ok": int((status == "ok").sum()), "diverged": diverged}
    out = [(diverged == 0, Number(f"{sid}/verdict/networks", f"{n} networks trained: {counts['ok']} finished, "
                                  f"{diverged} diverged.", counts, f"{source}: status"))]
    if "theory_max_rel_err" not in summary:
        out.append((None, Number(f"{sid}/verdict/theory", f"No theory predicted this run (theory: {theory}).",
                                 theory, f"{source} and theory.txt")))
        return out
    err = summary["theory_max_rel_err"].astype(float)
    had = err.dropna()
    within = int((had <= AGREEMENT_RTOL).sum())
    worst = float(had.max()) if len(had) else float("nan")
    value = {"theory": theory, "predicted": len(had), "within": within, "max": worst}
    line = (f"Theory `{theory}`: within {AGREEMENT_RTOL:.0%} of the simulated loss for {within} of the {len(had)} "
            f"networks it predicted (of {n}); largest relative error {worst:.3g}.")
    out.append((within == n, Number(f"{sid}/verdict/theory", line, value, f"{source}: theory_max_rel_err")))
    return out


def _suite(root: Path, folder: Path, view: SuiteView | None) -> Section:
    """The section of a suite folder: its verified units' rows, verdicts, figures, means, agreement, configs."""
    rel = folder.relative_to(root).as_posix()
    sid = rel  # a section's id is its path (``.``: the folder itself)
    name = _suite_name(folder)
    section = Section(sid, f"Suite {name}" + (f": {view.title}" if view and view.title else ""), "suite", rel)
    units, section.problems = _units(root, folder, sid)
    rows = _unit_rows(folder, units)
    source = _in(rel, f"runs/<unit>/{SUMMARY_FILE}")
    section.size = cell(f"{sid}/rows", len(rows), source)
    if view is not None and view.verdicts is not None and len(rows):
        section.verdicts = [(holds, Number(f"{sid}/verdict/{i}", line, holds, f"{source}: expectation {i + 1} of "
                                           f"the suite")) for i, (holds, line) in enumerate(view.verdicts(rows))]
    section.figures = _figures(root, folder, sid, manifest=False)
    columns = list(view.columns) if view is not None else [c for c in rows if c not in ("unit", "status")]
    key = [k for k in (view.key if view is not None else ("lam",)) if k in rows]
    axes = [*key, "seed"]
    tables = [stats.seed_means(rows, key, [c for c in columns if c not in axes], sid, source),
              stats.agreement_table(_suite_networks(units, rows), sid, _in(rel, "runs/<unit>"))]
    if len(rows):
        tables.append(rows_table(rows, [*axes, *columns, "unit"], sid, "rows", "Rows (one per configuration "
                                  "and seed)", source))
    section.tables = [t for t in tables if t is not None]
    section.texts = [text for unit in units for text in _texts(root, unit, f"{sid}/{unit.name}")]
    return section


def _units(root: Path, folder: Path, sid: str) -> tuple[list[Path], list[Number]]:
    """The suite's verified unit folders, and one Number per unit that is not (failed, or damaged)."""
    runs = folder / "runs"
    units = sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    good, problems = [], []
    failed = _failed_rows(folder)
    for unit in units:
        reason = integrity.verify_unit(unit)
        if reason is None:
            good.append(unit)
            continue
        why = failed.get(unit.name) or reason
        problems.append(Number(f"{sid}/unit/{unit.name}", f"unit {unit.name} left out: {why}", why,
                               f"{unit.relative_to(root).as_posix()}: integrity.verify_unit and suite.csv"))
    return good, problems


def _failed_rows(folder: Path) -> dict[str, str]:
    """unit → "failed (<its configuration>): <error>" for the suite.csv rows of status failed."""
    table = _suite_csv(folder)
    if "status" not in table or "unit" not in table:
        return {}
    out = {}
    for _, row in table[table["status"] == "failed"].iterrows():
        keys = ", ".join(f"{k} = {row[k]}" for k in ("arch", "angle", "part", "lam", "seed") if k in row
                         and pd.notna(row[k]))
        out[str(row["unit"])] = f"failed ({keys}): {row.get('error', '')}".rstrip(": ")
    return out


def _unit_rows(folder: Path, units: list[Path]) -> pd.DataFrame:
    """The rows of the verified units (their summary.csv: the unit's rows of suite.csv), unit by unit."""
    if not units:
        return pd.DataFrame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResultsWarning)  # each unit left out is a problem of the section already
        rows = load_summary(folder / "runs")
    rows = rows[rows["run"].isin({u.name for u in units})].drop(columns="run")
    order = [c for c in ("suite", "part", "arch", "angle", "lam", "seed") if c in rows]
    return rows.sort_values(order, kind="stable").reset_index(drop=True) if order else rows.reset_index(drop=True)


def _suite_networks(units: list[Path], rows: pd.DataFrame) -> pd.DataFrame:
    """One row per network of every verified unit: the theory that ran, λ and the agreement of its loss curves
    (the rows' theory_max_rel_err where they hold it; else measured from the unit's metrics, largest over its
    phases, with the same measure)."""
    parts = []
    for unit in units:
        mine = rows[rows["unit"].astype(str) == unit.name] if "unit" in rows else rows.iloc[:0]
        theory = _unit_theory(unit, mine)
        if "theory_max_rel_err" in mine:
            part = pd.DataFrame({"err": mine["theory_max_rel_err"].astype(float)})
            parts.append(part.assign(theory=theory, **({"lam": mine["lam"].astype(float)} if "lam" in mine else {})))
            continue
        parts.append(_measured_agreement(unit).assign(theory=theory))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _unit_theory(unit: Path, rows: pd.DataFrame) -> str:
    if "theory" in rows and rows["theory"].notna().any():
        return str(rows["theory"].dropna().iloc[0])
    return theory_that_ran(read_notes(unit)) or "unknown"


def _measured_agreement(unit: Path) -> pd.DataFrame:
    """Per network of a unit: λ and theory_max_rel_err (:func:`lazyrich.results.summarise`) over its loss curves,
    the largest over the phases; NaN where no theory predicted it."""
    frame = load(unit).drop(columns="run")
    phases = [part for _, part in frame.groupby("phase")] if "phase" in frame else [frame]
    errs = []
    for part in phases:
        summary = summarise(part, [c for c in ("lam",) if c in part])
        err = summary["theory_max_rel_err"] if "theory_max_rel_err" in summary else np.nan
        errs.append(summary[["net"] + (["lam"] if "lam" in summary else [])].assign(err=err))
    both = pd.concat(errs)
    agg = {"err": lambda e: e.max() if e.notna().any() else np.nan, **({"lam": "first"} if "lam" in both else {})}
    return both.groupby("net").agg(agg).reset_index(drop=True)

