"""Sweeps larger than memory: a batch run chunk by chunk gives every network the numbers of the one-batch run."""

import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import rel_err

from lazyrich import results, store
from lazyrich.experiment import chunking, run_experiment
from lazyrich.experiment import run as run_module
from lazyrich.experiment.chunking import (
    MIN_CHUNK,
    TRAIN_BLOCK,
    auto_chunk,
    chunk_size,
    per_network_bytes,
    training_blocks,
    trajectory_bytes,
)
from lazyrich.store.storage import METRICS_PARQUET, MatrixStore

CFG = {
    "task": {"name": "hierarchy"},
    "init": {"kind": "balanced", "lam": [-2.0, 0.0, 2.0], "scale": 0.1},
    "model": {"depth": 2},
    "trainer": {"lr": [0.01, 0.02], "t_max": 2.0, "n_log": 11, "n_matrix": 3, "progress": False},
    "theory": {"name": "exact"},
    "seed": [0, 1],
}  # 12 networks; two learning rates, so the networks of one chunk stop at different steps


def numbers(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in ("run",) if c in frame]).sort_values(["net", "t"], ignore_index=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for chunk in (None, 5):  # None: auto, one chunk for 12 nets; 5: chunks of 5, 5 and 2
        run_dir = tmp_path_factory.mktemp(f"chunk{chunk}")
        cfg = {**CFG, "trainer": {**CFG["trainer"], "batch_chunk": chunk}}
        out[chunk] = (run_experiment(cfg, run_dir, plot=chunk == 5), run_dir)
    return out


@pytest.mark.slow
def test_chunked_run_gives_each_network_the_numbers_of_the_one_batch_run(runs):
    (one, one_dir), (chunked, chunked_dir) = runs[None], runs[5]
    assert one.frame is not None and chunked.frame is None  # written chunk by chunk: read it back from disk
    a, b = numbers(results.load(one_dir)), numbers(results.load(chunked_dir))
    assert list(a.columns) == list(b.columns) and len(a) == 12 * 11
    floats = [c for c in a.columns if a[c].dtype == float]
    assert any(c.startswith("theory/") for c in floats)
    # The same per-network arithmetic in smaller batches: rounding at most, 1e-12 of each column's largest
    # value (elementwise relative would fail on rounding-level zeros such as K(0)'s distance).
    gaps = {c: rel_err(b[c], a[c], equal_nan=True) for c in floats}
    assert max(gaps.values()) <= 1e-12, gaps
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats))
    pd.testing.assert_frame_equal(one.summary, chunked.summary, rtol=1e-12)  # pandas adds atol 1e-8
    first, second = results.load_matrices(one_dir), results.load_matrices(chunked_dir)
    assert set(first) == set(second)
    for key in first:
        assert rel_err(second[key], first[key], batch_dims=1, equal_nan=True) <= 1e-12, key  # per network


def test_each_chunk_is_written_as_it_finishes(runs):
    import pyarrow.parquet as pq

    _, run_dir = runs[5]
    assert pq.ParquetFile(run_dir / METRICS_PARQUET).num_row_groups == 3
    assert [(a, b) for a, b, _ in MatrixStore(run_dir).chunks()] == [(0, 5), (5, 10), (10, 12)]
    assert (run_dir / "curves.png").is_file() and (run_dir / store.DONE).is_file()
    one_lam = results.load(run_dir, columns=["net", "lam", "sim/loss"], filters=[("lam", "==", 2.0)])
    assert sorted(one_lam["net"].unique()) == [8, 9, 10, 11] and (one_lam["lam"] == 2.0).all()


