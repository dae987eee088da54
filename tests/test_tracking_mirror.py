"""A unit's W&B mirror is verifiable and re-doable: a bench killed while logging leaves a unit whose mirror is
marked incomplete, and logging it again (what the runner does for a finished unit it skips) completes it and
replaces the truncated offline run; a re-log of one W&B id replaces its earlier offline run, and ``lazyrich
sync`` uploads only the newest offline run of each id (lazyrich/tracking/mirror.py, sink.py, suite.py, sync.py)."""

import json
import shutil

import pytest
from conftest import offline_wandb_in
from hydra import compose, initialize_config_dir

from lazyrich import results
from lazyrich.config.compose import conf_dir
from lazyrich.config.suites import resolve_bench
from lazyrich.experiment import run_experiment
from lazyrich.suites import SUITES, run_suites
from lazyrich.tracking import sink as wandb_sink
from lazyrich.tracking import sync as wandb_sync
from lazyrich.tracking.mirror import MIRROR_FILE, mark_mirrored, mirror_state, newest_offline_runs, offline_run_id
from lazyrich.tracking.read import read_run
from lazyrich.tracking.suite import suite_logger
from lazyrich.tracking.sync import find_offline_runs

pytestmark = pytest.mark.slow  # real W&B runs (offline), each seconds

BENCH = ["suite=reversal", "suite.lams=[2.0]", "seed=[0,1]", "suite.reversal.t_phase=4", "suite.reversal.n_log=11",
         "logger.wandb.layout=network", "progress=false"]



def bench_config():
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("bench", overrides=BENCH)


def killed_while_logging(monkeypatch, root):
    """Run the bench and 'kill' it while it logs the unit's second network: that run is cut to two history rows
    (a truncated offline run of its id), then the process stops (KeyboardInterrupt, which the runner lets through
    as it would a kill). Returns the unit's folder."""
    real = wandb_sink._write_run
    calls = []

    def cut_short(target, *, history, **kwargs):
        calls.append(kwargs["rid"])
        if len(calls) == 2:
            real(target, history=history[:2], **kwargs)
            raise KeyboardInterrupt("killed while logging")
        return real(target, history=history, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(wandb_sink, "_write_run", cut_short)
        with pytest.raises(KeyboardInterrupt):
            run_suites(bench_config(), root / "out")
    (unit_dir,) = (root / "out" / "runs").iterdir()
    assert (unit_dir / "DONE").exists()  # the results were finished before W&B was called
    return unit_dir


def assert_fully_mirrored(unit_dir):
    runs = find_offline_runs(unit_dir)
    assert len(runs) == 2, "the truncated offline run was not replaced"
    n_rows = len(results.load(unit_dir)) // 2
    for run in map(read_run, runs):
        assert len(run.history) == n_rows and run.summary["status"] == "ok"
    assert mirror_state(unit_dir) is None


def test_a_unit_killed_while_logging_is_marked_incomplete_and_its_relog_completes_it(tmp_path, monkeypatch, capsys):
    with offline_wandb_in(tmp_path):
        unit_dir = killed_while_logging(monkeypatch, tmp_path)
        assert "no complete W&B mirror" in mirror_state(unit_dir)
        assert wandb_sync.main([str(tmp_path / "out"), "--dry-run"]) == 0
        assert f"note: {unit_dir}: no complete W&B mirror" in capsys.readouterr().out  # sync names it
        cfg = bench_config()
        run_suites(cfg, tmp_path / "out")  # the resume: the unit is finished, so it is skipped
        bench = resolve_bench(cfg)
        (unit,) = SUITES["reversal"].units(bench.params["reversal"], bench.device)
        log = suite_logger(bench.logger.wandb, "reversal", SUITES["reversal"].key, tmp_path / "out")
        log(unit, None, unit_dir)  # what the runner calls for a finished unit it skips
        assert_fully_mirrored(unit_dir)
        before = sorted(find_offline_runs(unit_dir))
        log(unit, None, unit_dir)  # complete: nothing logged again
        assert sorted(find_offline_runs(unit_dir)) == before


def test_resuming_a_bench_killed_while_logging_relogs_the_unit(tmp_path, monkeypatch):
    with offline_wandb_in(tmp_path):
        unit_dir = killed_while_logging(monkeypatch, tmp_path)
        run_suites(bench_config(), tmp_path / "out")
        assert_fully_mirrored(unit_dir)


def test_the_mirror_marker_names_its_runs_and_the_results_it_mirrors(tmp_path):
    unit = tmp_path / "unit"
    (unit / "wandb" / "offline-run-20260101_000000-a").mkdir(parents=True)
    (unit / "MANIFEST.json").write_text('{"files": {}}')
    marker = mark_mirrored(unit, [unit / "wandb" / "offline-run-20260101_000000-a"], "network")
    assert marker.name == MIRROR_FILE and json.loads(marker.read_text())["runs"] == ["offline-run-20260101_000000-a"]
    assert mirror_state(unit) is None
    (unit / "MANIFEST.json").write_text('{"files": {"x": 1}}')
    assert mirror_state(unit) == "the results changed after they were mirrored"
    mark_mirrored(unit, [unit / "wandb" / "offline-run-20260101_000000-a"], "network")
    shutil.rmtree(unit / "wandb" / "offline-run-20260101_000000-a")
    assert "is missing" in mirror_state(unit)


def network_run_config():
    return {"task": {"name": "hierarchy"}, "init": {"kind": "balanced", "lam": [0.0, 2.0], "scale": 0.1},
            "model": {"depth": 2}, "trainer": {"lr": 0.02, "t_max": 1.0, "n_log": 5, "progress": False},
            "theory": {"name": "exact"}, "seed": [0, 1],
            "logger": {"wandb": {"enabled": True, "project": "lazyrich-test", "layout": "network"}}}


def test_rerunning_into_one_folder_replaces_the_offline_runs_of_each_id(tmp_path):
    with offline_wandb_in(tmp_path):
        run_experiment(network_run_config(), tmp_path / "run")
        first = set(find_offline_runs(tmp_path / "run"))
        run_experiment(network_run_config(), tmp_path / "run")
        second = set(find_offline_runs(tmp_path / "run"))
    assert len(first) == len(second) == 4 and not first & second  # four W&B runs, each re-logged once
    assert len({offline_run_id(p) for p in second}) == 4
    assert mirror_state(tmp_path / "run") is None


def test_sync_uploads_only_the_newest_offline_run_of_each_id(tmp_path, monkeypatch, capsys):
    with offline_wandb_in(tmp_path):
        run_experiment(network_run_config(), tmp_path / "run")
    newest = find_offline_runs(tmp_path / "run")
    rid = offline_run_id(newest[0])
    older = newest[0].with_name(f"offline-run-20000101_000000-{rid}")  # left by a re-run of an older lazyrich
    shutil.copytree(newest[0], older)
    assert newest_offline_runs([*newest, older]) == (sorted(newest), {older: newest[0]})
    assert wandb_sync.main([str(tmp_path / "run"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    listed = [line for line in out.splitlines() if line.startswith(str(tmp_path))]
    assert sorted(listed) == sorted(map(str, newest))
    assert f"skipped {older}" in out and newest[0].name in out
    calls = []
    monkeypatch.setattr(wandb_sync, "run_bounded", lambda cmd, timeout: calls.append(cmd))
    monkeypatch.setattr(wandb_sync, "server_reachable", lambda url: None)
    wandb_sync.main([str(tmp_path / "run")])
    (cmd,) = calls
    assert sorted(cmd[2:]) == sorted(map(str, newest))
