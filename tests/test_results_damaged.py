"""Faults in finished results (issue 11): damaged units are redone on resume and never read as results.

One tiny reversal bench (2 λ, one seed, short phases) is computed once per module; each test damages a copy
the way a user or a crash would and checks what resume, ``results.load`` and ``compare`` do with it.
"""

import shutil
import warnings

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from lazyrich import results, store
from lazyrich.config.compose import conf_dir
from lazyrich.results.compare import compare
from lazyrich.store import integrity
from lazyrich.suites import SUITES, run_suites

HEADLINES = {name: suite.columns for name, suite in SUITES.items()}

TINY = ["suite=reversal", "logger=none", "progress=false", "suite.lams=[-2,1]", "suite.reversal.seeds=[0]",
        "suite.reversal.t_phase=3", "suite.reversal.n_log=21"]


def bench_cfg(*extra):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("bench", overrides=[*TINY, *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished bench folder and its suite.csv (the truth)."""
    out = tmp_path_factory.mktemp("bench") / "sweep"
    run_suites(bench_cfg(), out)
    return out, pd.read_csv(out / "suite.csv")


@pytest.fixture
def copy(finished, tmp_path):
    out, truth = finished
    target = tmp_path / "sweep"
    shutil.copytree(out, target)
    return target, truth


def _unit_dirs(folder):
    return sorted(p.parent for p in folder.glob("runs/*/DONE"))


def _rerun(folder):
    with pytest.warns(results.ResultsWarning, match="failed verification, recomputing"):
        table = run_suites(bench_cfg(), folder)["reversal"]
    return table


def _same_table(table, truth):
    cols = ["lam", "loss_final", "time_to_reverse", "status"]
    pd.testing.assert_frame_equal(table[cols].reset_index(drop=True), truth[cols].reset_index(drop=True))


@pytest.mark.slow
def test_a_truncated_metrics_file_is_recomputed_on_resume_and_compare_reads_the_truth(copy, tmp_path):
    folder, truth = copy
    unit = _unit_dirs(folder)[0]
    metrics = unit / store.METRICS_PARQUET
    metrics.write_bytes(metrics.read_bytes()[: metrics.stat().st_size // 3])
    assert integrity.verify_unit(unit) is not None
    table = _rerun(folder)
    _same_table(table, truth)
    assert (folder / "computed.log").read_text().split().count(unit.name) == 2  # computed again, once
    assert integrity.verify_unit(unit) is None
    out = compare([folder], tmp_path / "cmp", metrics=["loss"])
    final = pd.read_csv(out["final.csv"])
    loaded = results.load(folder)
    last = loaded.sort_values("t").groupby("lam").tail(1).set_index("lam")["sim/loss"]
    assert final.set_index("lam")["sim/loss [sweep]"].to_dict() == pytest.approx(last.to_dict(), rel=1e-12)
    assert truth.set_index("lam")["loss_final"].to_dict() == pytest.approx(last.to_dict(), rel=1e-9)


@pytest.mark.parametrize("damage", ["garbage", "empty", "missing"])
@pytest.mark.slow
def test_a_damaged_summary_or_missing_metrics_is_recomputed_not_lost(copy, damage):
    folder, truth = copy
    unit = _unit_dirs(folder)[1]
    if damage == "garbage":
        (unit / store.SUMMARY_FILE).write_text("\x00\x01 not a table,,\n\"unclosed\n")
    elif damage == "empty":
        (unit / store.SUMMARY_FILE).write_bytes(b"")
    else:
        (unit / store.METRICS_PARQUET).unlink()
    table = _rerun(folder)
    _same_table(table, truth)  # every λ is back in suite.csv
    _same_table(pd.read_csv(folder / "suite.csv"), truth)
    summary = (folder / "summary.md").read_text()
    assert "Traceback" not in summary and "2 units: 1 computed, 1 already done" in summary


def test_load_skips_unfinished_and_damaged_units_naming_them(copy):
    folder, _ = copy
    good, killed = _unit_dirs(folder)
    (killed / store.DONE).unlink()  # killed mid-write: whatever rows it has are not results
    with pytest.warns(results.ResultsWarning, match=f"skipped {killed}: unfinished"):
        frame = results.load(folder)
    assert set(frame["run"]) == {f"runs/{good.name}"}
    (killed / store.DONE).write_text("")
    (killed / "summary.json").write_bytes(b"changed")
    with pytest.warns(results.ResultsWarning, match="summary.json has 7 bytes"):
        assert set(results.load_summary(folder)["run"]) == {f"runs/{good.name}"}


def test_compare_leaves_out_damaged_units_of_suite_tables(copy, tmp_path):
    folder, truth = copy
    damaged = _unit_dirs(folder)[0]
    (damaged / store.METRICS_PARQUET).write_text("t,sim/loss\n0,6.575\n")
    with pytest.warns(results.ResultsWarning) as caught:
        out = compare([folder], tmp_path / "cmp", headlines=HEADLINES)
    assert any(f"unit {damaged.name}" in str(w.message) for w in caught)
    suite = pd.read_csv(out["suite_reversal.csv"])
    assert len(suite) == 1 and damaged.name not in set(truth.loc[truth["lam"].isin(suite["lam"]), "unit"])
    # A 0-byte suite table is named and left out, not a crash; without it nothing says which units under runs/
    # are of the current configuration, so none is read: one line says so.
    (folder / "suite.csv").write_bytes(b"")
    with pytest.warns(results.ResultsWarning) as caught, pytest.raises(SystemExit, match="nothing to compare"):
        compare([folder], tmp_path / "cmp2", headlines=HEADLINES)
    messages = [str(w.message) for w in caught]
    assert any(f"skipped {folder / 'suite.csv'}: not a readable table" in m for m in messages)
    assert any(m.startswith(f"left out 2 unit(s) under {folder / 'runs'}: {folder / 'suite.csv'} is not a readable")
               for m in messages)


def test_compare_verifies_each_unit_once_and_still_names_a_damaged_one_for_metrics_and_suite_rows(
        copy, tmp_path, monkeypatch):
    folder, truth = copy
    damaged = _unit_dirs(folder)[0]
    (damaged / store.METRICS_PARQUET).write_text("t,sim/loss\n0,6.575\n")
    calls = []
    real = integrity.verify_unit
    monkeypatch.setattr(integrity, "verify_unit", lambda run_dir: calls.append(run_dir.resolve()) or real(run_dir))
    with pytest.warns(results.ResultsWarning) as caught:
        out = compare([folder], tmp_path / "cmp", headlines=HEADLINES)
    assert sorted(calls) == sorted(d.resolve() for d in _unit_dirs(folder))  # every unit once, none twice
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"skipped {damaged}:") for m in messages)  # left out of the metrics
    assert any(m.startswith(f"skipped the rows of unit {damaged.name} in") for m in messages)  # and of suite.csv
    assert len(pd.read_csv(out["suite_reversal.csv"])) == len(truth) - 1


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n garbage \x00", b"a,b\n1,2\n"])
def test_load_on_a_zero_byte_or_garbage_file_names_the_path(tmp_path, content):
    path = tmp_path / "metrics.csv"
    path.write_bytes(content)
    with pytest.raises(FileNotFoundError, match=f"{path} is not read: unfinished"):  # not a finished unit's file
        results.load(path)
    integrity.write_manifest(tmp_path)  # a finished unit that holds it: read, and named as no table
    (tmp_path / store.DONE).write_text("")
    with pytest.raises(ValueError, match=str(path)):
        results.load(path)


def test_a_manifest_records_every_file_and_catches_a_same_size_change(tmp_path):
    frame = pd.DataFrame({"net": [0, 0], "t": [0.0, 1.0], "sim/loss": [1.0, 0.5], "status": "ok"})
    store.write_run(tmp_path, frame, pd.DataFrame({"status": ["ok"]}), matrices={"a": [1.0]}, notes=["exact"])
    (tmp_path / "extra.parquet").write_bytes(b"x")  # written after the manifest: not part of the unit
    listed = set(pd.read_json(tmp_path / integrity.MANIFEST)["files"].index)
    assert listed == {store.METRICS_PARQUET, "summary.csv", "summary.json", "matrices-000000000-000000001.npz",
                      store.THEORY_FILE}
    assert integrity.verify_unit(tmp_path) is None
    metrics = tmp_path / store.METRICS_PARQUET
    data = metrics.read_bytes()
    middle = len(data) // 2
    metrics.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])  # same size, one byte
    assert "checksum" in integrity.verify_unit(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.write_bytes(data)
        assert integrity.verify_unit(tmp_path) is None
