"""``lazyrich dashboard`` names the offline runs it cannot read (an empty or cut-short ``.wandb`` file) and leaves
them out: it never writes a view for the group "", and it exits 1 (lazyrich/tracking/dashboard.py, read.py)."""

import json

import pytest
from conftest import offline_wandb_in

from lazyrich.experiment import run_experiment
from lazyrich.tracking import dashboard
from lazyrich.tracking.read import read_run
from lazyrich.tracking.sync import find_offline_runs

pytestmark = pytest.mark.slow  # real W&B runs (offline), each seconds

CFG = {"task": {"name": "hierarchy"}, "init": {"kind": "balanced", "lam": [-2.0, 2.0], "scale": 0.1},
       "model": {"depth": 2}, "trainer": {"lr": 0.02, "t_max": 1.0, "n_log": 4, "progress": False},
       "theory": {"name": "exact"}, "seed": 0,
       "logger": {"wandb": {"enabled": True, "project": "lazyrich-test", "layout": "network"}}}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """outputs/good (two readable runs), outputs/empty (a 0-byte .wandb file), outputs/cut (only the first bytes
    of a real one: W&B's header and no run record)."""
    pytest.importorskip("wandb_workspaces", reason="optional extra lazyrich[dashboards] not installed")
    tmp_path = tmp_path_factory.mktemp("dash")
    with offline_wandb_in(tmp_path):
        run_experiment(CFG, tmp_path / "outputs" / "good")
    real = next((tmp_path / "outputs" / "good" / "wandb").glob("offline-run-*/run-*.wandb"))
    for name, content in (("empty", b""), ("cut", real.read_bytes()[:7])):
        run = tmp_path / "outputs" / name / "wandb" / f"offline-run-20260101_000000-{name}"
        run.mkdir(parents=True)
        (run / f"run-{name}.wandb").write_bytes(content)
    return tmp_path / "outputs"


def test_an_unreadable_run_is_named_and_left_out_and_no_view_has_an_empty_group(outputs, capsys):
    assert dashboard.main([str(outputs)]) == 1
    err = capsys.readouterr().err
    for name in ("empty", "cut"):
        assert str(next((outputs / name / "wandb").glob("offline-run-*"))) in err
        assert not (outputs / name / "dashboard.json").exists()
    assert "2 offline run(s) left out" in err
    spec = json.loads((outputs / "good" / "dashboard.json").read_text())["spec"]["section"]
    assert spec["runSets"][0]["filters"]["filters"][0]["value"] == "outputs/good"
    assert [p for p in outputs.rglob("dashboard.json")] == [outputs / "good" / "dashboard.json"]


def test_only_unreadable_runs_is_one_line_and_no_view(outputs):
    for broken in ("empty", "cut"):
        with pytest.raises(SystemExit, match="could be read"):
            dashboard.main([str(outputs / broken)])
        assert not list((outputs / broken).rglob("dashboard.json"))


def test_reading_an_empty_or_cut_short_run_raises_naming_it(outputs):
    from lazyrich.tracking.read import UnreadableRun

    for name in ("empty", "cut"):
        (run,) = find_offline_runs(outputs / name)
        with pytest.raises(UnreadableRun, match=name):
            read_run(run)
