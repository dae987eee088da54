"""Run every performance benchmark and write one Markdown table (perf.md) and a CSV (perf.csv) into ``--out``.

    python -m benchmarks.perf --out bench_results [--quick] [--only training,ntk] [--threads N] [--strict]

The exit status is 1 when a benchmark crashed or a result disagrees with its baseline beyond tolerance; a
missed speed or memory target only fails the run with ``--strict`` (timings on a shared machine are noisy).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

from benchmarks.perf import BENCHMARKS
from benchmarks.perf.common import COLUMNS, Row, row

ALIASES = {"baseline_s": "baseline", "lazyrich_s": "lazyrich", "error": "max_error", "tol": "tolerance"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.splitlines()[0])
    p.add_argument(
        "--out", type=Path, default=Path("bench_results"), help="directory for perf.md and perf.csv"
    )
    p.add_argument("--quick", action="store_true", help="shrink every workload to a smoke test")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1, see perf.md; 0 keeps torch's default)",
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per measurement (median reported)"
    )
    p.add_argument(
        "--strict", action="store_true", help="exit 1 when any target is missed, not only on errors"
    )
    return p.parse_args(argv)


def machine() -> dict[str, str]:
    """What the figures depend on: CPU, cores, torch and its thread count, the load when the run started."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
        "load": _load(),
    }


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run_one(name: str, argv: list[str]) -> list[Row]:
    """Rows of ``benchmarks.perf.bench_<name>.main(argv)``; a missing module becomes a "skipped" row."""
    module = f"benchmarks.perf.bench_{name}"
    try:
        bench = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        return [
            {
                **row(
                    name,
                    f"{module} not found",
                    baseline=None,
                    lazyrich=None,
                    notes=f"skipped: {module.replace('.', '/')}.py does not exist yet",
                ),
                "status": "skipped",
            }
        ]
    return [normalise(r, name) for r in bench.main(argv)]


def normalise(r: Row, name: str) -> Row:
    """Fill the standard columns of a row from another module (aliases such as ``baseline_s`` accepted)."""
    out = {ALIASES.get(k, k): v for k, v in r.items()}
    if "status" not in out and "passed" in out:
        out["status"] = "pass" if out.pop("passed") else "fail"
    out.setdefault("benchmark", name)
    for column in COLUMNS:
        out.setdefault(column, None)
    return out


def _cell(value: object, digits: int = 4) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value).replace("|", "\\|")


def write_csv(rows: list[Row], path: Path) -> None:
    extra = sorted({k for r in rows for k in r} - set(COLUMNS))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, *extra])
        writer.writeheader()
        writer.writerows(rows)


def write_markdown(
    rows: list[Row],
    info: dict[str, str],
    runs: list[tuple[str, float, str, str]],
    args: argparse.Namespace,
    path: Path,
) -> None:
    head = [
        "Benchmark",
        "Measurement",
        "Baseline",
        "lazyrich",
        "Unit",
        "Ratio",
        "Target",
        "Status",
        "Max error",
        "Notes",
    ]
    lines = [
        "# lazyrich performance benchmarks",
        "",
        f"{info['date']} · {info['cpu']} · {info['cores']} cores · Python {info['python']} · "
        f"torch {info['torch']} · {info['threads']} intra-op thread(s) · load average at start {info['load']}"
        + (" · **--quick: smoke-test workloads, timing targets not judged**" if args.quick else ""),
        "",
        "Ratio = baseline / lazyrich: a speed-up for times; for the scaling rows the fraction of the "
        "measured matmul peak, since their baseline is the time the step's FLOPs would take at that peak; "
        "rows whose target reads ≤ report a cost, lazyrich ÷ baseline (lower is better). "
        "Medians of repeats; both sides of a row run in one process.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cells = [
            r["benchmark"],
            r["name"],
            _cell(r["baseline"]),
            _cell(r["lazyrich"]),
            r["unit"],
            _cell(r["ratio"], 3),
            r["target"],
            r["status"],
            _cell(r["max_error"], 2),
            r["notes"],
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [
        "",
        "| Benchmark | Wall time (s) | Load average before → after | Reproduce |",
        "|---|---|---|---|",
    ]
    for name, seconds, before, after in runs:
        lines.append(
            f"| {name} | {seconds:.1f} | {before} → {after} | "
            f"`.venv/bin/python -m benchmarks.perf.bench_{name}{' --quick' if args.quick else ''}` |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    names = BENCHMARKS if args.only is None else tuple(n.strip() for n in args.only.split(","))
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; choose from {list(BENCHMARKS)}.")
    info = machine()
    rows: list[Row] = []
    runs = []
    for name in names:
        sub_argv = (["--quick"] if args.quick else []) + (
            [] if args.repeats is None else ["--repeats", str(args.repeats)]
        )
        if name == "theory":  # it also writes its own, more detailed table: keep it next to ours
            sub_argv += ["--out", str(args.out / "theory.md")]
        before, start = _load(), time.perf_counter()
        print(f"[bench] {name} …", file=sys.stderr, flush=True)
        try:
            new = run_one(name, sub_argv)
        except Exception as err:  # one broken benchmark must not hide the others' results
            traceback.print_exc()
            new = [
                {
                    **row(
                        name, "crashed", baseline=None, lazyrich=None, notes=f"{type(err).__name__}: {err}"
                    ),
                    "status": "error",
                }
            ]
        runs.append((name, time.perf_counter() - start, before, _load()))
        rows += new
        for r in new:
            print(f"[bench]   {r['name']}: {r['status']}", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "perf.csv")
    write_markdown(rows, info, runs, args, args.out / "perf.md")
    print((args.out / "perf.md").read_text())
    wrong = [
        r
        for r in rows
        if r["status"] == "error"
        or (r["tolerance"] is not None and r["max_error"] is not None and r["max_error"] > r["tolerance"])
    ]
    missed = [r for r in rows if r["status"] == "fail"]
    return 1 if wrong or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
