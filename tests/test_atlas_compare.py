"""``lazyrich compare`` on atlas folders: cell by cell, the differences against a hand computation, one-line
refusals for atlases over other axes and for a mix of atlases and runs.

One atlas is trained; the others are made from it by editing its cell table and sealing the folder again (compare
reads only the cell table and the record, each verified against the manifest)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lazyrich import cli
from lazyrich.atlas import load_atlas, parse_atlas, run_atlas
from lazyrich.experiment import run_experiment
from lazyrich.store import integrity

AXES = ("init.lam", "init.scale")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atlases") / "a"
    run_atlas(parse_atlas(["init.lam=[0.5,2.0]", "init.scale=[0.05,0.2]", "trainer.t_max=1", "trainer.n_log=11",
                           "seed=[0,1]"]), folder)
    return folder


def _derived(source: Path, folder: Path, cells: pd.DataFrame, record: dict | None = None) -> Path:
    shutil.copytree(source, folder)
    cells.to_parquet(folder / "cells.parquet", index=False)
    if record is not None:
        (folder / "atlas.json").write_text(json.dumps(record))
    integrity.write_manifest(folder)
    return folder


def _compare(*argv: object) -> None:
    cli.main(["compare", *map(str, argv)])


def test_two_atlases_line_up_cell_by_cell(trained, tmp_path, capsys):
    a = load_atlas(trained)
    shifted = a.assign(kernel_distance_final=a["kernel_distance_final"] + np.array([0.0, 1e-3, -2e-3, 0.5]))
    b = _derived(trained, tmp_path / "b", shifted)
    _compare(trained, b, "--out", tmp_path / "out")
    wide = pd.read_csv(tmp_path / "out" / "atlas_cells.csv").set_index(list(AXES))
    hand = (shifted.set_index(list(AXES))["kernel_distance_final"] - a.set_index(list(AXES))["kernel_distance_final"])
    assert len(wide) == 4
    assert np.allclose(wide.loc[hand.index, "kernel_distance_final Δ[b]"], hand, rtol=1e-12, atol=0)
    assert (wide["loss_final Δ[b]"] == 0).all()  # not edited
    text = (tmp_path / "out" / "atlas.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| kernel_distance_final"))
    # max |Δ| 0.5, median 0.0015; only the cell moved by 0.5 leaves its 95% seed interval
    apart = int(((shifted["kernel_distance_final_lo"] > a["kernel_distance_final_hi"]) |
                 (shifted["kernel_distance_final_hi"] < a["kernel_distance_final_lo"])).sum())
    assert row.split("|")[4:8] == [" 4 ", " 0.5 ", " 0.0015 ", f" {apart} "], row
    assert text.strip() in capsys.readouterr().out
    assert (tmp_path / "out" / "atlas_diff_kernel_distance_final.png").stat().st_size > 0


def test_an_atlas_against_itself_differs_nowhere(trained, tmp_path):
    _compare(trained, trained, "--out", tmp_path, "--metric", "exact/gap_loss")
    wide = pd.read_csv(tmp_path / "atlas_cells.csv")
    assert (wide["exact/gap_loss Δ[a#1]"] == 0).all() and "exact/gap_loss [a#1]" in wide


def test_cells_one_atlas_lacks_stay_empty_and_get_no_map(trained, tmp_path):
    a = load_atlas(trained)
    moved = a.assign(**{"init.lam": a["init.lam"].replace({0.5: 4.0})})  # λ 0.5 → 4: the λ = 2 cells are shared
    record = json.loads((trained / "atlas.json").read_text())
    record["config"]["x"]["values"] = [2.0, 4.0]
    c = _derived(trained, tmp_path / "c", moved, record)
    _compare(trained, c, "--out", tmp_path / "out")
    wide = pd.read_csv(tmp_path / "out" / "atlas_cells.csv")
    assert sorted(set(wide["init.lam"])) == [0.5, 2.0, 4.0] and len(wide) == 6
    shared = wide["init.lam"] == 2.0
    assert (wide.loc[shared, "loss_final Δ[c]"] == 0).all() and wide.loc[~shared, "loss_final Δ[c]"].isna().all()
    assert not list((tmp_path / "out").glob("atlas_diff_*.png"))  # other axis values: no common map


def test_atlases_over_other_axes_or_mixed_with_runs_are_refused_in_one_line(trained, tmp_path):
    record = json.loads((trained / "atlas.json").read_text())
    record["config"]["x"]["key"] = "trainer.lr"
    other = _derived(trained, tmp_path / "other", load_atlas(trained), record)
    with pytest.raises(SystemExit, match="maps trainer.lr × init.scale but .* maps init.lam × init.scale"):
        _compare(trained, other, "--out", tmp_path / "o1")
    run_dir = tmp_path / "run"
    run_experiment({"task": {"name": "hierarchy"}, "init": {"kind": "balanced", "lam": [1.0]},
                    "trainer": {"t_max": 0.2, "n_log": 3, "progress": False}}, run_dir, plot=False)
    with pytest.raises(SystemExit, match="not an atlas folder; atlases are compared with atlases only"):
        _compare(trained, run_dir, "--out", tmp_path / "o2")
    with pytest.raises(SystemExit, match="no measure nonsense in every atlas; they hold .*kernel_distance_final"):
        _compare(trained, trained, "--metric", "nonsense", "--out", tmp_path / "o3")
