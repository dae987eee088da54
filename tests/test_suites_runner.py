"""lazyrich.suites.runner: stable ids, skipping finished units, recording failures (toy units)."""

import hashlib

import pandas as pd
import pytest

from lazyrich import results, store
from lazyrich.suites.runner import FAILED, Unit, UnitOutput, run_sweep, unit_id


def test_unit_id_is_stable_and_ignores_key_order():
    a = {"suite": "x", "lam": 1.0, "nested": {"b": [1, 2], "a": None}}
    b = {"nested": {"a": None, "b": [1, 2]}, "lam": 1.0, "suite": "x"}
    assert unit_id(a) == unit_id(b)
    assert len(unit_id(a)) == 12 and int(unit_id(a), 16) >= 0
    assert unit_id(a) != unit_id({**a, "lam": 2.0})
    # The definition, spelled out: an id must not change between releases, or old sweeps would not resume.
    assert unit_id({"lam": 0.0}) == hashlib.sha1(b'{"lam": 0.0}').hexdigest()[:12]


def _compute_counting(calls):
    def compute(unit, run_dir):
        calls.append(unit.id)
        if unit.config["lam"] == 666.0:
            raise ValueError("impossible λ for these widths")
        frame = pd.DataFrame({"net": [0, 0], "t": [0.0, 1.0], "sim/loss": [1.0, 0.5], "status": "ok"})
        return UnitOutput(frame, pd.DataFrame({"lam": [unit.config["lam"]], "seed": [0], "value": [2.0]}))

    return compute


def test_finished_units_are_skipped_and_failures_recorded_while_others_finish(tmp_path):
    units = [Unit({"lam": lam}, {"suite": "toy", "lam": lam}) for lam in (-1.0, 666.0, 1.0)]
    calls = []
    first = run_sweep(units, _compute_counting(calls), tmp_path, progress=False)
    assert calls == [u.id for u in units]
    assert first.failed == [units[1].id] and sorted(first.computed) == sorted([units[0].id, units[2].id])
    rows = first.rows.set_index("lam")
    assert rows.loc[666.0, "status"] == "failed" and "impossible" in rows.loc[666.0, "error"]
    assert (rows.loc[[-1.0, 1.0], "status"] == "ok").all() and (rows.loc[[-1.0, 1.0], "value"] == 2.0).all()
    failed_dir = tmp_path / "runs" / units[1].id
    assert "ValueError: impossible" in (failed_dir / FAILED).read_text()
    assert not (failed_dir / store.DONE).exists()
    done = {u.id: (tmp_path / "runs" / u.id / store.DONE).stat().st_mtime_ns for u in (units[0], units[2])}

    # Re-running skips the finished units and retries only the failed one.
    calls.clear()
    second = run_sweep(units, _compute_counting(calls), tmp_path, progress=False)
    assert calls == [units[1].id]
    assert sorted(second.skipped) == sorted(done) and second.failed == [units[1].id]
    assert {u: (tmp_path / "runs" / u / store.DONE).stat().st_mtime_ns for u in done} == done
    assert (tmp_path / "computed.log").read_text().split() == [units[0].id, units[2].id]
    assert set(second.rows["lam"]) == {-1.0, 666.0, 1.0}


def test_a_killed_unit_without_done_is_cleared_and_redone(tmp_path):
    unit = Unit({"lam": 0.0}, {"suite": "toy", "lam": 0.0})
    stale = tmp_path / "runs" / unit.id
    stale.mkdir(parents=True)
    (stale / store.METRICS_PARQUET).write_text("half-written")
    (stale / "leftover.txt").write_text("from the killed attempt")
    calls = []
    result = run_sweep([unit], _compute_counting(calls), tmp_path, progress=False)
    assert calls == [unit.id] and result.computed == [unit.id]
    assert not (stale / "leftover.txt").exists() and (stale / store.DONE).exists()
    assert results.load(stale)["sim/loss"].tolist() == [1.0, 0.5]


def test_two_units_with_the_same_config_are_refused(tmp_path):
    units = [Unit({"lam": 0.0}, {"lam": 0.0}), Unit({"lam": 0.0}, {"lam": 0.0})]
    with pytest.raises(ValueError, match="share a config"):
        run_sweep(units, _compute_counting([]), tmp_path, progress=False)


def test_a_unit_folder_of_an_older_version_is_read_verified_and_not_recomputed(tmp_path):
    """Units written before the one format (metrics.csv, matrices.npz) still resume and load; this one is written
    by hand, as those versions wrote it."""
    import numpy as np

    from lazyrich.results.io import load_matrices
    from lazyrich.store import integrity
    from lazyrich.suites.common import load_frames

    unit = Unit({"lam": 1.0}, {"suite": "toy", "lam": 1.0})
    old = tmp_path / "runs" / unit.id
    old.mkdir(parents=True)
    frame = pd.DataFrame({"net": [0, 0], "t": [0.0, 1.0], "sim/loss": [1.0, 0.25], "status": "ok"})
    frame.to_csv(old / "metrics.csv", index=False)
    pd.DataFrame({"lam": [1.0], "seed": [0], "value": [3.0], "unit": [unit.id], "status": ["ok"]}).to_csv(
        old / store.SUMMARY_FILE, index=False)
    np.savez_compressed(old / "matrices.npz", sim_product=np.ones((1, 2, 2)))
    integrity.write_manifest(old)
    (old / store.DONE).write_text("")

    calls = []
    sweep = run_sweep([unit], _compute_counting(calls), tmp_path, progress=False)
    assert calls == [] and sweep.skipped == [unit.id]  # finished and intact: resumed, not recomputed
    assert sweep.rows["value"].tolist() == [3.0]
    frames = load_frames(tmp_path, sweep.rows)
    assert frames["unit"].tolist() == [unit.id] * 2 and frames["sim/loss"].tolist() == [1.0, 0.25]
    assert load_matrices(old)["sim_product"].shape == (1, 2, 2)
    (old / "metrics.csv").write_text("t,sim/loss\n0,9\n")  # damaged since: left out, named, never read
    with pytest.warns(results.ResultsWarning, match=f"skipped {old}"):
        assert load_frames(tmp_path, sweep.rows).empty
    with pytest.raises(FileNotFoundError, match="not a finished, intact unit"):
        load_matrices(old)