@pytest.mark.slow
def test_a_task_sequence_is_chunked_phase_by_phase():
    cfg = {**CFG, "task": {"name": "reversal", "t_budget": 1.0}, "trainer": {**CFG["trainer"], "lr": 0.01}}
    one = run_experiment(cfg, None)
    chunked = run_experiment({**cfg, "trainer": {**cfg["trainer"], "batch_chunk": 4}}, None)
    assert chunked.trajectories == [] and len(one.trajectories) == 2
    floats = [c for c in one.frame.columns if one.frame[c].dtype == float]
    gaps = {c: rel_err(numbers(chunked.frame)[c], numbers(one.frame)[c], equal_nan=True) for c in floats}
    assert max(gaps.values()) <= 1e-12, gaps  # as above: of each column's scale
    assert rel_err(chunked.loss_matrix, one.loss_matrix, equal_nan=True) <= 1e-12


def test_chunk_size_auto_fits_the_budget_and_explicit_sizes_are_checked():
    per_net = per_network_bytes(8, 8, 101, 21)
    assert auto_chunk(8, 8, 101, 21, available=4 * 64 * per_net) == 64  # the floor: a quarter of memory
    big = auto_chunk(8, 8, 101, 21, available=2**40)
    assert big * per_net <= 384 * 2**20 < 2 * big * per_net and big & (big - 1) == 0  # a power of two
    assert auto_chunk(8, 8, 11, 3, available=2**40) > big  # cheaper networks, more per chunk
    assert chunk_size("auto", 10, n_in=8, n_out=8, n_log=101, n_matrix=21) == min(10, MIN_CHUNK)
    assert chunk_size(7, 100, n_in=8, n_out=8, n_log=101, n_matrix=21) == 7
    for bad in (0, -3, 2.5, "many", True):
        with pytest.raises(ValueError, match="trainer.batch_chunk must be a positive int or 'auto'"):
            chunk_size(bad, 100, n_in=8, n_out=8, n_log=101, n_matrix=21)


def test_training_blocks_group_whole_chunks_under_auto_only():
    per_net = trajectory_bytes(8, 8, 101, 21)
    blocks = training_blocks(5000, 256, auto=True, per_network=per_net)
    assert [(b.start, b.stop) for b in blocks] == [(0, 256), (256, 1280), (1280, 2304), (2304, 3328),
                                                   (3328, 4352), (4352, 4864), (4864, 5000)]
    assert all(len(b) <= TRAIN_BLOCK for b in blocks)
    chunks = training_blocks(5000, 256, auto=False, per_network=per_net)  # a chunk size set by hand is kept
    assert [len(b) for b in chunks] == [256] * 19 + [136]
    assert training_blocks(700, 256, auto=True, per_network=per_net) == [range(0, 256), range(256, 512),
                                                                         range(512, 700)]  # too few to group
    heavy = training_blocks(4096, 64, auto=True, per_network=chunking.BLOCK_BUDGET // 100)  # records: 100 a block
    assert max(len(b) for b in heavy) == 64  # one chunk of 64 fits the budget, two do not


def test_a_run_trained_in_blocks_writes_the_bits_of_chunk_by_chunk_training(tmp_path, monkeypatch):
    cfg = {**CFG, "init": {**CFG["init"], "lam": [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]},
           "trainer": {**CFG["trainer"], "lr": [0.05, 2.0], "t_max": 20.0}}  # 24 networks; those at lr 2 diverge
    trained = []
    real_train = run_module._train_phases
    monkeypatch.setattr(run_module, "_train_phases", lambda plan, init, meta, start: trained.append(
        (start, start + len(meta))) or real_train(plan, init, meta, start))
    monkeypatch.setattr(run_module, "_chunk_size", lambda trainer, plan, in_memory: 4)
    monkeypatch.setattr(chunking, "TRAIN_BLOCK", 12)  # auto: 3 chunks of 4 a block
    runs = {}
    for chunk in ("auto", 4):
        trained.clear()
        with pytest.warns(RuntimeWarning) as caught:
            result = run_experiment({**cfg, "trainer": {**cfg["trainer"], "batch_chunk": chunk}},
                                    tmp_path / str(chunk), plot=False)
        named = sorted(int(str(w.message).split()[1]) for w in caught if "diverged" in str(w.message))
        runs[chunk] = (list(trained), named, result.summary, tmp_path / str(chunk))
    (blocks, named, summary, run_dir), (chunks, named4, summary4, run_dir4) = runs["auto"], runs[4]
    assert blocks == [(0, 4), (4, 16), (16, 20), (20, 24)] and chunks == [(a, a + 4) for a in range(0, 24, 4)]
    assert [(a, b) for a, b, _ in MatrixStore(run_dir).chunks()] == chunks  # written chunk by chunk all the same
    diverged = summary.loc[summary["status"] == "diverged", "net"].tolist()
    assert named == named4 == diverged and len(diverged) == 12  # numbered batch-wide from inside a block
    # Another batch size for the trainer: a batched product may round differently (docs: Performance, Chunks).
    a, b = numbers(results.load(run_dir)), numbers(results.load(run_dir4))
    floats = [c for c in a.columns if a[c].dtype == float]
    gaps = {c: rel_err(a[c], b[c], equal_nan=True) for c in floats}
    assert max(gaps.values()) <= 1e-14, gaps
    assert all(gaps[c] == 0.0 for c in floats if c.startswith("theory/"))  # predicted chunk by chunk as before
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats))
    pd.testing.assert_frame_equal(summary, summary4, rtol=1e-14)
    first, second = results.load_matrices(run_dir), results.load_matrices(run_dir4)
    assert set(first) == set(second)
    assert all(rel_err(first[k], second[k], batch_dims=1, equal_nan=True) <= 1e-14 for k in first)


