"""Three-layer wide nets under the analogous map (docs/theory.md §11): ``python -m benchmarks.wide_init --part deep``.

Wide nets W1 (N_h × Ni) ~ N(0, c₁/N_h), W3 (No × N_h) ~ N(0, c₃/N_h), and a middle layer W2 (N_h × N_h) that is
either √c₂ times a Haar orthogonal matrix (``orthogonal``: W2ᵀW2 = c₂I exactly) or Gaussian N(0, c₂/N_h)
(``gaussian``: W2ᵀW2 has the Marchenko–Pastur spectrum on [0, 4c₂]). Trained by the trainer (GD, lr 2e-3, t ≤ 6).

Predictions re-factorise A(0) into a balanced chain of width m (numerical flow of theory ode, so GD's O(lr) gap,
~5e-4, is left in):
- ``moment``: per-mode layer squares (y, y + p, y + q) with pq = e₂ (the initial rate c₁c₂ + c₁c₃ + c₂c₃) and
  p + q = e₁ + e₃/e₂ (the second moment of the N_h → ∞ per-mode model), p = q = √e₂ when those have no real
  solution; the small layer on the input side (funnels, square) or the output side (inverted funnels);
- ``naive``: λ₁ = c₁ + c₂, λ₂ = c₂ + c₃, the two-layer rule applied pair by pair.
Error: e61, the issue's max-abs metric on t ∈ {0, 0.1, …, 6}, mean over seeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch

from benchmarks.wide_init import issue_error, task_of
from lazyrich import init
from lazyrich.init import _deep_layer_values
from lazyrich.theory import TaskStats, get_theory
from lazyrich.train import train

F64 = torch.float64
LR = 2e-3


def draw3(n_in: int, n_hidden: int, n_out: int, c: Sequence[float], middle: str,
          seeds: Sequence[int]) -> list[torch.Tensor]:
    """[W1, W2, W3] of the wide three-layer nets, network b from generator seeds[b]."""
    nets = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        w1 = torch.randn(n_hidden, n_in, generator=g, dtype=F64) * math.sqrt(c[0] / n_hidden)
        w2 = (math.sqrt(c[1]) * init.random_orthogonal(n_hidden, generator=g) if middle == "orthogonal"
              else torch.randn(n_hidden, n_hidden, generator=g, dtype=F64) * math.sqrt(c[1] / n_hidden))
        w3 = torch.randn(n_out, n_hidden, generator=g, dtype=F64) * math.sqrt(c[2] / n_hidden)
        nets.append((w1, w2, w3))
    return [torch.stack(layer) for layer in zip(*nets, strict=True)]


def moment_lams(c: Sequence[float], n_in: int, n_out: int) -> tuple[float, float]:
    """(λ₁, λ₂) of the moment chain: squares (y, y + p, y + q), the small layer placed by the sign rule."""
    e1, e2, e3 = sum(c), c[0] * c[1] + c[0] * c[2] + c[1] * c[2], c[0] * c[1] * c[2]
    b = e1 + e3 / e2
    disc = b * b - 4 * e2
    p, q = (math.sqrt(e2), math.sqrt(e2)) if disc < 0 else ((b - math.sqrt(disc)) / 2, (b + math.sqrt(disc)) / 2)
    squares = (q, p, 0.0) if n_out > n_in else (0.0, p, q)
    return squares[1] - squares[0], squares[2] - squares[1]


def chain(a0: torch.Tensor, lams: tuple[float, float]) -> list[torch.Tensor]:
    """A(0) (B, No, Ni) as a width-m three-layer chain with W_{l+1}ᵀW_{l+1} − W_lW_lᵀ = λ_l I."""
    u, s, vh = torch.linalg.svd(a0, full_matrices=False)
    a = _deep_layer_values(s, torch.tensor(lams, dtype=F64))  # (B, m, 3)
    return [a[..., 0, None] * vh, torch.diag_embed(a[..., 1]), u * a[..., 2][:, None, :]]


def deep_row(shape: tuple[int, int], n_hidden: int, c: Sequence[float], middle: str,
             seeds: Sequence[int]) -> dict[str, float]:
    n_in, n_out = shape
    task = task_of(n_in, n_out)
    stats = TaskStats.from_task(task)
    weights = draw3(n_in, n_hidden, n_out, c, middle, seeds)
    start = time.perf_counter()
    sim = train(task, weights, LR, t_max=6.0, n_log=61, n_matrix=61, progress=False)
    out = {"trainer s": time.perf_counter() - start}
    a0 = sim.matrices["product"][:, 0]
    rules = {"moment": moment_lams(c, n_in, n_out), "naive": (c[0] + c[1], c[1] + c[2])}
    if n_in != n_out:  # the small layer on the other side
        lam1, lam2 = moment_lams(c, n_out, n_in)
        rules["moment, wrong side"] = (lam1, lam2)
    for name, lams in rules.items():
        pred = get_theory("ode").predict(stats, chain(a0, lams), sim.t)
        out[name] = float(issue_error(pred.product, sim.matrices["product"]).mean())
    return out


def deep(quick: bool = False) -> None:
    seeds = range(2)
    widths = (256,) if quick else (256, 512)
    configs = [((8, 8), n_h, c, middle) for n_h in widths for c in ((0.5, 0.5, 0.5), (0.5, 2.0, 0.5))
               for middle in ("orthogonal", "gaussian")]
    if not quick:
        configs += [(shape, 256, (0.5, 2.0, 0.5), "orthogonal") for shape in ((8, 4), (4, 8))]
    print(f"\n## Three layers: the balanced-chain map against the trainer (GD, lr {LR:g}); e61, mean of "
          f"{len(seeds)} seeds\n")
    print("| shape | N_h | c₁, c₂, c₃ | middle layer | moment chain | naive λ_l = c_l + c_{l+1} | "
          "moment, wrong side | trainer s |")
    print("|---|---|---|---|---|---|---|---|")
    for shape, n_hidden, c, middle in configs:
        r = deep_row(shape, n_hidden, c, middle, seeds)
        wrong = f"{r['moment, wrong side']:.2g}" if "moment, wrong side" in r else "–"
        print(f"| {shape[0]}→{shape[1]} | {n_hidden} | {', '.join(f'{x:g}' for x in c)} | {middle} | "
              f"{r['moment']:.2g} | {r['naive']:.2g} | {wrong} | {r['trainer s']:.0f} |", flush=True)
