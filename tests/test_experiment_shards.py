"""Sharded runs (issue 22): one batch split among processes is one verified run folder holding the numbers of the
one-process run, readable as one run; a re-run recomputes only what is missing or damaged."""

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import rel_err

from lazyrich import results, store
from lazyrich.config.checks import ConfigError
from lazyrich.experiment import run_experiment, run_shards
from lazyrich.experiment.cluster import Launch
from lazyrich.store import integrity
from lazyrich.store import shards as sharding

CFG = {
    "task": {"name": "hierarchy"},
    "init": {"kind": "balanced", "lam": [-2.0, -0.5, 0.0, 0.5, 2.0], "scale": 0.1},
    "model": {"depth": 2},
    "trainer": {"lr": 0.02, "t_max": 2.0, "n_log": 11, "n_matrix": 3, "progress": False},
    "theory": {"name": "exact"},
    "logger": {"wandb": {"enabled": False}},
    "seed": [0, 1],
}  # 10 networks


def sharded(shards: int) -> dict:
    return {**CFG, "shards": shards}


def numbers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in ("run",) if c in frame]).sort_values(["net", "t"], ignore_index=True)


def assert_same_run(a_dir, b_dir) -> None:
    """The two folders hold the same networks with the same numbers (1e-12 of each column's largest value)."""
    a, b = numbers(results.load(a_dir)), numbers(results.load(b_dir))
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    floats = [c for c in a.columns if a[c].dtype == float]
    assert any(c.startswith("theory/") for c in floats)
    gaps = {c: rel_err(b[c], a[c], equal_nan=True) for c in floats}
    assert max(gaps.values()) <= 1e-12, gaps
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats))
    summary_a, summary_b = results.load_summary(a_dir), results.load_summary(b_dir)
    pd.testing.assert_frame_equal(summary_a.drop(columns="run", errors="ignore"),
                                  summary_b.drop(columns="run", errors="ignore"), rtol=1e-12)
    first, second = results.load_matrices(a_dir), results.load_matrices(b_dir)
    assert set(first) == set(second) and first
    for key in first:
        assert rel_err(second[key], first[key], batch_dims=1, equal_nan=True) <= 1e-12, key


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    one = tmp_path_factory.mktemp("one")
    run_experiment(CFG, one, plot=False)
    split = tmp_path_factory.mktemp("split")
    run_shards(sharded(3), split)
    return one, split


def test_bounds_cover_the_batch_in_order_and_differ_by_one_at_most():
    assert sharding.bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert sharding.bounds(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    plan = sharding.plan(262_144, 16)
    assert [s.folder for s in plan][:2] == ["shards/00", "shards/01"] and plan[-1].stop == 262_144
    assert {s.stop - s.start for s in plan} == {16_384}
    with pytest.raises(ValueError, match="shards=11 must be between 1 and the batch's 10 networks"):
        sharding.bounds(10, 11)


def test_a_sharded_run_holds_the_numbers_of_the_one_process_run(runs):
    one, split = runs
    assert integrity.verify_unit(split) is None
    assert [p.name for p in sharding.parts(split)] == ["0", "1", "2"]
    assert (split / store.DONE).is_file() and (split / "curves.png").is_file()
    assert_same_run(one, split)
    assert sorted(results.load(split)["net"].unique()) == list(range(10))


def test_a_shard_folder_read_alone_is_that_slice_of_the_run(runs):
    _, split = runs
    part = results.load(split / "shards" / "1")
    assert sorted(part["net"].unique()) == [4, 5, 6]


def test_a_shard_changed_after_the_run_finished_fails_the_run(runs, tmp_path):
    import shutil

    _, split = runs
    copy = tmp_path / "copy"
    shutil.copytree(split, copy)
    summary = copy / "shards" / "2" / store.SUMMARY_FILE
    summary.write_text(summary.read_text().replace("0.", "1.", 1))
    problem = integrity.verify_unit(copy)
    assert problem is not None and problem.startswith("shard 2 (shards/2, networks 7–9)")
    with pytest.warns(UserWarning, match="skipped .*copy: shard 2"), pytest.raises(FileNotFoundError):
        results.load(tmp_path)


def test_a_finished_run_is_left_as_it_is(runs, caplog):
    _, split = runs
    before = {p: p.stat().st_mtime_ns for p in split.rglob("*") if p.is_file()}
    with caplog.at_level(logging.INFO, logger="lazyrich"):
        run_shards(sharded(3), split)
    assert "finished and intact (3 shards): nothing to compute" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in split.rglob("*") if p.is_file()} == before


