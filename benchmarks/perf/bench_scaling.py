"""Time per GD step of ``lazyrich.train``'s statistics path (``_linear_step``) against batch size and width,
as GFLOP/s against this machine's float64 matmul peak measured in the same run.

Axes: B ∈ {1, 16, 256, 4096} at width 8, and width ∈ {8, …, 256} at B = 16; two whitened layers of equal
width.
One step is three batched products of B·w³ multiply-adds each, 6·B·w³ FLOP (plus 2·B·w³ for the Σxx product
when the task is not whitened, not timed here). Each point is timed single-threaded and with every core, so
the table also shows what intra-op threads buy. ``exponent`` is d log(time)/d log(FLOP) along the axis: ≈ 0 is
overhead-bound (time flat), ≈ 1 is FLOP-bound (time ∝ B·w³).

Run standalone: ``python -m benchmarks.perf.bench_scaling [--quick]``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from benchmarks.perf.common import Row, parser, per_call, row
from lazyrich.init import gaussian
from lazyrich.train import _linear_step

NAME = "scaling"


@dataclass(frozen=True)
class Grid:
    batches: tuple[int, ...] = (1, 16, 256, 4096)
    widths: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    base_width: int = 8  # width of the batch axis
    base_batch: int = 16  # batch of the width axis
    peak_size: int = 2048
    min_seconds: float = 0.2  # each timing repeat lasts at least this long


FULL = Grid()
QUICK = Grid(batches=(1, 16, 256), widths=(8, 32, 64), peak_size=512, min_seconds=0.02)


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def matmul_peak(size: int, repeats: int = 5) -> float:
    """Best float64 GFLOP/s of torch.matmul on two (size, size) matrices, over a warm-up and ``repeats``."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=gen, dtype=torch.float64) for _ in range(2))
    best = math.inf
    for _ in range(repeats + 1):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def step_flops(batch: int, width: int, whitened: bool = True) -> float:
    """FLOP of one two-layer step at equal widths: 3 products of 2·B·w³, plus Σxx's if not whitened."""
    return 2.0 * batch * width**3 * (3 if whitened else 4)


def step_seconds(batch: int, width: int, min_seconds: float, repeats: int) -> float:
    """Median seconds per ``_linear_step`` for B networks w-w-w on a whitened task (Σxx = I), lr 1e-3."""
    gen = torch.Generator().manual_seed(batch * 1000 + width)
    state = gaussian([width, width, width], 0.5, generator=gen, batch=batch)
    sigma_yx = torch.randn(width, width, generator=gen, dtype=torch.float64) / math.sqrt(width)
    sigma_xx = torch.eye(width, dtype=torch.float64)
    lr = torch.full((batch, 1, 1), 1e-3, dtype=torch.float64)

    def one() -> None:
        nonlocal state
        state = _linear_step(state, sigma_xx, sigma_yx, 1.0, lr)

    return per_call(one, min_seconds=min_seconds, repeats=repeats)


def exponents(flops: Sequence[float], seconds: Sequence[float]) -> list[float]:
    """d log t / d log FLOP at each point of an axis: from the previous point, the first from the next one."""
    slopes = [
        math.log(seconds[i + 1] / seconds[i]) / math.log(flops[i + 1] / flops[i])
        for i in range(len(flops) - 1)
    ]
    return [slopes[0], *slopes] if slopes else [math.nan] * len(flops)


def axis_rows(
    axis: str, points: list[tuple[int, int]], n_threads: int, peak: float, grid: Grid, repeats: int
) -> list[Row]:
    """Rows for one axis of (B, width) points at ``n_threads``; baseline = the time at the measured peak."""
    with threads(n_threads):
        seconds = [step_seconds(b, w, grid.min_seconds, repeats) for b, w in points]
    flops = [step_flops(b, w) for b, w in points]
    rows = []
    for (b, w), t, f, alpha in zip(points, seconds, flops, exponents(flops, seconds), strict=True):
        gflops = f / t / 1e9
        regime = "FLOP-bound" if alpha >= 0.5 else "overhead-bound"
        notes = (
            f"{gflops:.2f} GFLOP/s = {100 * gflops / peak:.1f}% of the {peak:.1f} GFLOP/s peak; "
            f"{1e6 * t / b:.2f} µs per network-step; exponent {alpha:.2f} ({regime})"
        )
        rows.append(
            row(
                NAME,
                f"step {axis}: B={b}, width={w}, {n_threads} thread{'s' * (n_threads > 1)}",
                baseline=1e6 * f / (peak * 1e9),
                lazyrich=1e6 * t,
                unit="µs/step",
                notes=notes,
                batch=b,
                width=w,
                threads=n_threads,
                gflops=gflops,
                peak_gflops=peak,
                exponent=alpha,
                regime=regime,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    grid = QUICK if args.quick else FULL
    repeats = args.repeats or 3
    counts = sorted({1, os.cpu_count() or 1})
    rows: list[Row] = []
    for n in counts:
        with threads(n):
            peak = matmul_peak(grid.peak_size)
        rows.append(
            row(
                NAME,
                f"float64 matmul peak, {grid.peak_size}², {n} thread{'s' * (n > 1)}",
                baseline=None,
                lazyrich=peak,
                unit="GFLOP/s",
                threads=n,
                notes=f"best of 5 torch.matmul calls; the reference for the step rows at {n} threads",
            )
        )
        rows += axis_rows("vs B", [(b, grid.base_width) for b in grid.batches], n, peak, grid, repeats)
        rows += axis_rows("vs width", [(grid.base_batch, w) for w in grid.widths], n, peak, grid, repeats)
    return rows


if __name__ == "__main__":
    for r in main():
        print(r["name"], f"{r['lazyrich']:.4g} {r['unit']}", r["notes"])
