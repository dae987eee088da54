"""Batched training vs the naive way: B stacked networks in one ``lazyrich.train`` call against a per-network
loop of plain torch (nn.Linear without bias, autograd, torch.optim.SGD), both logging the same metrics.

Workload: B = 256 two-layer nets on the 8-item hierarchy (8 λ in [−4, 4] × 32 seeds, λ-balanced, scale 0.1),
lr 1e-3, 10 000 full-batch GD steps, metrics every 100 steps, matrices at 21 of those points. The naive loop
is timed on a subset of the same networks and scaled linearly to B (each network's cost is independent of the
others), and its final weights and logged curves must equal the batched ones to 1e-10.

Run standalone: ``python -m benchmarks.perf.bench_training [--quick]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from benchmarks.perf.common import Row, median, parser, repeat_time, row
from lazyrich.init import lambda_balanced
from lazyrich.tasks import Task, hierarchy
from lazyrich.train import Trajectory, train

NAME = "training"
# Same arithmetic in another order (statistics vs data path): measured 4e-13 after 10⁴ steps.
TOLERANCE = 1e-10


@dataclass(frozen=True)
class Workload:
    n_lam: int = 8
    n_seeds: int = 32
    steps: int = 10_000
    log_every: int = 100
    lr: float = 1e-3
    scale: float = 0.1
    n_subset: int = 16  # networks the naive loop runs (and is timed on)
    n_matrix: int = 21

    @property
    def batch(self) -> int:
        return self.n_lam * self.n_seeds

    @property
    def n_log(self) -> int:
        return self.steps // self.log_every + 1


FULL = Workload()
QUICK = Workload(n_lam=4, n_seeds=4, steps=400, log_every=50, n_subset=4, n_matrix=5)


def sweep(work: Workload, seed: int = 0) -> tuple[Tensor, list[Tensor]]:
    """λ grid repeated over seeds, (B,), and λ-balanced 8-8-8 weights [W1, W2], each (B, 8, 8)."""
    lams = torch.linspace(-4.0, 4.0, work.n_lam, dtype=torch.float64).repeat_interleave(work.n_seeds)
    gen = torch.Generator().manual_seed(seed)
    return lams, list(lambda_balanced(8, 8, 8, lams.tolist(), scale=work.scale, generator=gen))


def subset_index(work: Workload) -> Tensor:
    """The networks the naive loop runs, (n_subset,): the first seeds of every λ, spread over the grid."""
    per_lam = max(1, work.n_subset // work.n_lam)
    index = torch.tensor([l * work.n_seeds + s for l in range(work.n_lam) for s in range(per_lam)])
    return index[torch.linspace(0, len(index) - 1, min(work.n_subset, len(index))).round().long()]


def batched_run(task: Task, weights: list[Tensor], work: Workload) -> Trajectory:
    """All B networks in one ``lazyrich.train`` call, logging every ``log_every`` steps."""
    return train(
        task,
        weights,
        work.lr,
        t_max=work.steps * work.lr,
        n_log=work.n_log,
        n_matrix=work.n_matrix,
        progress=False,
    )


def matrix_log_index(n_log: int, n_matrix: int) -> list[int]:
    """Log points (indices into the n_log grid) at which the matrices are kept: n_matrix evenly spread."""
    return sorted({int(i) for i in np.round(np.linspace(0, n_log - 1, max(2, min(n_matrix, n_log))))})


def full_ntk(w1: Tensor, w2: Tensor, x: Tensor) -> Tensor:
    """The whole NTK (No·P, No·P) of ŷ = W2W1x on X (P, Ni), output-major: I ⊗ X W1ᵀW1 Xᵀ + W2W2ᵀ ⊗ X Xᵀ."""
    h = x @ w1.T
    return torch.kron(torch.eye(w2.shape[0], dtype=x.dtype), h @ h.T) + torch.kron(w2 @ w2.T, x @ x.T)


def naive_metrics(
    w1: Tensor, w2: Tensor, w1_0: Tensor, w2_0: Tensor, k0: Tensor, task: Task, loss: Tensor
) -> dict[str, Tensor]:
    """The scalars lazyrich logs, for one network, computed from scratch: full kernels, plain formulas."""
    k = full_ntk(w1, w2, task.X)
    u, _, v = task.svd
    d, d0 = w2.T @ w2 - w1 @ w1.T, w2_0.T @ w2_0 - w1_0 @ w1_0.T
    lam = torch.trace(d) / d.shape[0]
    out = {
        "loss": loss,
        "kernel_distance": 1 - torch.sum(k0 * k) / (torch.linalg.norm(k0) * torch.linalg.norm(k)),
        "ntk_rel_change": torch.linalg.norm(k - k0) / torch.linalg.norm(k0),
        "balance_dev_1": torch.linalg.norm(d - lam * torch.eye(d.shape[0], dtype=d.dtype)),
        "balance_drift_1": torch.linalg.norm(d - d0)
        / (torch.linalg.norm(w2_0.T @ w2_0) + torch.linalg.norm(w1_0 @ w1_0.T)),
        "norm_W1": torch.linalg.norm(w1),
        "norm_W2": torch.linalg.norm(w2),
    }
    svals = torch.diagonal(u.T @ (w2 @ w1) @ v)
    out.update({f"sval_{i + 1}": s for i, s in enumerate(svals)})
    return out


def naive_run(task: Task, w1: Tensor, w2: Tensor, work: Workload) -> dict[str, object]:
    """One network, the way one would write it without lazyrich: nn.Linear, autograd, SGD, metrics in a loop.

    Returns ``final`` [W1, W2], ``scalars`` {name: (T,)} and ``matrices`` {name: (Tm, …)}.
    """
    net = torch.nn.Sequential(
        torch.nn.Linear(w1.shape[1], w1.shape[0], bias=False),
        torch.nn.Linear(w2.shape[1], w2.shape[0], bias=False),
    ).double()
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[1].weight.copy_(w2)
    opt = torch.optim.SGD(net.parameters(), lr=work.lr)
    x, y, n_samples = task.X, task.Y, task.P
    k0 = full_ntk(w1, w2, x)
    keep = set(matrix_log_index(work.n_log, work.n_matrix))
    scalars: dict[str, list[Tensor]] = {}
    matrices: dict[str, list[Tensor]] = {"product": [], "w1tw1": [], "wwt_out": []}
    for k in range(work.steps + 1):
        opt.zero_grad()
        loss = 0.5 * ((net(x) - y) ** 2).sum() / n_samples
        if k % work.log_every == 0:
            with torch.no_grad():
                a, b = net[0].weight, net[1].weight
                for name, value in naive_metrics(a, b, w1, w2, k0, task, loss.detach()).items():
                    scalars.setdefault(name, []).append(value)
                if k // work.log_every in keep:
                    matrices["product"].append(b @ a)
                    matrices["w1tw1"].append(a.T @ a)
                    matrices["wwt_out"].append(b @ b.T)
        if k == work.steps:
            break
        loss.backward()
        opt.step()
    return {
        "final": [net[0].weight.detach().clone(), net[1].weight.detach().clone()],
        "scalars": {n: torch.stack(v) for n, v in scalars.items()},
        "matrices": {n: torch.stack(v) for n, v in matrices.items()},
    }


def naive_subset(task: Task, weights: list[Tensor], index: Tensor, work: Workload) -> list[dict[str, object]]:
    """:func:`naive_run` for each network in ``index``, one after the other."""
    return [naive_run(task, weights[0][b], weights[1][b], work) for b in index.tolist()]


def timed_naive_subset(
    task: Task, weights: list[Tensor], index: Tensor, work: Workload
) -> tuple[list[float], list[dict[str, object]]]:
    """:func:`naive_subset` and each network's wall time (s): every network is a repeat of the same work."""
    times, runs = [], []
    for b in index.tolist():
        start = time.perf_counter()
        runs.append(naive_run(task, weights[0][b], weights[1][b], work))
        times.append(time.perf_counter() - start)
    return times, runs


