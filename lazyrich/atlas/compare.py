"""Atlases side by side, cell by cell: what ``lazyrich compare`` does when its folders are atlases.

Every folder must be a finished atlas (its manifest verified, :func:`~lazyrich.atlas.runner.load_atlas`) over the
same two axis keys; the first is the reference. Cells line up by their axis values (1 and 1.0 alike); a cell that
only some atlases have keeps NaN for the others. Written to the output folder:

- ``atlas_cells.csv``: one row per cell, ``<measure> [<label>]`` for every atlas and ``<measure> Δ[<label>]``
  (that atlas minus the reference) for every other one;
- ``atlas.md`` (printed too): per measure and atlas, the cells both hold, the largest and the median |Δ|, the
  cells whose 95% seed intervals do not overlap (a difference beyond the seeds' spread), and each atlas's lazy/rich
  boundary as its summary records it;
- ``atlas_diff_<measure>.png`` (two atlases over the same axis values): the difference as a map, cells only one
  atlas holds hatched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lazyrich.atlas.runner import RECORD, load_atlas
from lazyrich.atlas.spec import AtlasConfig
from lazyrich.atlas.summary import key
from lazyrich.results.tables import markdown_table

__all__ = ["DEFAULT_MEASURES", "compare_atlases", "is_atlas", "main"]

DEFAULT_MEASURES = ("kernel_distance_final", "time_to_learn", "loss_final")
"""What is compared when no measure is named."""


def is_atlas(folder: str | Path) -> bool:
    """Whether ``folder`` is an atlas folder (it records an atlas, finished or not)."""
    return (Path(folder) / RECORD).is_file()


def _load(dirs: Sequence[Path]) -> list[pd.DataFrame]:
    """Each atlas's cell table, checked to share the reference's two axis keys."""
    try:
        tables = [load_atlas(d) for d in dirs]
    except FileNotFoundError as err:
        raise SystemExit(f"lazyrich compare: {err}") from None
    axes = [_axes(t) for t in tables]
    for d, pair in zip(dirs[1:], axes[1:], strict=True):
        if pair != axes[0]:
            raise SystemExit(f"lazyrich compare: {d} maps {' × '.join(pair)} but {dirs[0]} maps "
                             f"{' × '.join(axes[0])}; atlases are compared over the same two axes.")
    return tables


def _axes(cells: pd.DataFrame) -> tuple[str, str]:
    config = cells.attrs["atlas"]["config"]
    return config["x"]["key"], config["y"]["key"]


def _measures(tables: Sequence[pd.DataFrame], named: Sequence[str] | None) -> list[str]:
    """The measures to compare: ``named`` (each checked against the cell tables) or the defaults they hold."""
    held = set.intersection(*(set(t.columns) for t in tables))
    if named:
        unknown = [m for m in named if m not in held]
        if unknown:
            every = sorted(c for c in held if not c.endswith(("_lo", "_hi")) and pd.api.types.is_numeric_dtype(
                tables[0][c]))
            raise SystemExit(f"lazyrich compare: no measure {', '.join(unknown)} in every atlas; they hold "
                             f"{', '.join(every)}.")
        return list(named)
    return [m for m in DEFAULT_MEASURES if m in held]


def _side_by_side(tables: Sequence[pd.DataFrame], labels: Sequence[str], measures: Sequence[str]) -> pd.DataFrame:
    """One row per cell of any atlas: the axis values, each atlas's measures (and intervals), and the differences."""
    x, y = _axes(tables[0])
    wide: pd.DataFrame | None = None
    for cells, label in zip(tables, labels, strict=True):
        kept = [c for m in measures for c in (m, f"{m}_lo", f"{m}_hi") if c in cells]
        part = cells[[x, y, *kept]].rename(columns={c: f"{c} [{label}]" for c in kept})
        part = part.assign(_kx=part[x].map(key), _ky=part[y].map(key))
        wide = part if wide is None else _merge(wide, part, x, y)
    for label in labels[1:]:
        for m in measures:
            wide[f"{m} Δ[{label}]"] = wide[f"{m} [{label}]"] - wide[f"{m} [{labels[0]}]"]
    return wide.drop(columns=["_kx", "_ky"])


