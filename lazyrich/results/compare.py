"""``lazyrich compare``: finished runs or sweeps side by side — the offline counterpart of a W&B dashboard.

    lazyrich compare DIR [DIR ...] [--out DIR] [--metric loss kernel_distance ...] [--label NAME ...]

Each DIR is a run folder, a sweep folder or a bench folder (a file is refused: pass the folder that holds it).
Its long metrics tables are loaded with :func:`lazyrich.results.load` (verified units only, and of a bench only the
units its ``suite.csv`` lists), its ``suite.csv`` tables with the rows of verified units only. Written to ``--out``:

- ``final.csv`` / ``final.md``: the last logged value of ``sim/<metric>`` and ``theory/<metric>`` per
  configuration (lam, arch, …, seeds averaged), one column per source;
- ``suite_<name>.csv`` / ``.md``: each suite's headline columns per configuration, one column per source;
- ``curves.png``: every source's curves overlaid against t (simulation solid, theory dotted, one colour per
  source and configuration).

The Markdown tables are printed too.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from lazyrich import plots, results
from lazyrich.results.names import canonical
from lazyrich.results.tables import markdown_table
from lazyrich.store import integrity

__all__ = ["CONFIG_COLUMNS", "Verdicts", "compare", "main"]

CONFIG_COLUMNS = ("suite", "part", "arch", "angle", "lam", "scale", "lr", "seed")
"""Columns that identify a configuration (whichever a table has)."""


def _labels(dirs: Sequence[Path], labels: Sequence[str] | None) -> list[str]:
    if labels:
        if len(labels) != len(dirs):
            raise SystemExit(f"lazyrich compare: {len(labels)} --label values for {len(dirs)} folders.")
        return list(labels)
    out: list[str] = []
    for d in dirs:
        name = d.resolve().name
        out.append(name if name not in out else f"{name}#{len(out)}")
    return out


def _side_by_side(table: pd.DataFrame, keys: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Rows = configurations (``keys``), columns = '<value> [<source>]', means over repeats."""
    wide = table.pivot_table(
        index=list(keys), columns="source", values=list(values), aggfunc="mean", dropna=False
    )
    sources = list(dict.fromkeys(table["source"]))
    wide = wide[[(v, s) for v in values for s in sources if (v, s) in wide.columns]]
    wide.columns = [f"{value} [{source}]" for value, source in wide.columns]
    return wide.dropna(how="all")


