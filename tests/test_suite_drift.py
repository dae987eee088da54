"""benchmarks.suite_drift: the before/after check of suite numbers, on synthetic tables."""

import numpy as np
import pandas as pd

from benchmarks.suite_drift import drift


def test_drift_reports_the_largest_relative_change_and_its_column():
    before = pd.DataFrame({"lam": [0.0, 1.0], "t": [2.0, 4.0], "ok": [True, False], "unit": ["a", "b"]})
    after = before.assign(t=[2.0, 4.4], unit=["x", "y"])  # unit ids are not results
    assert drift(before, after) == ["2 rows, largest relative difference 0.1 (t)"]
    assert drift(before, before) == ["2 rows, largest relative difference 0 (none)"]


def test_drift_names_moved_nan_changed_text_and_missing_columns():
    before = pd.DataFrame({"a": [1.0, np.nan], "b": ["x", "y"], "c": [1.0, 2.0]})
    after = pd.DataFrame({"a": [np.nan, 1.0], "b": ["x", "z"], "d": [1.0, 2.0]})
    lines = drift(before, after)
    assert "columns only before: ['c'], only after: ['d']" in lines[0]
    assert "a: NaN in other rows" in lines and "b: text differs" in lines
    assert drift(before, before.iloc[:1]) == ["rows differ: 2 before, 1 after"]
