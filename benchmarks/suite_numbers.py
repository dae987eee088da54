"""Compare the suite.csv numbers of two bench folders to 1e-10 (a refactor must not change a suite's results).

Usage: python -m benchmarks.suite_numbers BEFORE_DIR AFTER_DIR (e.g. two `lazyrich bench suite=all` folders).

It maps the names used before the declarative-suites change: transfer's `rotated` rows → the rotation suite,
and old metric names to today's (lazyrich.metric_names.canonical).
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lazyrich.metric_names import canonical

KEYS = ["part", "angle", "arch", "lam", "seed"]


def tables(root: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for f in sorted(root.rglob("suite.csv")):
        t = canonical(pd.read_csv(f))
        name = str(t["suite"].iloc[0])
        if name == "transfer" and "part" in t and (t["part"] == "rotated").any():
            out["rotation"] = t[t["part"] == "rotated"].drop(columns=["part"])
            t = t[t["part"] != "rotated"]
        out[name] = t
    return out


before, after = tables(Path(sys.argv[1])), tables(Path(sys.argv[2]))
assert set(before) == set(after), (sorted(before), sorted(after))
worst = 0.0
for name in before:
    b, a = before[name], after[name]
    keys = [k for k in KEYS if k in b and k in a and b[k].notna().any()]
    b, a = b.sort_values(keys, ignore_index=True), a.sort_values(keys, ignore_index=True)
    assert len(a) == len(b), name
    cols = [c for c in b if c in a and c not in ("unit", "suite") and pd.api.types.is_numeric_dtype(b[c])]
    for c in cols:
        x, y = b[c].to_numpy(float), a[c].to_numpy(float)
        assert np.array_equal(np.isnan(x), np.isnan(y)), (name, c)
        m = ~np.isnan(x)
        rel = float(np.max(np.abs(x[m] - y[m]) / np.maximum(np.abs(x[m]), 1e-300), initial=0.0))
        worst = max(worst, rel)
        assert rel <= 1e-10, (name, c, rel)
    print(f"{name}: {len(b)} rows, {len(cols)} numeric columns equal to 1e-10")
print(f"max relative difference {worst:.3g}")
