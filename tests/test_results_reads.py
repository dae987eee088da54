"""Reads of results (issue: read-path faults): a filter of the wrong shape is one line saying the fix."""


import numpy as np
import pandas as pd
import pytest

from lazyrich import results, store
from lazyrich.store import integrity


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