def _final_table(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame | None:
    last = frame.sort_values("t").groupby(["source", "run", "net"], sort=False).tail(1)
    keys = [c for c in CONFIG_COLUMNS if c in last and c != "lr" and last[c].notna().any()]
    values = [c for m in metrics for c in (f"sim/{m}", f"theory/{m}") if c in last and last[c].notna().any()]
    if not values:
        return None
    return _side_by_side(last, keys or ["run"], values)


class Verdicts:
    """:func:`lazyrich.store.integrity.verify_unit` once per unit folder: a comparison reads a unit's metrics and its
    suite.csv rows, and both ask whether the unit is intact; the checksums are computed for the first."""

    def __init__(self) -> None:
        self._seen: dict[Path, str | None] = {}

    def __call__(self, run_dir: str | Path) -> str | None:
        """``None`` if ``run_dir`` is a finished, intact unit, else why not (remembered)."""
        key = Path(run_dir).resolve()
        if key not in self._seen:
            self._seen[key] = integrity.verify_unit(key)
        return self._seen[key]


def _verified_rows(path: Path, verify: Callable[[Path], str | None]) -> pd.DataFrame:
    """The rows of a suite.csv whose unit (``runs/<unit>/``) is finished and intact by ``verify``; others are
    warned about."""
    try:
        table = canonical(pd.read_csv(path, dtype={"unit": str}))
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        warnings.warn(f"skipped {path}: not a readable table ({type(err).__name__}: {err})",
                      results.ResultsWarning, stacklevel=3)
        return pd.DataFrame()
    if "unit" not in table or not (path.parent / "runs").is_dir():
        return table
    reasons = {u: verify(path.parent / "runs" / u) for u in table["unit"].dropna().unique()}
    for unit, reason in reasons.items():
        if reason is not None and (table.loc[table["unit"] == unit, "status"] != "failed").any():
            warnings.warn(f"skipped the rows of unit {unit} in {path}: {reason}", results.ResultsWarning,
                          stacklevel=3)
    return table[table["unit"].map(lambda u: reasons.get(u) is None)]


def _suite_tables(
    dirs: Sequence[Path], labels: Sequence[str], metrics: Sequence[str], verify: Callable[[Path], str | None],
    headlines: Mapping[str, Sequence[str]],
) -> dict[str, pd.DataFrame]:
    parts = []
    for d, label in zip(dirs, labels, strict=True):
        for f in sorted(d.rglob("suite.csv")):
            table = _verified_rows(f, verify).assign(source=label)
            if table.empty:
                continue
            if "suite" not in table:  # written before suite.csv had the column: the folder names the suite
                table.insert(0, "suite", f.parent.name)
            parts.append(table)
    if not parts:
        return {}
    tables = {}
    for name, table in pd.concat(parts, ignore_index=True).groupby("suite", sort=False):
        keys = [
            c for c in CONFIG_COLUMNS if c in table and c not in ("suite", "lr") and table[c].notna().any()
        ]
        chosen = [m for m in metrics if m in table]
        headline = headlines.get(str(name), ())
        values = chosen or [c for c in headline if c in table and c not in keys]
        values = [c for c in values if pd.api.types.is_numeric_dtype(table[c]) or table[c].dtype == bool]
        if values:
            table = table.assign(**{c: table[c].astype(float) for c in values})
            tables[str(name)] = _side_by_side(table, keys, values)
    return tables


def compare(
    dirs: Sequence[str | Path],
    out: str | Path,
    metrics: Sequence[str] = ("loss", "kernel_distance"),
    labels: Sequence[str] | None = None,
    headlines: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Path]:
    """Write the comparison of ``dirs`` into ``out`` (see module docstring); returns the files by name.
    ``headlines`` names each suite's headline columns (``lazyrich compare`` passes every registered suite's), the
    ones a suite table shows when ``metrics`` names none of its columns."""
    dirs = [Path(d) for d in dirs]
    for d in dirs:
        if not d.exists():
            raise SystemExit(f"lazyrich compare: {d} does not exist; pass run, sweep or bench folders.")
        if not d.is_dir():
            raise SystemExit(f"lazyrich compare: {d} is a file; pass run, sweep or bench folders (e.g. {d.parent}).")
    labels = _labels(dirs, labels)
    out = Path(out)
    written: dict[str, Path] = {}
    frames = []
    verdicts = Verdicts()  # each unit is verified once, for its metrics and its suite.csv rows alike
    for d, label in zip(dirs, labels, strict=True):
        try:
            frames.append(results.load(d, verify=verdicts).assign(source=label))
        except FileNotFoundError as err:
            print(f"[compare] {err} Only its suite.csv (if any) is compared.")
    suites = _suite_tables(dirs, labels, metrics, verdicts, headlines or {})
    if not frames and not suites:
        raise SystemExit("lazyrich compare: nothing to compare: no finished, intact unit was read from these folders "
                         "(the warnings above say why); re-run them.")
    out.mkdir(parents=True, exist_ok=True)
    tables = {}
    if frames:
        frame = pd.concat(frames, ignore_index=True)
        final = _final_table(frame, metrics)
        if final is not None:
            tables["final"] = final
        keys = [c for c in ("suite", "part", "arch", "angle", "lam") if c in frame and frame[c].notna().any()]
        frame["curve"] = frame["source"]
        for key in keys:
            frame["curve"] += (
                " " + key + "=" + frame[key].map(lambda v: f"{v:g}" if isinstance(v, float) else str(v))
            )
        shown = [m for m in metrics if f"sim/{m}" in frame]
        if shown:
            fig = plots.curves(frame, shown, hue="curve", title="compare: " + " vs ".join(labels))
            written["curves.png"] = plots.save(fig, out / "curves.png")
    tables.update({f"suite_{k}": v for k, v in suites.items()})
    if not tables:
        known = sorted({c[4:] for f in frames for c in f.columns if c.startswith("sim/")})
        raise SystemExit(
            f"lazyrich compare: none of the metrics {list(metrics)} is in these folders; the runs "
            f"log {known}."
        )
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv")
        text = markdown_table(table, index=True)
        (out / f"{name}.md").write_text(text + "\n")
        written[f"{name}.csv"], written[f"{name}.md"] = out / f"{name}.csv", out / f"{name}.md"
        print(f"\n## {name}\n\n{text}")
    print(f"\ncompare: wrote {', '.join(sorted(written))} to {out}")
    return written


def main(argv: Sequence[str] | None = None, headlines: Mapping[str, Sequence[str]] | None = None) -> None:
    """Entry point of ``lazyrich compare``; ``headlines`` as in :func:`compare`."""
    parser = argparse.ArgumentParser(prog="lazyrich compare", description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="+", help="run, sweep or bench folders")
    parser.add_argument("--out", default="compare", help="output folder (default: ./compare)")
    parser.add_argument(
        "--metric",
        nargs="+",
        default=["loss", "kernel_distance"],
        help="metrics to compare: sim/<metric> and theory/<metric> of the runs, or suite.csv "
        "columns (default: loss kernel_distance, and each suite's headline columns)",
    )
    parser.add_argument(
        "--label", nargs="+", default=None, help="one name per folder (default: folder names)"
    )
    args = parser.parse_args(argv)
    compare(args.dirs, args.out, args.metric, args.label, headlines)
