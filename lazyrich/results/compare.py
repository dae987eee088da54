"""``lazyrich compare``: finished runs or sweeps side by side — the offline counterpart of a W&B dashboard.

    lazyrich compare DIR [DIR ...] [--out DIR] [--metric loss kernel_distance ...] [--label NAME ...]

Each DIR is a run folder, a sweep folder or a bench folder (a file is refused: pass the folder that holds it).
Atlas folders are compared cell by cell instead (:mod:`lazyrich.atlas.compare`, which ``lazyrich compare`` calls
when its folders are atlases).
Its long metrics tables are loaded with :func:`lazyrich.results.load` (verified units only, and of a bench only the
units its ``suite.csv`` lists), its ``suite.csv`` tables with the rows of verified units only. Written to
``--out``:

- ``final.csv`` / ``final.md``: the last logged value of ``sim/<metric>`` and ``theory/<metric>`` per
  configuration, one column per source;
- ``summary.csv`` / ``.md``: the columns of the runs' ``summary.csv`` that ``--metric`` names (e.g.
  ``time_to_1pct``, ``loss_final``) per configuration, one column per source;
- ``suite_<name>.csv`` / ``.md``: each suite's headline columns (or the ``--metric`` columns it has) per
  configuration, one column per source;
- ``curves.png``: every source's curves overlaid against t (simulation solid, theory dotted, one colour per
  source and configuration).

A configuration is a row keyed by the axes (``lam``, ``arch``, ``scale``, ``lr``, …) that tell networks apart
within a source, so that sources line up: an axis constant within each source (two sweeps at different
``scale``) is not a key, and ``seed`` is averaged over when the sources ran different seeds. Each table says below
it which axes differ between the sources. ``--metric`` names are checked: one that no source holds is refused,
with the metrics the sources do hold. The Markdown tables are printed too.
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

__all__ = ["CONFIG_COLUMNS", "DEFAULT_METRICS", "Verdicts", "compare", "main", "parse_arguments", "source_labels"]

CONFIG_COLUMNS = ("suite", "part", "arch", "angle", "lam", "scale", "lr", "seed")
"""Columns that identify a configuration (whichever a table has), in the order they are tried as keys."""

DEFAULT_METRICS = ("loss", "kernel_distance")
"""What is compared when no ``--metric`` is given."""

_NOT_METRICS = {"net", "unit", "status", "error", "run", "source", "step", "t", "phase", *CONFIG_COLUMNS}

Table = tuple[pd.DataFrame, list[str]]
"""A side-by-side table and its notes (which axes differ between the sources)."""


def source_labels(dirs: Sequence[Path], labels: Sequence[str] | None) -> list[str]:
    """``labels`` checked (one per folder), or the folders' names made unique."""
    if labels:
        if len(labels) != len(dirs):
            raise SystemExit(f"lazyrich compare: {len(labels)} --label values for {len(dirs)} folders.")
        return list(labels)
    out: list[str] = []
    for d in dirs:
        name = d.resolve().name
        out.append(name if name not in out else f"{name}#{len(out)}")
    return out


def _shown(values: Sequence) -> str:
    text = [f"{v:g}" if isinstance(v, float) else str(v) for v in values[:5]]
    return ", ".join(text) + (f", … ({len(values)} values)" if len(values) > 5 else "")


def _varies(part: pd.DataFrame, keys: Sequence[str], axis: str) -> bool:
    """Whether ``axis`` tells networks of one source apart beyond ``keys``."""
    if not keys:
        return part[axis].nunique() > 1
    return bool((part.groupby(list(keys), dropna=False)[axis].nunique() > 1).any())


def _line_up(table: pd.DataFrame, axes: Sequence[str], sources: Sequence[str]) -> tuple[list[str], list[str]]:
    """(keys, notes) of ``table`` (a ``source`` column, one row per network): the ``axes`` that tell networks
    apart within some source, each beyond the keys before it, ``seed`` only when every source ran the same seeds;
    a note for each axis whose values differ between sources."""
    present = [a for a in axes if a in table and table[a].notna().any()]
    parts = {s: table[table["source"] == s] for s in sources if (table["source"] == s).any()}
    keys: list[str] = []
    for axis in present:
        if any(_varies(part, keys, axis) for part in parts.values()):
            keys.append(axis)
    notes = []
    for axis in present:
        values = {s: sorted(set(part[axis].dropna())) for s, part in parts.items()}
        if len({tuple(v) for v in values.values()}) < 2:
            continue
        if axis == "seed" and "seed" in keys:
            keys.remove("seed")
            how = "averaged over seeds"
        elif axis in keys:
            how = "a key: a value only some sources have gives a row with only their columns"
        else:
            how = f"not a key: the rows line up by {', '.join(keys) or 'nothing else'}"
        sides = "; ".join(f"{s}: {_shown(v)}" for s, v in values.items())
        notes.append(f"{axis} differs between sources ({sides}): {how}.")
    return keys or present[:1] or ["run"], notes


