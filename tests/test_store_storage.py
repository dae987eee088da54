"""lazyrich.store.storage: Parquet metrics written chunk by chunk, the chunked matrix store, lazy selective load."""

import numpy as np
import pandas as pd
import pytest

from lazyrich import results, store
from lazyrich.store.storage import METRICS_PARQUET, MatrixStore, MetricsWriter, read_matrices, read_metrics


def long_table(nets: range, n_log: int = 5, seed: int = 0) -> pd.DataFrame:
    """A synthetic long table shaped like results.to_frame: per-network meta repeated on each of its rows."""
    rng = np.random.default_rng(seed)
    n = len(nets) * n_log
    return pd.DataFrame({
        "net": np.repeat(np.asarray(nets), n_log),
        "lam": np.repeat(np.asarray([float(i % 3) - 1.0 for i in nets]), n_log),
        "seed": np.repeat(np.asarray([i // 3 for i in nets]), n_log),
        "step": np.tile(np.arange(n_log), len(nets)),
        "t": np.tile(np.linspace(0.0, 1.0, n_log), len(nets)),
        "sim/loss": rng.random(n) * 10.0 ** rng.integers(-12, 2, n),
        "theory/loss": rng.random(n),
        "status": np.repeat(np.asarray(["ok" if i % 4 else "diverged" for i in nets], dtype=object), n_log),
    })


@pytest.fixture
def written(tmp_path):
    chunks = [long_table(range(0, 4)), long_table(range(4, 9), seed=1), long_table(range(9, 10), seed=2)]
    with MetricsWriter(tmp_path / METRICS_PARQUET) as writer:
        for chunk in chunks:
            writer.append(chunk)
    return tmp_path, pd.concat(chunks, ignore_index=True)


def test_parquet_round_trip_is_exact_chunk_by_chunk(written):
    import pyarrow.parquet as pq

    run_dir, expected = written
    assert pq.ParquetFile(run_dir / METRICS_PARQUET).num_row_groups == 3  # one row group per appended chunk
    assert not list(run_dir.glob("*.partial"))
    frame = read_metrics(run_dir)
    assert (frame["run"] == run_dir.name).all()
    pd.testing.assert_frame_equal(frame.drop(columns="run"), expected)  # bit-exact floats, same dtypes


def test_load_selects_columns_and_rows_lazily(written):
    run_dir, expected = written
    frame = read_metrics(run_dir, columns=["net", "t", "sim/loss"], filters=[("lam", "==", 0.0), ("t", ">", 0.3)])
    want = expected[(expected["lam"] == 0.0) & (expected["t"] > 0.3)][["net", "t", "sim/loss"]]
    assert list(frame.columns) == ["run", "net", "t", "sim/loss"]
    pd.testing.assert_frame_equal(frame.drop(columns="run"), want.reset_index(drop=True))
    some = read_metrics(run_dir, columns=["net"], filters=[("net", "in", [1, 7])])
    assert sorted(some["net"].unique()) == [1, 7]


def old_unit(folder, frame, matrices=None):
    """A unit folder as earlier versions wrote it (metrics.csv, matrices.npz), written here by hand, finished."""
    from lazyrich.store import integrity

    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "metrics.csv", index=False)
    frame.groupby("net").head(1).to_csv(folder / store.SUMMARY_FILE, index=False)
    if matrices:
        np.savez_compressed(folder / "matrices.npz", **matrices)
    integrity.write_manifest(folder)
    (folder / store.DONE).write_text("")
    return folder


def test_write_run_writes_parquet_metrics_and_chunked_matrices(tmp_path):
    frame = long_table(range(0, 3))
    product = np.arange(12.0).reshape(3, 2, 2)
    store.write_run(tmp_path, frame, frame.groupby("net").head(1), matrices={"sim_product": product})
    assert {p.name for p in tmp_path.iterdir()} == {METRICS_PARQUET, "matrices-000000000-000000003.npz",
                                                    "summary.csv", "summary.json", "MANIFEST.json", "DONE"}
    pd.testing.assert_frame_equal(results.load(tmp_path).drop(columns="run"), frame)
    np.testing.assert_array_equal(results.load_matrices(tmp_path)["sim_product"], product)
    with pytest.raises(ValueError, match="share their batch size"):  # matrices are per network, batch first
        store.write_run(tmp_path / "bad", frame, frame, matrices={"a": np.zeros((3, 1)), "b": np.zeros((2, 2))})


def test_old_csv_run_folders_load_the_same_way(written, tmp_path_factory):
    _, expected = written
    old = old_unit(tmp_path_factory.mktemp("old"), expected)  # the CSV layout of earlier versions
    assert (old / "metrics.csv").is_file() and not (old / METRICS_PARQUET).exists()
    frame = results.load(old, columns=["net", "sim/loss"], filters=[("status", "!=", "ok")])
    want = expected[expected["status"] != "ok"][["net", "sim/loss"]].reset_index(drop=True)
    np.testing.assert_array_equal(frame["net"], want["net"])
    np.testing.assert_allclose(frame["sim/loss"], want["sim/loss"], rtol=1e-15)  # CSV keeps 17 digits


def test_a_sweep_folder_mixes_parquet_and_csv_runs(written):
    run_dir, expected = written
    old_unit(run_dir / "nested", expected.head(5))
    frame = read_metrics(run_dir, columns=["net"])
    assert frame.groupby("run").size().to_dict() == {run_dir.name: len(expected), "nested": 5}


def test_bad_selections_name_what_is_wrong(written):
    run_dir, _ = written
    with pytest.raises(KeyError, match=r"no column\(s\) \['lambda'\].*columns are"):
        read_metrics(run_dir, columns=["lambda"])
    with pytest.raises(ValueError, match="is not \\(column, op, value\\)"):
        read_metrics(run_dir, filters=[("lam", "~", 1.0)])


def test_matrix_store_reads_only_the_networks_asked_for(tmp_path):
    rng = np.random.default_rng(3)
    full = {"t": rng.random((10, 4)), "sim_product": rng.random((10, 4, 3, 2))}
    store = MatrixStore(tmp_path)
    for start, stop in ((0, 4), (4, 9), (9, 10)):
        store.write(start, stop, {k: v[start:stop] for k, v in full.items()})
    assert [(a, b) for a, b, _ in store.chunks()] == [(0, 4), (4, 9), (9, 10)]
    everything = read_matrices(tmp_path)
    for key, value in full.items():
        np.testing.assert_array_equal(everything[key], value)
    np.testing.assert_array_equal(everything["net"], np.arange(10))
    picked = read_matrices(tmp_path, names=["sim_product"], nets=[9, 2, 5])
    assert sorted(picked) == ["net", "sim_product"] and picked["net"].tolist() == [2, 5, 9]  # network order
    np.testing.assert_array_equal(picked["sim_product"], full["sim_product"][[2, 5, 9]])
    with pytest.raises(ValueError, match="share their batch size"):
        store.write(0, 3, {"a": np.zeros((2, 1)), "b": np.zeros((3, 1))})


def test_a_chunk_may_hold_the_matrices_of_some_of_its_networks(tmp_path):
    store = MatrixStore(tmp_path)
    store.write(0, 4, {"x": np.array([[0.0], [2.0]])}, nets=np.array([0, 2]))
    store.write(4, 8, {"x": np.array([[4.0], [6.0]])}, nets=np.array([4, 6]))
    some = read_matrices(tmp_path, nets=[1, 2, 6])
    assert some["net"].tolist() == [2, 6] and some["x"][:, 0].tolist() == [2.0, 6.0]  # net 1 has none


def test_matrices_of_older_run_folders_still_load(tmp_path):
    product = np.arange(24.0).reshape(3, 2, 2, 2)
    np.savez_compressed(tmp_path / "matrices.npz", sim_product=product)
    np.testing.assert_array_equal(read_matrices(tmp_path)["sim_product"], product)
    np.testing.assert_array_equal(read_matrices(tmp_path, nets=[1])["sim_product"], product[[1]])
    with pytest.raises(FileNotFoundError, match="no matrices under"):
        read_matrices(tmp_path / "elsewhere")