def test_a_rerun_recomputes_only_the_damaged_or_missing_shards(runs, tmp_path, caplog):
    import shutil

    one, split = runs
    run = tmp_path / "run"
    shutil.copytree(split, run)
    (run / "shards" / "1" / store.DONE).unlink()  # as a killed array task leaves it
    shutil.rmtree(run / "shards" / "2")  # as a task that never started
    kept = (run / "shards" / "0" / "MANIFEST.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="lazyrich"):
        run_shards(sharded(3), run)
    assert "recomputing 2 of 3 shards" in caplog.text
    assert "shard 1 (shards/1, networks 4–6)" in caplog.text
    assert "shard 2 (shards/2, networks 7–9): missing" in caplog.text
    assert (run / "shards" / "0" / "MANIFEST.json").stat().st_mtime_ns == kept
    assert integrity.verify_unit(run) is None
    assert_same_run(one, run)


def test_another_split_of_the_same_batch_replaces_the_shards(runs, tmp_path):
    import shutil

    one, split = runs
    run = tmp_path / "run"
    shutil.copytree(split, run)
    run_shards(sharded(2), run)
    assert [p.name for p in sharding.parts(run)] == ["0", "1"]
    assert not (run / "shards" / "2").exists()
    assert_same_run(one, run)


def test_a_failed_shard_is_named_and_the_others_finish(tmp_path, monkeypatch):
    from lazyrich.experiment import shards as shards_module

    real = shards_module.run_slice

    def fail_second(record, folder, rows):
        if rows.start == 4:
            raise RuntimeError("the node caught fire")
        return real(record, folder, rows)

    monkeypatch.setattr(shards_module, "run_slice", fail_second)
    with pytest.raises(shards_module.ShardsFailed,
                       match=r"1 of 3 shards failed.*shard 1 \(shards/1, networks 4–6\): RuntimeError: the node"):
        run_shards(sharded(3), tmp_path)
    assert integrity.verify_unit(tmp_path / "shards" / "0") is None
    assert integrity.verify_unit(tmp_path / "shards" / "2") is None
    assert not (tmp_path / store.DONE).exists()
    with pytest.warns(UserWarning, match="unfinished: no DONE"), pytest.raises(FileNotFoundError):
        results.load(tmp_path)


def test_shards_reach_run_experiment_only_through_run_shards(tmp_path):
    with pytest.raises(ConfigError, match="run_shards"):
        run_experiment(sharded(2), tmp_path)
    with pytest.raises(ValueError, match="shards=11 must be between 1 and the batch's 10 networks"):
        run_shards(sharded(11), tmp_path / "too-many")


def test_one_shard_is_the_one_process_run(runs, tmp_path):
    one, _ = runs
    result = run_shards(sharded(1), tmp_path)
    assert result.frame is not None and not (tmp_path / sharding.INDEX).exists()
    assert_same_run(one, tmp_path)


def test_launchers_are_read_from_hydra_config():
    assert Launch.of(None).where == "here"
    assert Launch.of({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}).where == "here"
    slurm = Launch.of({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                       "partition": "debug", "array_parallelism": 4, "nodes": 3, "timeout_min": 5})
    assert (slurm.where, slurm.parallel) == ("slurm", 4)
    assert slurm.params == {"partition": "debug", "timeout_min": 5}  # nodes: one process per piece
    assert "partition debug, 4 at a time" in slurm.describe()
    local = Launch.of({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
                       "cpus_per_task": 1})
    assert local.where == "local" and local.parallel >= 1


def test_matrices_of_a_sharded_run_are_numbered_batch_wide(runs):
    one, split = runs
    whole, parts = results.load_matrices(one), results.load_matrices(split)
    key = next(iter(whole))
    assert np.asarray(parts[key]).shape == np.asarray(whole[key]).shape


def test_curves_compare_and_report_read_a_sharded_folder_as_one_run(runs, tmp_path, capsys):
    from lazyrich.results.compare import compare
    from lazyrich.results.report import build, check, write

    one, split = runs
    (sim_one, theory_one), (sim_split, theory_split) = results.load_curves(one), results.load_curves(split)
    assert sim_split["loss"].shape == sim_one["loss"].shape == (10, 11)
    assert rel_err(sim_split["loss"], sim_one["loss"]) <= 1e-12
    assert rel_err(theory_split["kernel_distance"], theory_one["kernel_distance"]) <= 1e-12
    files = compare([one, split], tmp_path / "cmp", labels=["one", "split"])
    final = pd.read_csv(files["final.csv"])
    assert len(final) == 10
    for column in [c for c in final.columns if c.endswith(" [one]")]:
        assert rel_err(final[column.replace("[one]", "[split]")], final[column]) <= 1e-12, column
    report = build(split)
    assert [s.kind for s in report.sections] == ["run"]  # one run, not one per shard
    page = write(split, tmp_path / "report.html")
    problems, _ = check(split, page)
    assert problems == []


@pytest.mark.slow  # real W&B runs (offline)
def test_a_sharded_run_is_mirrored_to_wandb_once_as_the_one_process_run_is(tmp_path):
    from conftest import offline_wandb_in

    from lazyrich.tracking.read import read_run
    from lazyrich.tracking.sync import find_offline_runs

    logged = {**CFG, "init": {**CFG["init"], "lam": [0.0, 2.0]},
              "logger": {"wandb": {"enabled": True, "project": "lazyrich-test", "layout": "network"}}}
    with offline_wandb_in(tmp_path):
        run_experiment(logged, tmp_path / "one", plot=False)
        run_shards({**logged, "shards": 2}, tmp_path / "split")
    one = {(r.config["lam"], r.config["seed"]): r for r in map(read_run, find_offline_runs(tmp_path / "one"))}
    split = {(r.config["lam"], r.config["seed"]): r for r in map(read_run, find_offline_runs(tmp_path / "split"))}
    assert set(one) == set(split) == {(0.0, 0), (0.0, 1), (2.0, 0), (2.0, 1)}  # one W&B run per network, no more
    for key, run in split.items():
        assert run.history_keys == one[key].history_keys and len(run.history_keys) > 2
        assert run.config["shards"] == 2 and "shards" not in one[key].config  # how it ran, shown
        assert {k: v for k, v in run.config.items() if k != "shards"}.keys() == one[key].config.keys()
