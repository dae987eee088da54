"""Every public read verifies (issue: read-path faults): a file path is read only from a finished unit that lists
it, ``load_matrices`` is the verified one, a bench folder gives only the units its suite.csv lists, and a filter
of the wrong shape is one line saying the fix."""

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from lazyrich import results, store
from lazyrich.config.compose import conf_dir
from lazyrich.results.compare import compare
from lazyrich.store import integrity, storage
from lazyrich.suites import run_suites


def a_unit(folder, n_nets=3, n_log=4):
    """A finished unit: 3 networks (λ = -1, 0, 1), their metrics, summary and a ``sim_product`` matrix each."""
    lam = np.repeat(np.arange(n_nets) - 1.0, n_log)
    frame = pd.DataFrame({"net": np.repeat(np.arange(n_nets), n_log), "lam": lam, "seed": 0,
                          "t": np.tile(np.linspace(0.0, 1.0, n_log), n_nets),
                          "sim/loss": np.linspace(2.0, 0.1, n_nets * n_log), "status": "ok"})
    summary = frame.groupby("net").tail(1)[["net", "lam", "status", "sim/loss"]]
    summary = summary.rename(columns={"sim/loss": "loss_final"})
    product = np.arange(n_nets * 8.0).reshape(n_nets, 2, 2, 2)
    store.write_run(folder, frame, summary, matrices={"sim_product": product})
    return frame, product


# --- 1. a file path is verified like its folder -------------------------------------------------------------------


def test_one_bit_flips_in_a_metrics_file_passed_by_path_are_all_refused_never_read(tmp_path):
    frame, _ = a_unit(tmp_path)
    path = tmp_path / store.METRICS_PARQUET
    pd.testing.assert_frame_equal(results.load(path).drop(columns="run"), frame)  # intact: read as the folder is
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    for position in rng.choice(len(data), size=40, replace=False):
        flipped = bytearray(data)
        flipped[position] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(flipped))
        with pytest.raises(FileNotFoundError, match=f"{path} is not read: .*checksum.*re-run the unit"):
            results.load(path)
    path.write_bytes(data)
    assert results.load(path)["sim/loss"].tolist() == frame["sim/loss"].tolist()


def test_a_file_path_of_an_unfinished_unit_or_not_in_its_manifest_is_refused(tmp_path):
    frame, _ = a_unit(tmp_path)
    stray = tmp_path / "metrics.csv"  # written beside the finished unit: not a file of it
    frame.assign(**{"sim/loss": 2 * frame["sim/loss"]}).to_csv(stray, index=False)
    with pytest.raises(FileNotFoundError, match="metrics.csv is not a file of the unit: its MANIFEST.json does not"):
        results.load(stray)
    (tmp_path / store.SUMMARY_FILE).write_text("net,lam,status,loss_final\n0,-1.0,ok,999\n")
    with pytest.raises(FileNotFoundError, match="summary.csv has .* bytes where the manifest recorded"):
        results.load_summary(tmp_path / store.SUMMARY_FILE)
    (tmp_path / store.DONE).unlink()  # killed: nothing in it is a result, by file or by folder
    with pytest.raises(FileNotFoundError, match="is not read: unfinished: no DONE"):
        results.load(tmp_path / store.METRICS_PARQUET)
    with pytest.warns(results.ResultsWarning, match="unfinished"), pytest.raises(FileNotFoundError):
        results.load(tmp_path)


