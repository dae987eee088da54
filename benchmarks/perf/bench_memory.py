"""Peak resident memory of a 4096-network sweep with logging on, measured in a fresh subprocess (VmHWM).

Workload: 16 λ in [−4, 4] × 256 seeds on the 8-item hierarchy, lr 1e-2, 1000 steps, 101 log points, the
matrices kept at ``n_matrix`` = 21 of them. Target: peak RSS < 2 GiB. The baseline column is the same
process's RSS just before ``train`` (interpreter, torch, task and weights), so the difference is what training
adds. A second, unjudged row keeps the matrices at every log point, to show what subsampling them saves.

Run standalone: ``python -m benchmarks.perf.bench_memory [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.perf.common import Row, parser, row

NAME = "memory"
ROOT = Path(__file__).resolve().parents[2]  # the directory holding the benchmarks package
LIMIT_MIB = 2048.0


@dataclass(frozen=True)
class Sweep:
    n_lam: int = 16
    n_seeds: int = 256
    steps: int = 1000
    lr: float = 1e-2
    n_log: int = 101

    @property
    def batch(self) -> int:
        return self.n_lam * self.n_seeds


FULL = Sweep()
QUICK = Sweep(n_lam=4, n_seeds=64, steps=100, n_log=11)


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (e.g. VmHWM, VmRSS) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field} line (not Linux?).")


def child(sweep: Sweep, n_matrix: int, n_threads: int) -> dict[str, float]:
    """Run the sweep in this process and report RSS before training, peak RSS and the recorded bytes."""
    import torch

    torch.set_num_threads(n_threads)

    from lazyrich.init import lambda_balanced
    from lazyrich.tasks import hierarchy
    from lazyrich.train import train

    task = hierarchy()
    lams = torch.linspace(-4.0, 4.0, sweep.n_lam, dtype=torch.float64).repeat_interleave(sweep.n_seeds)
    weights = list(
        lambda_balanced(8, 8, 8, lams.tolist(), scale=0.1, generator=torch.Generator().manual_seed(0))
    )
    before = _status_mib("VmRSS")
    start = time.perf_counter()
    traj = train(
        task,
        weights,
        sweep.lr,
        t_max=sweep.steps * sweep.lr,
        n_log=sweep.n_log,
        n_matrix=n_matrix,
        progress=False,
    )
    seconds = time.perf_counter() - start
    recorded = sum(v.numel() * v.element_size() for v in [*traj.scalars.values(), *traj.matrices.values()])
    return {
        "rss_before_mib": before,
        "peak_mib": _status_mib("VmHWM"),
        "recorded_mib": recorded / 2**20,
        "seconds": seconds,
    }


def measure(sweep: Sweep, n_matrix: int) -> dict[str, float]:
    """:func:`child` in a fresh interpreter with this one's thread count, so the peak is the sweep's own."""
    import torch

    cmd = [
        sys.executable,
        "-m",
        "benchmarks.perf.bench_memory",
        "--child",
        "--n-matrix",
        str(n_matrix),
        "--threads",
        str(torch.get_num_threads()),
        "--sweep",
        json.dumps(sweep.__dict__),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--child", action="store_true", help=argparse.SUPPRESS
    )  # internal: run one sweep, print JSON
    p.add_argument("--n-matrix", type=int, default=21)
    p.add_argument("--sweep", default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(Sweep(**json.loads(args.sweep)), args.n_matrix, args.threads)))
        return []
    sweep = QUICK if args.quick else FULL
    rows = []
    kept = min(21, sweep.n_log)
    for n_matrix, judged in ((kept, True), (sweep.n_log, False))[: 1 if kept == sweep.n_log else 2]:
        m = measure(sweep, n_matrix)
        notes = (
            f"B={sweep.batch} nets × {sweep.steps} steps, {sweep.n_log} log points, matrices at {n_matrix}; "
            f"recorded tensors {m['recorded_mib']:.0f} MiB; trained in {m['seconds']:.1f} s; "
            "baseline = RSS just before train"
        )
        rows.append(
            row(
                NAME,
                f"peak RSS, {sweep.batch}-net sweep, n_matrix={n_matrix}",
                baseline=m["rss_before_mib"],
                lazyrich=m["peak_mib"],
                unit="MiB",
                max_value=LIMIT_MIB if judged else None,
                notes=notes,
                quick=args.quick,
                with_ratio=False,
                recorded_mib=m["recorded_mib"],
                train_s=m["seconds"],
            )
        )
    return rows


if __name__ == "__main__":
    for r in main():
        print(r)
