"""`lazyrich sync` finds every offline run below a folder; `lazyrich dashboard` writes a saved view whose panels,
keys and grouping are those the runs logged (read back with W&B's decoder)."""

import json

import pytest
from conftest import offline_wandb_in

from lazyrich.cli import main
from lazyrich.experiment import run_experiment
from lazyrich.tracking import sync as wandb_sync
from lazyrich.tracking.read import read_run

pytestmark = pytest.mark.slow  # real W&B runs (offline), each seconds

CFG = {
    "task": {"name": "hierarchy"},
    "init": {"kind": "balanced", "lam": [-2.0, 2.0], "scale": 0.1},
    "model": {"depth": 2},
    "trainer": {"lr": 0.02, "t_max": 1.0, "n_log": 4, "progress": False},
    "theory": {"name": "exact"},
    "logger": {"wandb": {"enabled": True, "project": "lazyrich-test", "layout": "network"}},
    "seed": 0,
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Two run folders (two sweeps) with two per-network offline runs each."""
    root = tmp_path_factory.mktemp("cmd")
    with offline_wandb_in(root):
        for name in ("a", "b"):
            run_experiment(CFG, root / "outputs" / name)
    return root / "outputs"


def test_sync_dry_run_lists_every_offline_run_recursively(outputs, capsys):
    with pytest.raises(SystemExit) as done:
        main(["sync", str(outputs), "--dry-run"])
    assert done.value.code == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "offline-run-" in line]
    expected = sorted(str(p) for p in outputs.glob("*/wandb/offline-run-*"))
    assert sorted(listed) == expected and len(expected) == 4


def test_sync_passes_every_run_to_wandb_sync_and_reports_success(outputs, monkeypatch, capsys):
    calls = []

    def uploads(cmd, timeout):  # what a working server does: W&B marks each uploaded run synced
        calls.append(cmd)
        for run in cmd[4:]:
            for file in wandb_sync.Path(run).glob("*.wandb"):
                file.with_name(file.name + ".synced").write_text("")

    monkeypatch.setattr(wandb_sync, "run_bounded", uploads)
    monkeypatch.setattr(wandb_sync, "server_reachable", lambda url: None)
    try:
        assert wandb_sync.main([str(outputs), "--project", "p"]) == 0
        (cmd,) = calls
        assert cmd[1:4] == ["sync", "--project", "p"]
        assert sorted(cmd[4:]) == sorted(str(p) for p in outputs.glob("*/wandb/offline-run-*"))
        assert "uploaded 4 offline W&B run(s)" in capsys.readouterr().out
        assert wandb_sync.main([str(outputs)]) == 0 and len(calls) == 1  # already uploaded: nothing to do
    finally:
        for marker in outputs.glob("*/wandb/offline-run-*/*.synced"):
            marker.unlink()


def test_sync_of_a_missing_folder_is_one_line():
    with pytest.raises(SystemExit, match="is not a folder"):
        wandb_sync.main(["/nonexistent/lazyrich"])


def test_dashboard_panels_use_the_logged_keys_grouped_by_lambda(outputs):
    pytest.importorskip("wandb_workspaces", reason="optional extra lazyrich[dashboards] not installed")
    with pytest.raises(SystemExit) as done:
        main(["dashboard", str(outputs)])
    assert done.value.code == 0
    for name in ("a", "b"):
        runs = [read_run(p) for p in (outputs / name / "wandb").glob("offline-run-*")]
        logged = set().union(*(r.history_keys for r in runs))
        spec = json.loads((outputs / name / "dashboard.json").read_text())["spec"]["section"]
        (runset,) = spec["runSets"]
        (only,) = runset["filters"]["filters"]
        assert only["key"] == {"section": "run", "name": "group"} and only["op"] == "="
        assert only["value"] == runs[0].group == f"outputs/{name}"  # each sweep's view shows its own runs
        assert runset["grouping"] == [{"section": "config", "name": "lam.value"}]
        panels = [p for s in spec["panelBankConfig"]["sections"] for p in s["panels"]]
        lines = [p["config"] for p in panels if p["viewType"] == "Run History Line Plot"]
        assert {tuple(c["metrics"]) for c in lines} == {("sim/loss", "theory/loss"),
                                                        ("sim/kernel_distance", "theory/kernel_distance")}
        for c in lines:
            assert set(c["metrics"]) <= logged and c["xAxis"] == "t" and c["groupBy"] == "lam.value"
            assert c["overrideMarks"] == {c["metrics"][1]: "dashed"} and c["groupArea"] == "stddev"
        scatter = [p["config"] for p in panels if p["viewType"] == "Scatter Plot"]
        assert {c["yAxis"] for c in scatter} >= {"summary:agreement/loss_max_rel_err"}
        assert {c["xAxis"] for c in scatter} == {"config:lam.value"}
        summary = set().union(*(r.summary for r in runs))
        assert all(c["yAxis"].split(":", 1)[1] in summary for c in scatter)


def test_dashboard_push_without_an_entity_is_one_line(outputs, monkeypatch):
    pytest.importorskip("wandb_workspaces", reason="optional extra lazyrich[dashboards] not installed")
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    with pytest.raises(SystemExit, match="--push needs a W&B entity"):
        main(["dashboard", str(outputs), "--push"])


def test_the_dashboard_decodes_a_sample_of_a_folders_runs_and_every_table_run(tmp_path):
    """Decoding costs a subprocess per run: a run folder's networks all log the same keys, so two are read, but a
    run that logged a table (W&B keeps it under files/media/table) is always read."""
    from lazyrich.tracking.dashboard import _sample

    folder = tmp_path / "run"
    own = [folder / "wandb" / f"offline-run-{i}" for i in range(6)]
    units = [tmp_path / "run" / "runs" / f"u{i}" / "wandb" / "offline-run-0" for i in range(3)]
    for p in own + units:
        p.mkdir(parents=True)
    (own[5] / "files" / "media" / "table").mkdir(parents=True)
    assert _sample(folder, own + units) == [own[5], own[0], own[1], units[0], units[1]]
