"""A large batch as SLURM shards against the same batch in one process, on the local cluster (local_cluster.sh).

    python -m benchmarks.slurm.shards --out bench_results/slurm [--lams 512 --seeds 512 --shards 16]

Runs, as a user would, ``lazyrich run`` of the λ × seed batch (init=balanced, trainer.t_max=2, trainer.n_log=21,
logger=none) once in one process and once as ``shards=N`` on ``hydra/launcher=slurm``, then checks:

- the two folders hold the same numbers: the largest gap of any float column, relative to that column's largest
  magnitude, in the metrics table and the summary (target ≤ 1e-12);
- the sharded wall time against the one-process wall time (target ≤ 1.3×) and every shard's peak RSS (≤ 1 GiB);
- a resume: a third sharded run has its last array task cancelled with ``scancel`` while it waits; the command
  must name that shard, and the same command run again must recompute it alone;
- after each command, ``squeue`` lists no job of the run.

Writes shards.md (a table of the figures) and prints it. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).with_name("local_cluster.sh")
SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.mem_gb=2",
         "hydra.launcher.timeout_min=60"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.slurm.shards", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/slurm"), help="folder for the runs and shards.md")
    p.add_argument("--lams", type=int, default=512, help="λ values, evenly spaced in [-4, 4]")
    p.add_argument("--seeds", type=int, default=512, help="seeds per λ")
    p.add_argument("--shards", type=int, default=16, help="shards of the sharded runs")
    return p.parse_args(argv)


def batch(lams: int, seeds: int) -> list[str]:
    lam = ",".join(f"{x:.10g}" for x in np.linspace(-4.0, 4.0, lams))
    return ["init=balanced", f"init.lam=[{lam}]", f"seed=[{','.join(map(str, range(seeds)))}]",
            "trainer.t_max=2", "trainer.n_log=21", "trainer.progress=false", "logger=none"]


def timed(args: list[str], env: dict[str, str], log: Path) -> tuple[int, float, float]:
    """Run ``lazyrich args``: (exit status, wall seconds, peak RSS of its process tree's largest process, MiB)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lazyrich.cli", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss / 1024


def queued(env: dict[str, str], name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i"], env=env, capture_output=True, text=True)
    return out.stdout.split()


def largest_gap(a_dir: Path, b_dir: Path) -> float:
    """The largest gap of any float column of the two runs' metrics and summaries, relative to its column."""
    from lazyrich import results

    gaps = [0.0]
    for read in (results.load, results.load_summary):
        a = read(a_dir).drop(columns="run", errors="ignore").sort_values("net", kind="stable", ignore_index=True)
        b = read(b_dir).drop(columns="run", errors="ignore").sort_values("net", kind="stable", ignore_index=True)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            return float("inf")
        for column in a.columns:
            if a[column].dtype.kind == "f":
                x, y = a[column].to_numpy(), b[column].to_numpy()
                if not np.array_equal(np.isnan(x), np.isnan(y)):
                    return float("inf")
                scale = np.nanmax(np.abs(x)) if np.isfinite(x).any() else 0.0
                gaps.append(float(np.nanmax(np.abs(x - y)) / scale) if scale > 0 else 0.0)
    return max(gaps)


def shard_peaks(log: Path) -> list[float]:
    return [float(m) for m in re.findall(r"peak RSS (\d+) MiB", log.read_text())]


def resume_check(args: list[str], env: dict[str, str], out: Path, n_shards: int) -> dict[str, object]:
    """Cancel the last array task of a sharded run while it waits; re-run; what each command said and took."""
    name = "lazyrich:resumed"
    full = [*args, *SLURM, f"shards={n_shards}", "hydra.launcher.array_parallelism=2", f"hydra.run.dir={out}/resumed"]
    log = out / "resumed-1.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "lazyrich.cli", *full], env=env, stdout=handle,
                                stderr=subprocess.STDOUT)
        while not (ids := queued(env, name)) and proc.poll() is None:
            time.sleep(0.2)
        last = f"{ids[0].split('_')[0]}_{n_shards - 1}" if ids else "?"
        subprocess.run(["scancel", last], env=env)
        first_code = proc.wait()
    named = f"shard {n_shards - 1} " in log.read_text() and "1 of" in log.read_text()
    left_after_fail = queued(env, name)
    code, seconds, _ = timed(full, env, out / "resumed-2.log")
    text = (out / "resumed-2.log").read_text()
    return {"cancelled": last, "failed run exit": first_code, "failure names the shard": named,
            "rerun exit": code, "rerun recomputed only it": f"recomputing 1 of {n_shards} shards" in text,
            "rerun s": round(seconds, 1), "squeue after failure": left_after_fail,
            "squeue after rerun": queued(env, name)}


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    out = opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", str(SCRIPT), "up"], check=True)
    conf = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True, check=True).stdout
    env = {**os.environ, "SLURM_CONF": conf.strip().split("=", 1)[1], "WANDB_MODE": "disabled"}
    args = ["run", *batch(opts.lams, opts.seeds)]
    n = opts.lams * opts.seeds
    one_code, one_s, one_rss = timed([*args, f"hydra.run.dir={out}/one"], env, out / "one.log")
    split_code, split_s, _ = timed([*args, *SLURM, f"shards={opts.shards}", f"hydra.run.dir={out}/sharded"], env,
                                   out / "sharded.log")
    peaks = shard_peaks(out / "sharded.log")
    gap = largest_gap(out / "one", out / "sharded") if one_code == split_code == 0 else float("inf")
    resume = resume_check(args, env, out, opts.shards)
    checks = {
        "tables equal to 1e-12": gap <= 1e-12,
        "wall ≤ 1.3× one process": split_s <= 1.3 * one_s,
        "peak RSS per shard ≤ 1 GiB": bool(peaks) and max(peaks) <= 1024,
        "a cancelled task is named, then recomputed alone": bool(resume["failure names the shard"]
                                                                and resume["rerun recomputed only it"]
                                                                and resume["rerun exit"] == 0),
        "squeue empty after each command": not queued(env, "lazyrich:sharded") and not resume["squeue after failure"]
        and not resume["squeue after rerun"],
    }
    lines = [f"# {n:,} networks ({opts.lams} λ × {opts.seeds} seeds), {opts.shards} shards on the local SLURM", "",
             "| figure | value |", "|---|---|",
             f"| one process: wall, peak RSS | {one_s:.1f} s, {one_rss:.0f} MiB |",
             f"| {opts.shards} shards: wall (submit to sealed) | {split_s:.1f} s ({split_s / one_s:.2f}×) |",
             f"| peak RSS per shard (max, min) | {max(peaks, default=0):.0f}, {min(peaks, default=0):.0f} MiB |",
             f"| largest relative gap, metrics and summary | {gap:.2e} |",
             *(f"| resume: {k} | {v} |" for k, v in resume.items()), "", "| check | holds |", "|---|---|",
             *(f"| {k} | {'yes' if v else 'NO'} |" for k, v in checks.items())]
    (out / "shards.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
