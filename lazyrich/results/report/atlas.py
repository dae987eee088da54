"""An atlas folder as a section of the report: read from its files (``atlas.json``, ``cells.parquet``, the maps),
never from the atlas code, so results stays below atlas.

Verdicts: each exact theory's agreement inside its domain (at least 99% of those cells within the atlas's recorded
tolerances; an approximation's agreement is shown, not judged) and the lazy/rich boundary (the simulation's within
one cell of the theory's). Tables: where each theory breaks along each axis, and the cells (up to
:data:`~lazyrich.results.report.build.PER_NETWORK_MAX`; the cell table holds them all). The maps inline, the
atlas's config as recorded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from lazyrich.results.report.model import Number, Section, Table, cell, rows_table

__all__ = ["AGREE_FRACTION", "ATLAS_FILES", "BOUNDARY_CELLS", "atlas_section"]

ATLAS_FILES = frozenset({"atlas.json", "cells.parquet"})
"""The files that make a folder an atlas for the report."""
AGREE_FRACTION = 0.99
"""A theory's agreement verdict holds when at least this fraction of its in-domain cells agree."""
BOUNDARY_CELLS = 1.0
"""The boundary verdict holds when the simulation's lazy/rich boundary is within this many cells of the theory's."""
SHOWN_MEASURES = ("n", "diverged", "kernel_distance_final", "time_to_learn", "loss_final", "lam_drift")
THEORY_MEASURES = ("gap_kernel_final", "gap_time", "gap_loss", "in_domain")


def _is_exact(theory: str) -> bool:
    """Whether ``theory`` claims to be exact inside its domain (its agreement is then a verdict)."""
    from lazyrich.theory import get_theory

    try:
        return bool(get_theory(theory).exact)
    except (KeyError, ValueError):
        return False


def _agreement_verdicts(summary: dict[str, Any], sid: str, source: str) -> list[tuple[bool | None, Number]]:
    out = []
    for theory, found in summary.get("agreement", {}).items():
        n, good, fraction = found.get("cells_in_domain", 0), found.get("cells_agree", 0), found.get("fraction")
        tol = found.get("tolerances", {})
        within = ", ".join(f"{k} ≤ {v:g}" for k, v in tol.items()) or "the atlas's tolerances"
        exact = _is_exact(theory)
        holds = None if not n or not exact else fraction >= AGREE_FRACTION
        asks = (f"the verdict asks for {AGREE_FRACTION:.0%}" if exact else
                "an approximation, expected to break somewhere: not judged")
        text = (f"theory {theory} agrees in {good} of {n} cells of its domain ({within}; {asks})" if n else
                f"theory {theory}: no cell of the atlas is in its domain")
        out.append((holds, Number(f"{sid}/verdict/agreement/{theory}", text, found, f"{source}: agreement")))
    return out


def _boundary_verdict(summary: dict[str, Any], sid: str, source: str) -> list[tuple[bool | None, Number]]:
    found = summary.get("boundary")
    if not found or found.get("offset") is None:
        return []
    offset = float(found["offset"])
    text = (f"the simulation's lazy/rich boundary (S = {found['level']:.3g}) lies within {offset:g} cell(s) of theory "
            f"{found['theory']}'s; {found['differ']} cell(s) classified differently")
    return [(offset <= BOUNDARY_CELLS, Number(f"{sid}/verdict/boundary", text, found, f"{source}: boundary"))]


def _breaks_table(summary: dict[str, Any], sid: str, source: str) -> Table | None:
    body = []
    for theory, axes in summary.get("breaks", {}).items():
        for axis, found in axes.items():
            for other, first in found.items():
                stem = f"{sid}/breaks/{theory}/{axis}/{other}"
                body.append([cell(f"{stem}/theory", theory, source), cell(f"{stem}/axis", axis, source),
                             cell(f"{stem}/at", other, source),
                             cell(f"{stem}/first", "never on the grid" if first is None else first, source)])
    if not body:
        return None
    from lazyrich.plots.labels import percent  # local: the plots package imports matplotlib

    level = percent(summary.get("break_level", 0.05))  # an atlas sealed before break_level was at 5%
    return Table(f"{sid}/breaks", f"Where each theory deviates by more than {level}",
                 ["theory", "along", "at the other axis's value", f"first value past {level}"], body,
                 note="deviation: max(gap_loss, gap_kernel) of the theory against the simulation, per cell.")


def atlas_section(root: Path, folder: Path, figures: list, limit: int) -> Section:
    """The section of a verified atlas folder (``figures``: its maps, as the caller reads a folder's figures)."""
    rel = folder.relative_to(root).as_posix()
    sid, source = rel, f"{rel}/atlas.json" if rel != "." else "atlas.json"
    text = (folder / "atlas.json").read_text()
    record = json.loads(text)
    config, summary = record["config"], record.get("summary", {})
    cells = pd.read_parquet(folder / "cells.parquet")
    axes = [config["x"]["key"], config["y"]["key"]]
    section = Section(sid, f"Atlas {rel if rel != '.' else folder.name}: {axes[0]} × {axes[1]}", "atlas", rel)
    section.verdicts = _agreement_verdicts(summary, sid, source) + _boundary_verdict(summary, sid, source)
    section.size = cell(f"{sid}/networks", summary.get("networks", int(cells["n"].sum())), source)
    section.figures = figures
    cells_source = source.replace("atlas.json", "cells.parquet")
    theories = list(config.get("theories", []))
    columns = [*axes, *SHOWN_MEASURES, *(f"{t}/{m}" for t in theories for m in THEORY_MEASURES)]
    note = "" if len(cells) <= limit else f"the first {limit} of {len(cells)} cells; cells.parquet holds them all."
    tables = [_breaks_table(summary, sid, source),
              rows_table(cells.head(limit), columns, sid, "cells", "Cells (seed means)", cells_source, note)]
    section.tables = [t for t in tables if t is not None]
    config_text = json.dumps(config, indent=1)
    section.texts = [(source, Number(f"{sid}/text/atlas.json", config_text,
                                     hashlib.sha256(config_text.encode()).hexdigest(), source))]
    return section