def max_difference(traj: Trajectory, runs: list[dict[str, object]], index: Tensor) -> float:
    """Largest absolute difference between the batched and the naive runs over the networks in ``index``:
    final weights, every curve the naive loop logs and every matrix."""
    worst = 0.0
    for run, b in zip(runs, index.tolist(), strict=True):
        pairs = [(traj.final_weights[l][b], w) for l, w in enumerate(run["final"])]
        pairs += [(traj.scalars[name][b], v) for name, v in run["scalars"].items()]
        pairs += [(traj.matrices[name][b], v) for name, v in run["matrices"].items()]
        for mine, ref in pairs:
            if mine.shape != ref.shape:
                raise ValueError(f"shape mismatch: lazyrich {tuple(mine.shape)} vs naive {tuple(ref.shape)}.")
            worst = max(worst, float((mine - ref).abs().max()))
    return worst


def main(argv: list[str] | None = None) -> list[Row]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    work = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 3)
    task = hierarchy()
    _, weights = sweep(work)
    index = subset_index(work)
    warm = Workload(n_lam=1, n_seeds=1, steps=20, log_every=10, n_subset=1, n_matrix=2)
    batched_run(task, [w[:1] for w in weights], warm)  # first calls pay one-time set-up on either side
    naive_run(task, weights[0][0], weights[1][0], warm)
    fast_times, traj = repeat_time(lambda: batched_run(task, weights, work), repeats)
    steps = traj.step[0].tolist()
    if steps != list(range(0, work.steps + 1, work.log_every)):
        raise RuntimeError(
            f"lazyrich logged at steps {steps[:4]}…, not every {work.log_every}: fix the workload."
        )
    slow_times, runs = timed_naive_subset(task, weights, index, work)
    slow = median(slow_times) * work.batch
    error = max_difference(traj, runs, index)
    notes = (
        f"B={work.batch} nets × {work.steps} steps, log every {work.log_every}; lazyrich: median of "
        f"{repeats} run(s). Baseline = per-network nn.Linear+SGD loop, timed on {len(index)} of the "
        f"{work.batch} nets (the same ones, compared to 1e-10): median per-net time "
        f"{median(slow_times):.2f} s × {work.batch}, an honest linear scaling since each net's cost is "
        "independent of the others."
    )
    return [
        row(
            NAME,
            f"batched GD, {work.batch} nets × {work.steps} steps",
            baseline=slow,
            lazyrich=median(fast_times),
            min_ratio=30.0,
            max_error=error,
            tolerance=TOLERANCE,
            notes=notes,
            quick=args.quick,
            baseline_measured_s=sum(slow_times),
            baseline_nets=len(index),
            repeats=repeats,
        )
    ]


if __name__ == "__main__":
    for r in main():
        print(r)
