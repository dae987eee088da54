"""``lazyrich dashboard DIR [--push]``: a W&B saved view per W&B group, written as code.

For each group of the offline W&B runs below DIR (a ``lazyrich run`` folder, every job of one ``-m`` sweep, a
suite folder with ``suite.csv``, or an atlas folder), the view shows the runs of that group: loss and kernel
distance against ``t`` grouped by ``lam`` with the seed band (theory dashed beside simulation), the final kernel
distance and the theory agreement against ``lam``, for a suite its ``suite`` table, and for an atlas its ``cells``
table and its maps (``maps/<name>``). The keys come from the runs' own offline files, so every panel draws
something they logged (only the newest offline run of each W&B id is read). Offline
the definition is written to ``dashboard.json`` in the folder that holds the group's runs; ``--push`` saves it to
W&B (needs ``wandb login``, an entity and the optional extra ``lazyrich[dashboards]``).

An offline run that cannot be read (an empty or cut-short ``.wandb`` file), or whose group is empty, is named
and left out, and the command exits 1 after writing the other views: a view is never written for the group "".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lazyrich.tracking.mirror import newest_offline_runs
from lazyrich.tracking.read import OfflineRun, UnreadableRun, read_run
from lazyrich.tracking.sync import find_offline_runs

__all__ = ["CURVES", "build_workspace", "dashboard_folders", "main"]

CURVES = ("loss", "kernel_distance")
"""Metrics drawn against t, simulation solid and theory dashed."""

DEFINITION = "dashboard.json"


def _require_workspaces():
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
    except ImportError as err:
        raise SystemExit("lazyrich dashboard: needs the optional package wandb-workspaces; install it with "
                         f"pip install 'lazyrich[dashboards]' ({err}).") from None
    return ws, wr


def dashboard_folders(root: str | Path) -> dict[Path, list[Path]]:
    """Each run or suite folder below ``root`` → its offline W&B runs (a suite's units' runs included), the newest
    offline run of each W&B id only."""
    out: dict[Path, list[Path]] = {}
    for run in newest_offline_runs(find_offline_runs(root))[0]:
        folder = run.parent.parent  # <folder>/wandb/offline-run-*
        if folder.parent.name == "runs" and (folder.parent.parent / "suite.csv").exists():
            folder = folder.parent.parent  # a suite unit's runs belong to the suite's view
        out.setdefault(folder, []).append(run)
    return out


def _sample(folder: Path, paths: list[Path], n_units: int = 2) -> list[Path]:
    """The runs to decode (one ``wandb leet inspect`` each, ~0.6 s), enough to know the keys: the folder's own
    runs that logged a table (a suite's run, the ``networks`` run), the first ``n_units`` of its other own runs
    (every network of a run folder logs the same keys) and the first ``n_units`` of its units' runs."""
    own = [p for p in paths if p.parent.parent == folder]
    tables = [p for p in own if (p / "files" / "media" / "table").is_dir()]  # where W&B keeps a logged table
    rest = [p for p in own if p not in tables][:n_units]
    return tables + rest + [p for p in paths if p not in own][:n_units]


def _line(wr, metric: str, keys: set[str], group_by: str):
    y = [k for k in (f"sim/{metric}", f"theory/{metric}") if k in keys]
    return wr.LinePlot(title=f"{metric} against t (theory dashed)", x="t", y=y, groupby=group_by,
                       groupby_aggfunc="mean", groupby_rangefunc="stddev", log_y=metric == "loss",
                       line_marks={k: "dashed" for k in y if k.startswith("theory/")})


def build_workspace(runs: Sequence[OfflineRun], *, entity: str, project: str, name: str):
    """The W&B workspace (saved view) for ``runs``, all of one group; panels use only the keys they logged, and a
    section with no panel (no curves in an atlas's view, no table in a run's) is left out."""
    ws, wr = _require_workspaces()
    group = runs[0].group
    keys = set().union(*(r.history_keys for r in runs))
    summary = set().union(*(r.summary for r in runs))
    group_by = "lam" if any("lam" in r.config for r in runs) else "seed"
    curves = [_line(wr, m, keys, group_by) for m in CURVES if f"sim/{m}" in keys]
    finals = [wr.ScatterPlot(title=f"{k} against {group_by}", x=wr.Config(group_by), y=wr.SummaryMetric(k))
              for k in ("final/sim/kernel_distance", "final/theory/kernel_distance", "agreement/loss_max_rel_err")
              if k in summary]
    sections = [ws.Section(name="Curves against t", panels=curves, is_open=True),
                ws.Section(name="Agreement and final values", panels=finals, is_open=True)]
    logged = {k.split(".", 1)[0] for r in runs for row in r.history for k in row}  # tables decode as "suite._type"
    tables = [k for k in ("suite", "networks", "cells") if k in logged]
    maps = sorted(k for k in logged if k.startswith("maps/"))  # an atlas's maps (lazyrich.atlas.tracking)
    sections += [ws.Section(name="Tables", panels=[wr.WeavePanelSummaryTable(table_name=t) for t in tables],
                            is_open=True),
                 ws.Section(name="Maps", panels=[wr.MediaBrowser(title=k, media_keys=[k]) for k in maps], is_open=True)]
    return ws.Workspace(entity=entity, project=project, name=name, sections=[s for s in sections if s.panels],
                        settings=ws.WorkspaceSettings(x_axis="t"),
                        runset_settings=ws.RunsetSettings(filters=ws.And(ws.Metric("Group") == group),
                                                          groupby=[ws.Config(group_by)]))


def definition(workspace) -> dict[str, Any]:
    """The saved view as the JSON W&B stores (what ``--push`` uploads)."""
    return json.loads(workspace._to_model().model_dump_json(by_alias=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lazyrich dashboard``: 0, or 1 when offline runs were left out (named on stderr, the other
    views written); exits with one line saying what is wrong when no view can be written."""
    parser = argparse.ArgumentParser(prog="lazyrich dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="a run, sweep or bench output folder holding offline W&B runs")
    parser.add_argument("--push", action="store_true", help="save each view to W&B (needs wandb login)")
    parser.add_argument("--entity", default=None, help="W&B entity of the views (default: WANDB_ENTITY)")
    parser.add_argument("--project", default=None, help="W&B project (default: the one the runs logged to)")
    args = parser.parse_args(argv)
    entity = args.entity or os.environ.get("WANDB_ENTITY")
    if args.push and not entity:
        raise SystemExit("lazyrich dashboard: --push needs a W&B entity; pass --entity NAME or set WANDB_ENTITY.")
    folders = dashboard_folders(args.dir)
    if not folders:
        raise SystemExit(f"lazyrich dashboard: no offline W&B runs below {args.dir}; run with W&B enabled first.")
    left_out: dict[Path, str] = {}
    views = _views(folders, left_out)
    for path, why in left_out.items():
        print(f"lazyrich dashboard: left out {path}: {why}", file=sys.stderr)
    if not views:
        raise SystemExit(f"lazyrich dashboard: none of the {len(left_out)} offline W&B runs below {args.dir} could "
                         f"be read (named above); re-run with W&B enabled to log them again.")
    for folder, runs in views.items():
        project = args.project or runs[0].project or "lazyrich"
        view = build_workspace(runs, entity=entity or "", project=project, name=f"lazyrich {runs[0].group}")
        (folder / DEFINITION).write_text(json.dumps(definition(view), indent=1) + "\n")
        print(f"{folder / DEFINITION}: {sum(len(s.panels) for s in view.sections)} panels, group {runs[0].group}")
        if args.push:
            view.save()
    if left_out:
        print(f"lazyrich dashboard: {len(left_out)} offline run(s) left out (above); the views leave them out.",
              file=sys.stderr)
    return 1 if left_out else 0


def _readable(folder: Path, paths: list[Path], left_out: dict[Path, str]) -> list[OfflineRun]:
    """The decoded sample of ``folder``'s runs (:func:`_sample`): a run that cannot be read, or has no group, goes
    to ``left_out`` (path → why) and the next of the folder's runs takes its place."""
    empty = [p for p in paths if all(f.stat().st_size == 0 for f in p.glob("*.wandb"))]
    left_out.update({p: "its .wandb file is empty (0 bytes)" for p in empty})
    paths = [p for p in paths if p not in empty]
    wanted = _sample(folder, paths)
    runs: list[OfflineRun] = []
    for path in wanted + [p for p in paths if p not in wanted]:
        if len(runs) == len(wanted):
            break
        try:
            run = read_run(path)
        except UnreadableRun as err:
            left_out[path] = str(err)
            continue
        if run.group:
            runs.append(run)
        else:
            left_out[path] = "it has no W&B group, so no view can show it"
    return runs


def _views(folders: dict[Path, list[Path]], left_out: dict[Path, str]) -> dict[Path, list[OfflineRun]]:
    """One view per W&B group: the jobs of one ``-m`` sweep share a group, so their view goes to the folder
    that holds them all; each view gets a sample of its runs (enough to know the keys). Runs that cannot be
    read go to ``left_out``."""
    by_group: dict[str, tuple[list[Path], list[OfflineRun]]] = {}
    for folder, paths in folders.items():
        for run in _readable(folder, paths, left_out):
            places, sample = by_group.setdefault(run.group, ([], []))
            places += [] if folder in places else [folder]
            sample.append(run)
    return {Path(os.path.commonpath(places)): sample for places, sample in by_group.values()}