def _merge(wide: pd.DataFrame, part: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Outer join on the cell keys, the axis values filled from whichever side has the cell."""
    merged = wide.merge(part, on=["_kx", "_ky"], how="outer", suffixes=("", "_other"))
    for axis in (x, y):
        merged[axis] = merged[axis].where(merged[axis].notna(), merged[f"{axis}_other"])
    return merged.drop(columns=[f"{x}_other", f"{y}_other"])


def _apart(wide: pd.DataFrame, measure: str, reference: str, label: str) -> int:
    """Cells whose 95% seed intervals of ``measure`` in the two atlases do not overlap."""
    cols = [f"{measure}_{end} [{who}]" for who in (reference, label) for end in ("lo", "hi")]
    if not all(c in wide for c in cols):
        return 0
    lo_a, hi_a, lo_b, hi_b = (wide[c].to_numpy(dtype=float) for c in cols)
    return int(((hi_a < lo_b) | (hi_b < lo_a)).sum())


def _differences(wide: pd.DataFrame, labels: Sequence[str], measures: Sequence[str]) -> pd.DataFrame:
    """Per measure and atlas against the reference: cells in both, max and median |Δ|, cells apart."""
    rows = []
    for label in labels[1:]:
        for m in measures:
            delta = wide[f"{m} Δ[{label}]"].to_numpy(dtype=float)
            both = np.isfinite(delta)
            size = np.abs(delta[both])
            rows.append({"measure": m, "atlas": label, "reference": labels[0], "cells in both": int(both.sum()),
                         "largest abs Δ": float(size.max()) if size.size else np.nan,
                         "median abs Δ": float(np.median(size)) if size.size else np.nan,
                         "cells apart (95% intervals)": _apart(wide, m, labels[0], label)})
    return pd.DataFrame(rows)


def _boundaries(tables: Sequence[pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    rows = []
    for cells, label in zip(tables, labels, strict=True):
        found: dict[str, Any] = cells.attrs["atlas"]["summary"].get("boundary", {})
        rows.append({"atlas": label, "cells": len(cells), "boundary theory": found.get("theory"),
                     "level S": found.get("level"), "cells classified differently": found.get("differ"),
                     "offset (cells)": found.get("offset")})
    return pd.DataFrame(rows)


def _maps(tables: Sequence[pd.DataFrame], wide: pd.DataFrame, labels: Sequence[str], measures: Sequence[str],
          out: Path) -> dict[str, Path]:
    """Difference maps of two atlases over the same axis values (none otherwise)."""
    from lazyrich.atlas.maps import difference_map

    configs = [AtlasConfig.from_record(t.attrs["atlas"]["config"]) for t in tables]
    grids = {tuple(tuple(map(key, axis.values)) for axis in (c.x, c.y)) for c in configs}
    if len(configs) != 2 or len(grids) != 1:
        return {}
    written = {}
    for m in measures:
        name = f"atlas_diff_{m}.png"
        written[name] = difference_map(wide, configs[0], f"{m} Δ[{labels[1]}]",
                                       f"{m}: {labels[1]} − {labels[0]}", out / name)
    return written


def compare_atlases(dirs: Sequence[str | Path], labels: Sequence[str], out: str | Path,
                    measures: Sequence[str] | None = None) -> dict[str, Path]:
    """Write the comparison of the atlas folders ``dirs`` (see the module docstring) into ``out``; returns the files
    by name. ``measures``: columns of the cell tables (each checked), None: :data:`DEFAULT_MEASURES`."""
    dirs = [Path(d) for d in dirs]
    tables = _load(dirs)
    chosen = _measures(tables, measures)
    wide = _side_by_side(tables, labels, chosen)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wide.to_csv(out / "atlas_cells.csv", index=False)
    text = "## atlas boundaries\n\n" + markdown_table(_boundaries(tables, labels))
    if len(tables) > 1:
        text += f"\n\n## atlas differences (against {labels[0]})\n\n" + markdown_table(
            _differences(wide, labels, chosen))
    (out / "atlas.md").write_text(text + "\n")
    print(f"\n{text}")
    written = {"atlas_cells.csv": out / "atlas_cells.csv", "atlas.md": out / "atlas.md",
               **_maps(tables, wide, labels, chosen, out)}
    print(f"\ncompare: wrote {', '.join(sorted(written))} to {out}")
    return written


def main(argv: Sequence[str]) -> bool:
    """``lazyrich compare`` on atlas folders (its words: :func:`lazyrich.results.compare.parse_arguments`); False,
    having done nothing, when none of the folders is an atlas."""
    from lazyrich.results.compare import parse_arguments, source_labels

    args = parse_arguments(argv)
    dirs = [Path(d) for d in args.dirs]
    atlases = [is_atlas(d) for d in dirs]
    if not any(atlases):
        return False
    if not all(atlases):
        others = ", ".join(str(d) for d, a in zip(dirs, atlases, strict=True) if not a)
        raise SystemExit(f"lazyrich compare: {others}: not an atlas folder; atlases are compared with atlases only "
                         f"(pass only atlas folders, or only run, sweep and bench folders).")
    compare_atlases(dirs, source_labels(dirs, args.label), args.out, args.metric)
    return True
