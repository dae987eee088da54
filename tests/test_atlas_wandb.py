"""One W&B run per atlas (lazyrich/atlas/tracking.py), read back from its offline files: the cell table one row a
cell, every map an image, atlas.json saved, the summary's headline numbers those of atlas.json; logger=none logs
nothing and leaves the atlas's record alone; a W&B failure only warns; the dashboard shows the table and the maps."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import offline_wandb_in

from lazyrich import cli
from lazyrich.atlas import load_atlas
from lazyrich.atlas.command import main
from lazyrich.atlas.runner import figures
from lazyrich.atlas.tracking import headline
from lazyrich.store import integrity
from lazyrich.tracking.read import read_run
from lazyrich.tracking.schema import run_id
from lazyrich.tracking.sync import find_offline_runs

TINY = ["init.lam=[-1,1]", "init.scale=[0.1,1]", "seed=[0]", "trainer.t_max=1", "trainer.n_log=6"]
"""A 2 × 2 grid, one seed, a few steps: about a second of training."""


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """(the atlas folder, its one offline W&B run read back), the atlas run by the command with W&B offline."""
    root = tmp_path_factory.mktemp("atlas-wandb")
    with offline_wandb_in(root):
        assert main([*TINY, "out=a", "logger.wandb.tags=[tiny]"]) == 0
    (run,) = find_offline_runs(root / "a")
    return root / "a", read_run(run)


def _copy(folder, to):
    """The sealed atlas in ``folder`` copied to ``to``, without its W&B runs or dashboard."""
    return shutil.copytree(folder, to, ignore=shutil.ignore_patterns("wandb", "dashboard.json"))


@pytest.mark.slow
def test_the_run_holds_one_table_row_per_cell(mirrored):
    folder, run = mirrored
    cells = load_atlas(folder)
    row = run.history[0]
    assert row["cells._type"] == "table-file" and row["cells.nrows"] == len(cells) == 4
    table = json.loads((run.path / "files" / row["cells.path"]).read_text())
    assert table["columns"] == list(cells.columns) and len(table["data"]) == len(cells)
    column = table["columns"].index("kernel_distance_final")
    assert [r[column] for r in table["data"]] == pytest.approx(cells["kernel_distance_final"].tolist(), rel=1e-12)


@pytest.mark.slow
def test_the_run_holds_every_map_and_atlas_json(mirrored):
    folder, run = mirrored
    maps = figures(folder)
    assert maps and {f"maps/{p.stem}._type" for p in maps} <= set(run.history[0])
    assert all(run.history[0][f"maps/{p.stem}._type"] == "image-file" for p in maps)
    assert "atlas.json" in run.files
    assert sum(f.startswith("media/images/maps/") for f in run.files) == len(maps)


@pytest.mark.slow
def test_the_summary_holds_atlas_json_headline_and_the_config_its_axes(mirrored):
    folder, run = mirrored
    summary = json.loads((folder / "atlas.json").read_text())["summary"]
    numbers = headline(summary)
    assert {"agreement/exact/fraction", "agreement/lazy/cells_agree", "boundary/offset", "cells",
            "break_level"} <= set(numbers)
    for key, value in numbers.items():
        assert run.summary[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
    assert run.summary["agreement/exact/cells_in_domain"] == summary["agreement"]["exact"]["cells_in_domain"]
    assert run.job_type == "atlas" and run.group == "a" and run.run_id == run_id("a", "atlas/cells")
    assert "tiny" in run.tags
    config = run.config
    assert (config["atlas.x"], config["atlas.x_n"], config["atlas.x_min"], config["atlas.x_max"]) == ("init.lam", 2,
                                                                                                   -1, 1)
    assert (config["atlas.y"], config["atlas.y_n"], config["atlas.y_min"]) == ("init.scale", 2, 0.1)
    assert config["atlas.theories"] == "exact,lazy" and config["atlas.preset"] == "default"
    assert config["atlas.break_level"] == 0.05
    assert config["trainer.t_max"] == 1 and config["trainer.lr"] == 0.002 and config["task"] == "hierarchy"
    assert not [k for k, v in config.items() if isinstance(v, list)] and not [k for k in config if "logger" in k]


@pytest.mark.slow
def test_logger_none_logs_nothing_and_the_same_atlas_is_read_back(mirrored, tmp_path, monkeypatch, capsys):
    folder, _ = mirrored
    copy = _copy(folder, tmp_path / "b")
    monkeypatch.setattr("lazyrich.atlas.runner.run_experiment", lambda *a, **k: pytest.fail("trained again"))
    with offline_wandb_in(tmp_path):
        assert main([*TINY, f"out={copy}", "logger=none"]) == 0  # the same record: not refused, not recomputed
    assert not (copy / "wandb").exists() and "W&B" not in capsys.readouterr().out
    assert integrity.verify_unit(copy) is None


@pytest.mark.slow
def test_a_wandb_failure_only_warns_and_the_atlas_stays_sealed(mirrored, tmp_path, monkeypatch):
    import wandb

    folder, _ = mirrored
    copy = _copy(folder, tmp_path / "c")

    def broken(*args, **kwargs):
        raise RuntimeError("W&B is broken")

    monkeypatch.setattr(wandb, "init", broken)
    with offline_wandb_in(tmp_path), pytest.warns(UserWarning, match="W&B is broken"):
        assert main([*TINY, f"out={copy}"]) == 0
    assert integrity.verify_unit(copy) is None and load_atlas(copy).shape == load_atlas(folder).shape
    assert not find_offline_runs(copy)


@pytest.mark.parametrize(("word", "needle"), [("logger=maybe", "logger=maybe"),
                                              ("logger.wandb.projekt=x", "logger.wandb.projekt"),
                                              ("logger.wandb.mode=sometimes", "logger.wandb.mode"),
                                              ("logger.wandb.tags=[a", "logger.wandb.tags"),
                                              ("logger.mode=offline", "logger.wandb.<key>")])
def test_a_bad_logger_word_is_refused_in_one_line(tmp_path, word, needle):
    with pytest.raises(SystemExit) as info:
        cli.main(["atlas", *TINY, word, f"out={tmp_path / 'x'}"])
    text = str(info.value)
    assert text.startswith("lazyrich:") and "\n" not in text.strip() and needle in text, text
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_the_dashboard_shows_the_cells_table_and_the_maps(mirrored):
    pytest.importorskip("wandb_workspaces", reason="optional extra lazyrich[dashboards] not installed")
    from lazyrich.tracking import dashboard

    folder, _ = mirrored
    assert dashboard.main([str(folder)]) == 0
    spec = json.loads((folder / "dashboard.json").read_text())["spec"]["section"]
    sections = {s["name"]: s["panels"] for s in spec["panelBankConfig"]["sections"]}
    assert set(sections) == {"Tables", "Maps"}  # no curves against t in an atlas's run: no empty sections
    (table,) = sections["Tables"]
    assert table["viewType"] == "Weave" and '"cells"' in json.dumps(table["config"])
    assert sorted(k for p in sections["Maps"] for k in p["config"]["mediaKeys"]) == [
        f"maps/{p.stem}" for p in figures(folder)]
