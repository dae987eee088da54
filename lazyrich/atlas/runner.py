"""Running an atlas into its folder, resumably, and reading it back.

The folder::

    <atlas>/atlas.json          the atlas's record (axes, base config, theories) and its summary
    <atlas>/runs/<unit>/        one run folder per unit (lazyrich.results.load reads them all)
    <atlas>/networks-<unit>.parquet   the unit's network table (atlas.network_rows)
    <atlas>/cells.parquet       the cell table (atlas.cells), read by load_atlas
    <atlas>/map_*.png, agreement_*.png, deviation_*.png   the maps (atlas.maps), a PDF beside each
    <atlas>/MANIFEST.json, DONE written last: the atlas's own files, each with its size and sha256

A unit is one run: the batch axes of the atlas inside it, one value of each other axis. A unit whose run folder
is finished and intact is not trained again, and one whose network table exists is not measured again; a
finished, intact atlas is read back, nothing recomputed (one whose files no longer match its manifest is sealed
again from its units). A folder that records another atlas is refused. Readers verify the manifest first.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lazyrich.atlas.cells import cell_table
from lazyrich.atlas.maps import draw_atlas
from lazyrich.atlas.network_rows import network_rows
from lazyrich.atlas.spec import AtlasConfig, units_of
from lazyrich.atlas.summary import summarise
from lazyrich.config.checks import ConfigError
from lazyrich.config.run import resolve_run
from lazyrich.experiment import run_experiment
from lazyrich.experiment.run import make_plan
from lazyrich.store import integrity, locking

__all__ = ["CELLS", "RECORD", "figures", "load_atlas", "load_networks", "run_atlas"]

log = logging.getLogger(__name__)

RECORD, CELLS, NETWORKS, DONE = "atlas.json", "cells.parquet", "networks-", integrity.DONE


def _check_folder(folder: Path, config: AtlasConfig) -> bool:
    """Whether ``folder`` holds this atlas finished; refuse one that records another atlas."""
    path = folder / RECORD
    if not path.is_file():
        return False
    recorded = _completed(json.loads(path.read_text()).get("config"))
    if json.dumps(recorded, sort_keys=True, default=str) != json.dumps(config.record(), sort_keys=True, default=str):
        raise ConfigError(f"{folder} holds another atlas ({path} differs from this one); write it elsewhere with "
                          f"out=<new folder>.")
    return (folder / DONE).is_file()


def _completed(record: Any) -> Any:
    """A recorded atlas config with the keys added since it was written at their defaults (an atlas written
    before ``break_level`` existed is the same atlas at 0.05); a record that does not parse is left as it is."""
    try:
        return AtlasConfig.from_record(record).record()
    except (TypeError, KeyError, ValueError):
        return record


def _unit(folder: Path, config: AtlasConfig, unit: str, given: dict[str, Any], run: dict[str, Any]) -> pd.DataFrame:
    """The network table of one unit: trained unless its run folder is finished and intact, measured unless its
    table exists."""
    table = folder / f"{NETWORKS}{unit}.parquet"
    run_dir = folder / "runs" / unit
    if table.is_file() and integrity.verify_unit(run_dir) is None:
        return pd.read_parquet(table)
    resolved = resolve_run(run)
    plan = make_plan(resolved)
    if plan.phases:
        raise ConfigError(f"task {resolved.task['name']!r} is a task sequence; an atlas maps one phase: pick it with "
                          f"task.phase=<index>.")
    if integrity.verify_unit(run_dir) is not None:
        log.info("atlas unit %s: training %s", unit, given or "the batch")
        run_experiment(resolved, run_dir, plot=False, plan=plan)
    rows = network_rows(run_dir, plan, config.theories, resolved.theory.name,
                        (config.x, config.y), given, unit, with_sharpness=config.sharpness)
    rows.to_parquet(table.with_suffix(".tmp"), index=False)
    table.with_suffix(".tmp").replace(table)
    return rows


def run_atlas(config: AtlasConfig, folder: str | Path) -> pd.DataFrame:
    """Run the atlas ``config`` into ``folder`` (resuming what is there) and return its cell table, as
    :func:`load_atlas` reads it back."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with locking.FolderLock(folder):
        if _check_folder(folder, config):
            problem = integrity.verify_unit(folder)
            if problem is None:
                return _read(folder)
            log.warning("%s: %s; sealing the atlas again from its units", folder, problem)
        (folder / DONE).unlink(missing_ok=True)
        (folder / RECORD).write_text(json.dumps({"config": config.record()}, indent=1, default=str))
        networks = pd.concat([_unit(folder, config, *u) for u in units_of(config)], ignore_index=True)
        cells = cell_table(networks, config.x.column, config.y.column)
        cells.to_parquet(folder / CELLS, index=False)
        record = {"config": config.record(), "summary": summarise(cells, networks, config)}
        (folder / RECORD).write_text(json.dumps(record, indent=1, default=_plain))
        draw_atlas(cells, config, folder)
        integrity.write_manifest(folder)
        (folder / DONE).write_text("")
    return _read(folder)  # just written and sealed: no second pass over its bytes


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)


def load_atlas(folder: str | Path) -> pd.DataFrame:
    """The cell table of a finished atlas folder (its record in ``.attrs["atlas"]``); FileNotFoundError in one line
    for an unfinished one."""
    return _read(_verified(folder))


def _read(folder: Path) -> pd.DataFrame:
    """The cell table of an atlas folder already verified, its record in ``.attrs["atlas"]``."""
    cells = pd.read_parquet(folder / CELLS)
    cells.attrs["atlas"] = json.loads((folder / RECORD).read_text())
    return cells


def load_networks(folder: str | Path) -> pd.DataFrame:
    """The network table of every unit of a finished atlas folder (one row per network, before seeds are
    averaged); FileNotFoundError in one line for an unfinished or damaged one."""
    folder = _verified(folder)
    return pd.concat([pd.read_parquet(f) for f in sorted(folder.glob(f"{NETWORKS}*.parquet"))], ignore_index=True)


def figures(folder: str | Path) -> list[Path]:
    """The maps of an atlas folder (PNGs, each with a PDF beside it), by name."""
    return sorted(p for p in Path(folder).glob("*.png") if p.name.startswith(("map_", "agreement_", "deviation_")))


def _verified(folder: str | Path) -> Path:
    """``folder`` if it is a finished atlas whose files match its manifest; else FileNotFoundError saying why."""
    folder = Path(folder)
    problem = integrity.verify_unit(folder)
    if problem is not None:
        raise FileNotFoundError(f"{folder} is not read as an atlas: {problem}; run `lazyrich atlas out={folder}` with "
                                f"the same settings to finish or repair it.")
    return folder
