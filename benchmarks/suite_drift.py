"""Did a change move any suite number? Run every suite at its test size, then compare two such runs.

    python -m benchmarks.suite_drift run AFTER                       # this checkout, ~10 s
    git worktree add /tmp/before <rev> && cd /tmp/before && \
        PYTHONPATH=/tmp/before python <this checkout>/benchmarks/suite_drift.py run BEFORE
    python -m benchmarks.suite_drift diff BEFORE AFTER

``run`` writes ``OUT/<suite>.csv`` (the suite table) for the suites at the sizes their tests use; ``diff``
prints, per suite, the rows and the largest relative difference of any numeric column (and the column), and
names columns that appear on one side only, text that differs, or NaN that moved. Unit ids and timings are
left out: they name a configuration, not a result.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SIZES = {"reversal": ("test_suites_reversal", "TINY"), "architecture": ("test_suites_architecture", "TINY"),
         "continual": ("test_suites_continual", "TINY"), "finetune": ("test_suites_finetune", "TINY"),
         "transfer": ("test_suites_transfer", "TINY"), "rotation": ("test_suites_transfer", "ROTATION"),
         "generalisation": ("test_suites_generalisation", "TINY")}
IGNORED = {"unit", "seconds", "error"}


def _compose(overrides: list[str]):
    """The bench config, composed as the measured checkout composes it (``lazyrich.config.compose`` since 0.3,
    ``lazyrich.cli.compose`` before)."""
    try:
        from lazyrich.config.compose import compose
    except ImportError:
        from lazyrich.cli import compose
    return compose("bench", overrides)


def run(out: Path, names: list[str]) -> None:
    """Each suite at its test size into ``out/<suite>/``, its table copied to ``out/<suite>.csv``."""
    import lazyrich
    from lazyrich.suites import run_suites

    sys.path.insert(0, str(Path(lazyrich.__file__).resolve().parents[1] / "tests"))  # the checkout measured
    for name in names:
        module, variable = SIZES[name]
        overrides = getattr(importlib.import_module(module), variable)
        shutil.rmtree(out / name, ignore_errors=True)
        cfg = _compose([f"suite={name}", "logger=none", "progress=false", *overrides])
        run_suites(cfg, out / name)[name].to_csv(out / f"{name}.csv", index=False)


def drift(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """What differs between two tables of one suite, in lines; the last one is the largest numeric change."""
    lines, worst = [], (0.0, "none")
    left, right = set(before) - IGNORED, set(after) - IGNORED
    if left != right:
        lines.append(f"columns only before: {sorted(left - right)}, only after: {sorted(right - left)}")
    if len(before) != len(after):
        return [*lines, f"rows differ: {len(before)} before, {len(after)} after"]
    for column in sorted(left & right):
        a, b = before[column], after[column]
        if a.dtype.kind not in "fiub" or b.dtype.kind not in "fiub":
            if not (a.astype(str) == b.astype(str)).all():
                lines.append(f"{column}: text differs")
            continue
        x, y = a.to_numpy(float), b.to_numpy(float)
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            lines.append(f"{column}: NaN in other rows")
            continue
        keep = ~np.isnan(x)
        rel = np.abs(x[keep] - y[keep]) / np.maximum(np.abs(x[keep]), 1e-300) if keep.any() else np.zeros(1)
        if rel.max() > worst[0]:
            worst = (float(rel.max()), column)
    return [*lines, f"{len(before)} rows, largest relative difference {worst[0]:.3g} ({worst[1]})"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite_drift", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run every suite at its test size")
    p_run.add_argument("out", type=Path)
    p_run.add_argument("suites", nargs="*", default=list(SIZES))
    p_diff = sub.add_parser("diff", help="compare two folders written by run")
    p_diff.add_argument("before", type=Path)
    p_diff.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.out, args.suites)
        return
    for name in SIZES:
        files = [args.before / f"{name}.csv", args.after / f"{name}.csv"]
        if all(f.exists() for f in files):
            for line in drift(*(pd.read_csv(f) for f in files)):
                print(f"{name}: {line}")


if __name__ == "__main__":
    main()
