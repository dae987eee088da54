"""How far the NTK moved: lazyrich's trace form (``kernel_change`` on ``ntk_blocks``, never forming the
kernel) against the empirical NTK built with torch.func (jacrev, vmapped over samples) and
``kernel_distance`` on the full (No·P)² kernels.

Sizes P = 64, Ni = 64, Nh = 32, No = 16; a batch of networks whose weights moved by 1e-6 (lazy) to O(1) (rich)
of their size, so the cancellation-prone lazy end is covered. Target: ≥ 100× faster, equal to 1e-10.

Run standalone: ``python -m benchmarks.perf.bench_ntk [--quick]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import jacrev, vmap

from benchmarks.perf.common import Row, median, parser, per_call, repeat_time, row
from lazyrich.init import gaussian
from lazyrich.metrics import kernel_change, kernel_distance, ntk_blocks

NAME = "ntk"
# Both are float64 evaluations of one number; the full-kernel one loses ~1e-14 to cancellation.
TOLERANCE = 1e-10


@dataclass(frozen=True)
class Sizes:
    n_samples: int = 64
    n_in: int = 64
    n_hidden: int = 32
    n_out: int = 16
    moves: tuple[float, ...] = (1e-6, 1e-3, 1e-1, 1.0)  # relative size of each network's weight change

    @property
    def batch(self) -> int:
        return len(self.moves)


FULL = Sizes()
QUICK = Sizes(n_samples=16, n_in=16, n_hidden=8, n_out=4, moves=(1e-6, 1e-1))


def problem(sizes: Sizes, seed: int = 0) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Inputs X (P, Ni), initial weights and moved weights [W1 (B, Nh, Ni), W2 (B, No, Nh)], float64."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(sizes.n_samples, sizes.n_in, generator=gen, dtype=torch.float64)
    w0 = gaussian([sizes.n_in, sizes.n_hidden, sizes.n_out], 1.0, generator=gen, batch=sizes.batch)
    move = torch.tensor(sizes.moves, dtype=torch.float64).view(-1, 1, 1)
    wt = [w + move * torch.randn(w.shape, generator=gen, dtype=w.dtype) * w.std() for w in w0]
    return x, w0, wt


def trace_form(x: Tensor, w0: list[Tensor], wt: list[Tensor]) -> tuple[Tensor, Tensor]:
    """lazyrich: kernel distance and relative change, (B,) each, from the blocks of both kernels."""
    return kernel_change(ntk_blocks(w0), ntk_blocks(wt), x.T @ x)


def _net(params: tuple[Tensor, Tensor], sample: Tensor) -> Tensor:
    """ŷ = W2W1x for one sample x (Ni,) → (No,)."""
    w1, w2 = params
    return w2 @ (w1 @ sample)


def empirical_ntk(w1: Tensor, w2: Tensor, x: Tensor) -> Tensor:
    """The NTK J Jᵀ (No·P, No·P) of one network, output-major, from per-sample Jacobians (torch.func)."""
    jac = vmap(jacrev(_net), in_dims=(None, 0))((w1, w2), x)  # each (P, No, *param shape)
    n_samples, n_out = x.shape[0], w2.shape[0]
    j = torch.cat([g.reshape(n_samples, n_out, -1) for g in jac], dim=-1)
    j = j.transpose(0, 1).reshape(n_out * n_samples, -1)
    return j @ j.T


def empirical(x: Tensor, w0: list[Tensor], wt: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Baseline: full kernels per network, then ``kernel_distance`` and ‖Kt − K0‖/‖K0‖, (B,) each."""
    dist, rel = [], []
    for b in range(w0[0].shape[0]):
        k0, kt = empirical_ntk(w0[0][b], w0[1][b], x), empirical_ntk(wt[0][b], wt[1][b], x)
        dist.append(kernel_distance(k0, kt))
        rel.append(torch.linalg.matrix_norm(kt - k0) / torch.linalg.matrix_norm(k0))
    return torch.stack(dist), torch.stack(rel)


def max_difference(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> float:
    return max(float((u - v).abs().max()) for u, v in zip(a, b, strict=True))


def main(argv: list[str] | None = None) -> list[Row]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or 3
    x, w0, wt = problem(sizes)
    empirical(x, w0, wt)  # warm-up: torch.func traces on first use
    slow_times, reference = repeat_time(lambda: empirical(x, w0, wt), repeats)
    fast = per_call(lambda: trace_form(x, w0, wt), repeats=repeats)
    error = max_difference(trace_form(x, w0, wt), reference)
    s = sizes
    notes = (
        f"P={s.n_samples}, Ni={s.n_in}, Nh={s.n_hidden}, No={s.n_out}, B={s.batch} nets (weights moved by "
        f"{', '.join(f'{m:g}' for m in s.moves)} of their size); kernel distance and relative change; "
        f"baseline builds 2B kernels of ({s.n_out * s.n_samples})² with torch.func."
    )
    return [
        row(
            NAME,
            f"NTK movement, {s.batch} nets, kernel {s.n_out * s.n_samples}²",
            baseline=median(slow_times),
            lazyrich=fast,
            min_ratio=100.0,
            max_error=error,
            tolerance=TOLERANCE,
            notes=notes,
            quick=args.quick,
            repeats=repeats,
        )
    ]


if __name__ == "__main__":
    for r in main():
        print(r)