def test_compare_refuses_a_file(tmp_path):
    a_unit(tmp_path / "run")
    with pytest.raises(SystemExit, match=r"metrics.parquet is a file; pass run, sweep or bench folders"):
        compare([tmp_path / "run" / store.METRICS_PARQUET], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- 2. load_matrices verifies; the raw reader says it does not ---------------------------------------------------


def test_load_matrices_is_the_verified_reader_and_the_raw_one_is_named_so(tmp_path):
    _, product = a_unit(tmp_path)
    np.testing.assert_array_equal(results.load_matrices(tmp_path, ["sim_product"])["sim_product"], product)
    assert not hasattr(store, "load_matrices") and not hasattr(storage, "load_matrices")  # no unverified obvious name
    assert "not verified" in storage.read_matrices.__doc__ and "results.load_matrices" in storage.read_matrices.__doc__
    (chunk,) = tmp_path.glob("matrices-*.npz")
    with np.load(chunk) as npz:
        arrays = dict(npz)
    np.savez(chunk, **{**arrays, "sim_product": 2 * arrays["sim_product"]})  # an edited chunk
    with pytest.raises(FileNotFoundError, match="not a finished, intact unit .*matrices-000000000-000000003.npz"):
        results.load_matrices(tmp_path)
    np.savez(chunk, **arrays)
    assert integrity.verify_unit(tmp_path) is None
    (tmp_path / store.DONE).unlink()  # the chunks of a killed run
    with pytest.raises(FileNotFoundError, match="unfinished"):
        results.load_matrices(tmp_path, nets=[1])
    with pytest.raises(FileNotFoundError, match="is a file; pass the unit folder"):
        results.load_matrices(chunk)


# --- 3. a bench folder gives only the units its suite.csv lists ---------------------------------------------------

TINY = ["suite=reversal", "logger=none", "progress=false", "suite.lams=[1]", "suite.reversal.t_phase=3",
        "suite.reversal.n_log=21"]


def bench_cfg(*extra):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("bench", overrides=[*TINY, *extra])


@pytest.fixture(scope="module")
def rerun_bench(tmp_path_factory):
    """A bench run with seeds 0…5, then re-run into the same folder with seed 0: its suite.csv has one row, and
    the unit of the first run is still under runs/, finished and intact."""
    out = tmp_path_factory.mktemp("bench") / "sweep"
    run_suites(bench_cfg("suite.reversal.seeds=[0,1,2,3,4,5]"), out)
    with warnings.catch_warnings():  # the write-up reads the new units only (and names the old one)
        warnings.simplefilter("ignore", results.ResultsWarning)
        run_suites(bench_cfg("suite.reversal.seeds=[0]"), out)
    return out


@pytest.mark.slow
def test_a_bench_read_leaves_out_the_units_of_an_earlier_configuration(rerun_bench, tmp_path):
    folder = tmp_path / "sweep"
    shutil.copytree(rerun_bench, folder)
    table = pd.read_csv(folder / "suite.csv", dtype={"unit": str})
    (current,) = table["unit"]
    (old,) = [p.name for p in (folder / "runs").iterdir() if p.name != current]
    assert integrity.verify_unit(folder / "runs" / old) is None  # finished and intact: only suite.csv tells
    message = (f"left out 1 unit\\(s\\) under {folder / 'runs'}: {folder / 'suite.csv'} does not list them "
               f"\\(units of an earlier configuration of this folder\\): {old}")
    for read in (results.load, results.load_summary):
        with pytest.warns(results.ResultsWarning, match=message) as caught:
            frame = read(folder)
        assert len(caught) == 1  # once per bench, with a count
        assert set(frame["run"]) == {f"runs/{current}"}
    with pytest.warns(results.ResultsWarning, match=message):
        networks = results.load(folder)[["net", "seed"]].drop_duplicates()
    assert networks.to_dict("list") == {"net": [0], "seed": [0]}  # one network, as suite.csv has one row
    with pytest.warns(results.ResultsWarning, match=message):
        assert set(results.load(folder / "runs")["run"]) == {current}  # the runs/ folder is read the same way
    assert results.load(folder / "runs" / old)["seed"].nunique() == 6  # one unit asked for by name: read
    with pytest.warns(results.ResultsWarning, match=message):
        out = compare([folder], tmp_path / "cmp", metrics=["loss", "time_to_reverse"])
    final, suite = pd.read_csv(out["final.csv"]), pd.read_csv(out["suite_reversal.csv"])
    assert len(final) == len(suite) == len(table) == 1


# --- 5. filters: every wrong shape is one line saying the fix -----------------------------------------------------


@pytest.mark.parametrize("layout", ["parquet", "csv"])
@pytest.mark.parametrize(("filters", "says"), [
    ([("lam", "in", 0.0)], r"'in' takes a list of values, e\.g\. \('lam', 'in', \[0\.0\]\)"),
    ([("lam", "not in", "0")], r"'not in' takes a list of values"),
    ([("lam", "==", [0.0, 1.0])], r"'==' compares with one value; for several use \('lam', 'in', \[0\.0, 1\.0\]\)"),
    ([("lam", "~", 1.0)], r"is not \(column, op, value\) with op in"),
    ([("lam", "==")], r"is not \(column, op, value\)"),
    ([(0, "==", 1.0)], r"the column is a name, e\.g\. 'lam'"),
    (("lam", "==", 0.0), r"pass a list of \(column, op, value\) tuples, e\.g\. \[\('lam', '==', 0\.5\)"),
    ([("lam", "==", "0.5")], r"lam holds numbers in .*, the value is text; pass a number, e\.g\. \('lam', '==', 0\.5"),
    ([("lam", "in", [0.0, "1"])], r"lam holds numbers in .*, the value is text"),
    ([("status", "==", 1)], r"status holds text in .*, the value is a number; pass text, e\.g\. \('status', '=="),
    ([("lam", ">", None)], r"lam holds numbers in .*, the value is None; pass a number"),
])
def test_a_filter_of_the_wrong_shape_or_type_is_one_line_saying_the_fix(tmp_path, layout, filters, says):
    frame, _ = a_unit(tmp_path)
    if layout == "csv":  # a folder of an older version: the same checks
        (tmp_path / store.METRICS_PARQUET).unlink()
        frame.to_csv(tmp_path / "metrics.csv", index=False)
        integrity.write_manifest(tmp_path)
    with pytest.raises(ValueError, match=says) as err:
        results.load(tmp_path, filters=filters)
    assert "\n" not in str(err.value) and type(err.value) is ValueError
    kept = results.load(tmp_path, filters=[("lam", "in", [0.0, 1.0]), ("status", "==", "ok"), ("t", ">=", 1)])
    assert kept["lam"].tolist() == [0.0, 1.0]  # the right shapes still select


def test_a_filter_on_a_column_that_is_not_there_names_the_columns(tmp_path):
    a_unit(tmp_path)
    with pytest.raises(KeyError, match=r"has no column\(s\) \['lambda'\]; its columns are \['net', 'lam'"):
        results.load(tmp_path, filters=[("lambda", "==", 0.0)])