def _side_by_side(table: pd.DataFrame, values: Sequence[str], sources: Sequence[str],
                  axes: Sequence[str] = CONFIG_COLUMNS) -> Table:
    """Rows = configurations (:func:`_line_up`) that some source has, columns = '<value> [<source>]', means over
    repeats (a NaN, e.g. a time to learn never reached, stays NaN)."""
    keys, notes = _line_up(table, axes, sources)
    numbers = table.assign(**{v: table[v].astype(float) for v in values})
    wide = numbers.groupby([*keys, "source"], dropna=False)[list(values)].mean().unstack("source")
    wide = wide[[(v, s) for v in values for s in sources if (v, s) in wide.columns]]
    wide.columns = [f"{value} [{source}]" for value, source in wide.columns]
    return wide, notes


def _final_table(frame: pd.DataFrame, metrics: Sequence[str], sources: Sequence[str]) -> Table | None:
    last = frame.sort_values("t").groupby(["source", "run", "net"], sort=False).tail(1)
    values = [c for m in metrics for c in (f"sim/{m}", f"theory/{m}") if c in last and last[c].notna().any()]
    return _side_by_side(last, values, sources) if values else None


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


def _suite_rows(dirs: Sequence[Path], labels: Sequence[str], verify: Callable[[Path], str | None]) -> pd.DataFrame:
    """Every suite.csv under ``dirs`` (rows of verified units only), with a ``source`` column."""
    parts = []
    for d, label in zip(dirs, labels, strict=True):
        for f in sorted(d.rglob("suite.csv")):
            table = _verified_rows(f, verify).assign(source=label)
            if table.empty:
                continue
            if "suite" not in table:  # written before suite.csv had the column: the folder names the suite
                table.insert(0, "suite", f.parent.name)
            parts.append(table)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _numeric(table: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return [c for c in columns if c in table and (pd.api.types.is_numeric_dtype(table[c]) or table[c].dtype == bool)]


def _suite_tables(rows: pd.DataFrame, metrics: Sequence[str] | None, headlines: Mapping[str, Sequence[str]],
                  sources: Sequence[str]) -> dict[str, Table]:
    tables = {}
    for name, table in (rows.groupby("suite", sort=False) if len(rows) else ()):
        chosen = [m for m in metrics or () if m in table]
        values = _numeric(table, chosen or [c for c in headlines.get(str(name), ()) if c not in CONFIG_COLUMNS])
        if values:
            tables[str(name)] = _side_by_side(table, values, sources, [c for c in CONFIG_COLUMNS if c != "suite"])
    return tables


def _summaries(dirs: Sequence[Path], labels: Sequence[str], verify: Callable[[Path], str | None]) -> pd.DataFrame:
    """The runs' summary.csv rows under ``dirs``, with a ``source`` column (a suite unit's rows, which carry a
    ``unit`` column, are its suite.csv rows and are compared there)."""
    parts = []
    for d, label in zip(dirs, labels, strict=True):
        with warnings.catch_warnings():  # the units it leaves out were named when their metrics were read
            warnings.simplefilter("ignore", results.ResultsWarning)
            try:
                table = results.load_summary(d, verify=verify)
            except (FileNotFoundError, ValueError):
                continue
        own = table[table["unit"].isna()] if "unit" in table else table
        if len(own):
            parts.append(own.assign(source=label))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _known(frames: Sequence[pd.DataFrame], summaries: pd.DataFrame, suites: pd.DataFrame) -> dict[str, list[str]]:
    """The metrics the sources hold, by where: per step (``sim/<metric>``), in summaries, in suite tables."""
    steps = sorted({c[4:] for f in frames for c in f.columns if c.startswith("sim/")})
    return {"per-step metrics": steps,
            "summary columns": sorted(set(_numeric(summaries, [c for c in summaries if c not in _NOT_METRICS]))),
            "suite columns": sorted(set(_numeric(suites, [c for c in suites if c not in _NOT_METRICS])))}


def _held(known: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{where}: {', '.join(names)}" for where, names in known.items() if names) or "none"


def _check_metrics(metrics: Sequence[str], known: Mapping[str, list[str]]) -> None:
    every = {m for names in known.values() for m in names}
    unknown = [m for m in metrics if m not in every]
    if unknown:
        raise SystemExit(f"lazyrich compare: no metric {', '.join(unknown)} in these folders; they hold "
                         f"{_held(known)}; pass some of these with --metric.")


def _write(tables: Mapping[str, Table], out: Path) -> dict[str, Path]:
    written = {}
    for name, (table, notes) in tables.items():
        table.to_csv(out / f"{name}.csv")
        text = markdown_table(table, index=True) + "".join(f"\n\n{note}" for note in notes)
        (out / f"{name}.md").write_text(text + "\n")
        written[f"{name}.csv"], written[f"{name}.md"] = out / f"{name}.csv", out / f"{name}.md"
        print(f"\n## {name}\n\n{text}")
    return written


def _curves(frame: pd.DataFrame, metrics: Sequence[str], labels: Sequence[str], out: Path) -> dict[str, Path]:
    keys = [c for c in ("suite", "part", "arch", "angle", "lam") if c in frame and frame[c].notna().any()]
    frame["curve"] = frame["source"]
    for key in keys:
        frame["curve"] += " " + key + "=" + frame[key].map(lambda v: f"{v:g}" if isinstance(v, float) else str(v))
    shown = [m for m in metrics if f"sim/{m}" in frame]
    if not shown:
        return {}
    fig = plots.curves(frame, shown, hue="curve", title="compare: " + " vs ".join(labels))
    return {"curves.png": plots.save(fig, out / "curves.png")}


def _folders(dirs: Sequence[str | Path]) -> list[Path]:
    folders = [Path(d) for d in dirs]
    for d in folders:
        if not d.exists():
            raise SystemExit(f"lazyrich compare: {d} does not exist; pass run, sweep or bench folders.")
        if not d.is_dir():
            raise SystemExit(f"lazyrich compare: {d} is a file; pass run, sweep or bench folders (e.g. {d.parent}).")
    return folders


def compare(
    dirs: Sequence[str | Path],
    out: str | Path,
    metrics: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    headlines: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Path]:
    """Write the comparison of ``dirs`` into ``out`` (see module docstring); returns the files by name.
    ``metrics``: per-step metrics, summary columns or suite columns to compare, each checked (one no source holds
    is refused, naming those they hold); None: :data:`DEFAULT_METRICS` where the sources have them, and each
    suite's headline columns. ``headlines`` names each suite's headline columns (``lazyrich compare`` passes every
    registered suite's), the ones a suite table shows when ``metrics`` names none of its columns."""
    dirs = _folders(dirs)
    labels = source_labels(dirs, labels)
    out = Path(out)
    frames = []
    verdicts = Verdicts()  # each unit is verified once, for its metrics and its suite.csv rows alike
    for d, label in zip(dirs, labels, strict=True):
        try:
            frames.append(results.load(d, verify=verdicts).assign(source=label))
        except FileNotFoundError as err:
            print(f"[compare] {err} Only its suite.csv (if any) is compared.")
    suites = _suite_rows(dirs, labels, verdicts)
    if not frames and suites.empty:
        raise SystemExit("lazyrich compare: nothing to compare: no finished, intact unit was read from these folders "
                         "(the warnings above say why); re-run them.")
    named = list(metrics) if metrics is not None else None
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    needs_summary = named is not None and any(f"sim/{m}" not in frame and m not in suites for m in named)
    summaries = _summaries(dirs, labels, verdicts) if needs_summary else pd.DataFrame()
    if named is not None:
        _check_metrics(named, _known(frames, summaries, suites))
    chosen = named if named is not None else list(DEFAULT_METRICS)
    tables: dict[str, Table] = {}
    final = _final_table(frame, chosen, labels) if frames else None
    if final is not None:
        tables["final"] = final
    in_summary = _numeric(summaries, [m for m in chosen if m not in _NOT_METRICS])
    if in_summary:
        tables["summary"] = _side_by_side(summaries, in_summary, labels)
    tables.update({f"suite_{k}": v for k, v in _suite_tables(suites, named, headlines or {}, labels).items()})
    if not tables:
        raise SystemExit(f"lazyrich compare: none of the metrics {', '.join(chosen)} is in these folders; they hold "
                         f"{_held(_known(frames, summaries, suites))}; pass some of these with --metric.")
    out.mkdir(parents=True, exist_ok=True)
    written = _curves(frame, chosen, labels, out) if frames else {}
    written.update(_write(tables, out))
    print(f"\ncompare: wrote {', '.join(sorted(written))} to {out}")
    return written


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The words of ``lazyrich compare``: dirs, --out, --metric, --label."""
    parser = argparse.ArgumentParser(prog="lazyrich compare", description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="+", help="run, sweep or bench folders, or atlas folders")
    parser.add_argument("--out", default="compare", help="output folder (default: ./compare)")
    parser.add_argument(
        "--metric",
        nargs="+",
        default=None,
        help="metrics to compare: sim/<metric> and theory/<metric> of the runs, columns of their summary.csv "
        "(e.g. time_to_1pct) or suite.csv columns; each must be in some folder (default: loss kernel_distance "
        "where present, and each suite's headline columns); of atlases, columns of their cell tables",
    )
    parser.add_argument(
        "--label", nargs="+", default=None, help="one name per folder (default: folder names)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, headlines: Mapping[str, Sequence[str]] | None = None) -> None:
    """Entry point of ``lazyrich compare``; ``headlines`` as in :func:`compare`."""
    args = parse_arguments(argv)
    compare(args.dirs, args.out, args.metric, args.label, headlines)
