"""One name per metric: every table lazyrich writes uses ``<metric>_final``, and folders written before (with
``final_<metric>``) still read under today's names."""

import numpy as np
import pandas as pd
import pytest

from lazyrich import results, store
from lazyrich.results.names import LEGACY_NAMES, canonical
from lazyrich.suites import SUITES


def _frame(n_nets: int = 2, n_t: int = 5) -> pd.DataFrame:
    """A tiny long metrics table: loss halving per step, kernel distance rising, theory 1% above the loss."""
    t = np.tile(np.arange(n_t, dtype=float), n_nets)
    net = np.repeat(np.arange(n_nets), n_t)
    loss = (1.0 + net) * 0.5 ** t
    return pd.DataFrame({"net": net, "t": t, "lam": net * 2.0, "status": "ok", "sim/loss": loss,
                         "sim/kernel_distance": 0.1 * t * (1 + net), "theory/loss": loss * 1.01})


def test_summary_columns_use_todays_names_only():
    summary = results.summarise(_frame(), meta_columns=["lam"])
    assert {"loss_final", "kernel_distance_final", "time_to_1pct", "theory_loss_final"} <= set(summary.columns)
    assert not set(LEGACY_NAMES) & set(summary.columns)
    assert summary["kernel_distance_final"].tolist() == pytest.approx([0.4, 0.8])
    assert summary["loss_final"].tolist() == pytest.approx([0.5 ** 4, 2 * 0.5 ** 4])
    assert summary["time_to_1pct"].isna().all()  # 0.5**4 > 1%: never reached
    # A longer run crosses 1% between t = 6 and t = 7, linearly interpolated there.
    crossing = 6 + (0.5 ** 6 - 0.01) / (0.5 ** 6 - 0.5 ** 7)
    assert results.summarise(_frame(n_t=9))["time_to_1pct"].tolist() == pytest.approx([crossing, crossing])


def test_every_suite_measure_uses_todays_names():
    for suite in SUITES.values():
        names = {m.column for m in suite.measures} | {m.theory for m in suite.measures if m.theory}
        assert not names & set(LEGACY_NAMES), f"suite {suite.name} declares an old metric name"


def test_an_old_run_folder_loads_under_todays_names(tmp_path):
    frame = _frame()
    new = results.summarise(frame, meta_columns=["lam"])
    old = new.rename(columns={v: k for k, v in LEGACY_NAMES.items()})
    assert {"final_kernel_distance", "theory_final_loss", "t_to_1pct"} <= set(old)  # really an old-style folder
    store.write_run(tmp_path / "old", frame, old)
    loaded = results.load_summary(tmp_path / "old")
    assert not set(LEGACY_NAMES) & set(loaded.columns)
    pd.testing.assert_frame_equal(loaded.drop(columns="run")[list(new.columns)], new, check_dtype=False)


def test_canonical_keeps_a_column_already_named_today():
    table = pd.DataFrame({"final_loss": [1.0], "loss_final": [2.0], "final_kernel_distance": [3.0]})
    out = canonical(table)
    assert out["loss_final"].tolist() == [2.0] and "final_loss" in out  # today's column wins; the old one stays
    assert out["kernel_distance_final"].tolist() == [3.0] and "final_kernel_distance" not in out
    assert canonical(pd.DataFrame({"x": [1]})).columns.tolist() == ["x"]


def test_compare_puts_an_old_suite_table_beside_a_new_one(tmp_path):
    from lazyrich.results.compare import compare

    rows = pd.DataFrame({"suite": "architecture", "arch": "square", "lam": [0.0, 2.0], "seed": 0, "status": "ok",
                         "kernel_distance_final": [0.3, 0.05], "loss_final": [1e-3, 2e-3]})
    (tmp_path / "old" / "architecture").mkdir(parents=True)
    (tmp_path / "new" / "architecture").mkdir(parents=True)
    rows.rename(columns={"kernel_distance_final": "final_kernel_distance", "loss_final": "final_loss"}).to_csv(
        tmp_path / "old" / "architecture" / "suite.csv", index=False)
    rows.to_csv(tmp_path / "new" / "architecture" / "suite.csv", index=False)
    compare([tmp_path / "old", tmp_path / "new"], tmp_path / "out", metrics=["kernel_distance_final", "loss_final"])
    table = pd.read_csv(tmp_path / "out" / "suite_architecture.csv")
    for name in ("kernel_distance_final", "loss_final"):
        assert table[f"{name} [old]"].tolist() == table[f"{name} [new]"].tolist() == rows[name].tolist()