@pytest.mark.slow
def test_the_command_line_runs_a_batch_larger_than_its_chunk(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "lazyrich.cli", "run", "init.lam=-1,1", "seed=0,1,2", "trainer.batch_chunk=4",
           "trainer.t_max=0.5", "trainer.n_log=6", "trainer.n_matrix=3", "trainer.progress=false", "logger=none",
           "hydra.run.dir=out"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    frame = results.load(tmp_path / "out")
    assert frame["net"].nunique() == 6 and len(frame) == 6 * 6
    assert len(MatrixStore(tmp_path / "out").chunks()) == 2
    assert "metrics.parquet" in proc.stdout and "loss_final" in proc.stdout


def test_divergence_warnings_name_the_network_by_its_batch_wide_index():
    cfg = {"task": {"name": "hierarchy"}, "init": {"lam": [0.0], "scale": 0.1}, "seed": [0, 1],
           "trainer": {"lr": [0.05, 2.0], "t_max": 20.0, "n_log": 5, "n_matrix": 2, "progress": False,
                       "batch_chunk": 2}, "theory": {"name": "none"}}  # nets 2 and 3 (lr 2) diverge, in chunk 2
    with pytest.warns(RuntimeWarning) as caught:
        result = run_experiment(cfg, None)
    named = sorted(int(str(w.message).split()[1]) for w in caught if "diverged" in str(w.message))
    assert named == [2, 3]
    assert result.summary.set_index("net")["status"].to_dict() == {0: "ok", 1: "ok", 2: "diverged", 3: "diverged"}


@pytest.mark.slow
def test_matrix_seeds_picks_whose_matrices_a_run_folder_keeps(tmp_path):
    every = {**CFG, "trainer": {**CFG["trainer"], "batch_chunk": 5, "matrix_seeds": None}}
    run_experiment(every, tmp_path / "all", plot=False)
    assert results.load_matrices(tmp_path / "all")["net"].tolist() == list(range(12))
    two = {**every, "seed": [3, 1, 2], "trainer": {**every["trainer"], "matrix_seeds": 2}}
    result = run_experiment(two, tmp_path / "two", plot=False)
    kept = results.load_matrices(tmp_path / "two")
    want = result.meta.index[result.meta["seed"].isin([1, 2])].tolist()  # the two smallest seeds
    assert kept["net"].tolist() == want and len(kept["sim_product"]) == len(want) == 12
    with pytest.raises(ValueError, match=r"trainer.matrix_seeds=0 must be an integer ≥ 1 \(or null\)"):
        run_experiment({**every, "trainer": {**every["trainer"], "matrix_seeds": 0}}, tmp_path / "bad")
