"""Wide i.i.d. two-layer nets against theory wide (issue 24, docs/theory.md §11): ``python -m benchmarks.wide_init``.

Set-up of the issue: random_regression (seed 1), whitened; W1 ~ N(0, c₁/N_h), W2 ~ N(0, c₂/N_h) drawn as
``init=gaussian_hidden`` draws them (network ``seed`` from its own generator, so a row's networks are those of
``lazyrich run init=gaussian_hidden model.hidden=N_h seed=[0,1,…]``); gradient descent at lr 1e-3 to t = 6.

- ``--part table`` (the trainer itself): the issue's table. Per row, the error of theory wide (A(0) re-factorised at
  λ = ±(c₁ + c₂) by the sign rule, c measured from the weights) and of the wrong choices of λ, in the issue's metric
  e7 = max over t ∈ {0, …, 6} of max|A_pred − A_sim| / max over t of max|A_sim|; beside it the theory's expected
  error (its law, Frobenius metric on a fine grid) and whether its default check accepts the net. Then every shape
  and split again at N_h = 512. 4 seeds a row (--quick: 2).
- ``--part law``: the finite-width law on the exact flow (theory gram_ode, which equals the trainer's GD to
  O(lr), 2e-4 here): the error against N_h with the fitted exponent (least squares on the per-width mean of
  log e, standard error from the residuals, 95% bootstrap over seeds), against c₁ + c₂, shape and task spectrum.
  Metrics: e61, the issue's max-abs metric on t ∈ {0, 0.1, …, 6}, and k = e_F·√(N_h/n_eff) with e_F the Frobenius
  error on that grid (the law is e_F ≈ k(S)·√(n_eff/N_h)).
- ``--part deep``: three layers under the analogous map (a balanced chain at width m), against the trainer.
- ``--part logging``: the trainer's time at N_h = 4096 with 2 and with 31 log points.

The whole run takes a few minutes on one core (--quick: about a minute).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from lazyrich import init, tasks
from lazyrich.theory import TaskStats, get_theory
from lazyrich.theory.exact import ExactTheory
from lazyrich.theory.wide import wide_scales
from lazyrich.train import train

F64 = torch.float64
T7 = torch.arange(7, dtype=F64)
T61 = torch.linspace(0, 6, 61, dtype=F64)
LR = 1e-3
SPLITS = ((0.2, 0.8), (0.8, 0.2), (0.05, 0.95))


def task_of(n_in: int, n_out: int, singular_values: Sequence[float] | None = None):
    """The issue's task: random_regression seed 1, whitened (``singular_values`` replaces its spectrum)."""
    extra = {} if singular_values is None else {"singular_values": list(singular_values)}
    return tasks.make("random_regression", n_in=n_in, n_out=n_out, seed=1, **extra).whiten()


def draw(n_in: int, n_hidden: int, n_out: int, c: tuple[float, float], seeds: Sequence[int]) -> list[torch.Tensor]:
    """[W1 (B, N_h, Ni), W2 (B, No, N_h)] with variances c₁/N_h and c₂/N_h, network b from generator seeds[b]."""
    nets = [init.gaussian([n_in, n_hidden, n_out], [math.sqrt(c[0]), math.sqrt(c[1])], variance="hidden",
                          generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return [torch.stack(layer) for layer in zip(*nets, strict=True)]


def issue_error(pred: torch.Tensor, sim: torch.Tensor) -> np.ndarray:
    """max_t max|A_pred − A_sim| / max_t max|A_sim| per network; (B, T, No, Ni) each."""
    num = (pred - sim).abs().amax((-2, -1)).amax(-1)
    return (num / sim.abs().amax((-2, -1)).amax(-1)).numpy()


def frob_error(pred: torch.Tensor, sim: torch.Tensor) -> np.ndarray:
    """max_t ‖A_pred − A_sim‖_F / max_t ‖A_sim‖_F per network: the metric of the law."""
    num = (pred - sim).flatten(-2).norm(dim=-1).amax(-1)
    return (num / sim.flatten(-2).norm(dim=-1).amax(-1)).numpy()


def refactorised(stats: TaskStats, weights: list[torch.Tensor], lam: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The product of the closed form from A(0) re-factorised at λ (B,) with N_h = m."""
    a0 = weights[1] @ weights[0]
    b1, b2 = init.refactorise(a0, lam, n_hidden=min(stats.n_in, stats.n_out), rotate=False)
    return ExactTheory().predict(stats, [b1, b2], t).product


def _cell(e: np.ndarray) -> str:
    return f"{e.mean():.2g} [{e.max():.2g}]" if len(e) > 1 else f"{e[0]:.2g}"


# --- The issue's table, with the trainer ---------------------------------------------------------------------------

Wrong = tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
SUM_PLUS: Wrong = ("λ = +(c₁ + c₂)", lambda c1, c2: c1 + c2)
SUM_MINUS: Wrong = ("λ = −(c₁ + c₂)", lambda c1, c2: -(c1 + c2))
C1: Wrong = ("λ = c₁", lambda c1, c2: c1)
ZERO: Wrong = ("λ = 0", lambda c1, c2: 0 * c1)
TWICE_MAX: Wrong = ("λ = 2·max(c)", lambda c1, c2: 2 * torch.maximum(c1, c2))


def table_rows(widths_512: bool) -> list[tuple[tuple[int, int], int, tuple[float, float], tuple[Wrong, ...]]]:
    """(shape, N_h, (c₁, c₂), wrong choices) of the issue's table; ``widths_512``: every shape and split at 512."""
    rows = [((8, 8), n_h, (0.5, 0.5), (C1, ZERO)) for n_h in (64, 512, 4096)]
    rows += [((8, 8), 4096, c, (C1,)) for c in ((0.05, 0.05), (2.0, 2.0))]
    rows += [((8, 8), 4096, c, (TWICE_MAX,)) for c in SPLITS]
    rows += [((8, 4), 4096, c, (SUM_MINUS,)) for c in SPLITS]
    rows += [((4, 8), 4096, c, (SUM_PLUS,)) for c in SPLITS]
    if widths_512:
        rows += [(shape, 512, c, wrong) for shape, n_h, c, wrong in rows[3:]]
    return rows


def table(seeds: Sequence[int]) -> list[dict]:
    print(f"\n## The issue's table: trainer (GD, lr {LR:g}) against theory wide; e7 = mean [max] over seeds "
          f"{list(seeds)}\n")
    print("| shape | N_h | c₁, c₂ | theory wide: e7 | expected (law) | default check | wrong λ: e7 | gram_ode: e7 | "
          "trainer s |")
    print("|---|---|---|---|---|---|---|---|---|")
    out = []
    for (n_in, n_out), n_hidden, c, wrong in table_rows(widths_512=True):
        task = task_of(n_in, n_out)
        stats = TaskStats.from_task(task)
        weights = draw(n_in, n_hidden, n_out, c, seeds)
        start = time.perf_counter()
        sim = train(task, weights, LR, t_max=6.0, n_log=7, n_matrix=7, progress=False).matrices["product"]
        seconds = time.perf_counter() - start
        pred = get_theory("wide", target_error=1.0).predict(stats, weights, T7)  # every width, the check aside
        err = issue_error(pred.product, sim)
        exact = issue_error(get_theory("gram_ode").predict(stats, weights, T7).product, sim)
        check = get_theory("wide").check(stats, weights)
        c1, c2 = wide_scales(*weights)
        wrongs = [f"{label}: {_cell(issue_error(refactorised(stats, weights, lam(c1, c2), T7), sim))}"
                  for label, lam in wrong]
        print(f"| {n_in}→{n_out} | {n_hidden} | {c[0]:g}, {c[1]:g} | {_cell(err)} | "
              f"{float(pred.expected_error.mean()):.2g} | {'accepted' if check is None else 'refused'} | "
              f"{'; '.join(wrongs)} | {exact.max():.1g} | {seconds:.1f} |", flush=True)
        out.append({"shape": (n_in, n_out), "n_hidden": n_hidden, "c": c, "err": err})
    return out


def verdict(rows: list[dict]) -> None:
    """The issue's bar: within 1e-2 at N_h = 4096 and 3e-2 at N_h = 512, every shape and split."""
    for n_hidden, bar in ((4096, 1e-2), (512, 3e-2)):
        errs = [(r["err"].mean(), r["err"].max(), r) for r in rows if r["n_hidden"] == n_hidden]
        worst_mean = max(errs, key=lambda e: e[0])
        worst = max(errs, key=lambda e: e[1])
        over = [f"{r['shape'][0]}→{r['shape'][1]} c = {r['c']}" for _, m, r in errs if m > bar]
        print(f"\nN_h = {n_hidden}: largest seed-mean e7 {worst_mean[0]:.3g} ({worst_mean[2]['shape']}, c = "
              f"{worst_mean[2]['c']}), largest single network {worst[1]:.3g}; bar {bar:g}: "
              + ("every network within it." if not over else f"networks above it in {', '.join(over)}."))


# --- The finite-width law, on the exact flow ----------------------------------------------------------------------

def flow_errors(shape: tuple[int, int], n_hidden: int, c: tuple[float, float], seeds: Sequence[int],
                singular_values: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """Per network: e61, e7, the Frobenius error e_F (fine grid) and k = e_F·√(N_h/n_eff), against gram_ode."""
    n_in, n_out = shape
    stats = TaskStats.from_task(task_of(n_in, n_out, singular_values))
    weights = draw(n_in, n_hidden, n_out, c, seeds)
    ref = get_theory("gram_ode", rtol=1e-12, atol=1e-14).predict(stats, weights, T61).product
    pred = get_theory("wide", target_error=1.0).predict(stats, weights, T61)
    e_f = frob_error(pred.product, ref)
    c1, c2 = (x.numpy() for x in wide_scales(*weights))
    n_eff = ((c1 * math.sqrt(n_in) + c2 * math.sqrt(n_out)) / (c1 + c2)) ** 2
    every = slice(None, None, 10)
    return {"e61": issue_error(pred.product, ref), "e7": issue_error(pred.product[:, every], ref[:, every]),
            "frob": e_f, "k": e_f * np.sqrt(n_hidden / n_eff), "ratio": e_f / pred.expected_error.numpy()}


def fit_power(widths: Sequence[int], errs: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """log e = log a − p log N_h fitted to the per-width means of log e (errs: (widths, seeds)): p, its standard
    error from the residuals, and the 2.5/97.5 percentiles of p over a bootstrap of the seeds."""
    x = np.log(np.asarray(widths, dtype=float))
    design = np.vstack([np.ones_like(x), -x]).T
    logs = np.log(errs)
    coef, *_ = np.linalg.lstsq(design, logs.mean(1), rcond=None)
    resid = logs.mean(1) - design @ coef
    se = math.sqrt(resid @ resid / (len(x) - 2) * np.linalg.inv(design.T @ design)[1, 1])
    rng = np.random.default_rng(seed)
    boot = [np.linalg.lstsq(design, logs[:, rng.integers(0, errs.shape[1], errs.shape[1])].mean(1), rcond=None)[0][1]
            for _ in range(n_boot)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"p": float(coef[1]), "a": math.exp(coef[0]), "se": se, "lo": float(lo), "hi": float(hi)}


def law_width(widths: Sequence[int], seeds: Sequence[int]) -> None:
    print(f"\n## Error against N_h (8→8, c₁ = c₂ = 0.5, {len(seeds)} seeds; exact flow)\n")
    print("| N_h | e61 | e7 | √N_h·e61 | e_F | measured/expected |")
    print("|---|---|---|---|---|---|")
    rows = {}
    for n_hidden in widths:
        rows[n_hidden] = flow_errors((8, 8), n_hidden, (0.5, 0.5), seeds)
        r = rows[n_hidden]
        print(f"| {n_hidden} | {r['e61'].mean():.3g} | {r['e7'].mean():.3g} | "
              f"{math.sqrt(n_hidden) * r['e61'].mean():.3f} | {r['frob'].mean():.3g} | {r['ratio'].mean():.2f} |",
              flush=True)
    for metric in ("e61", "frob", "e7"):
        fit = fit_power(widths, np.array([rows[n][metric] for n in widths]))
        print(f"\nexponent ({metric}, N_h {widths[0]}–{widths[-1]}): p = {fit['p']:.3f} ± {fit['se']:.3f} (standard "
              f"error), bootstrap 95% [{fit['lo']:.3f}, {fit['hi']:.3f}], prefactor {fit['a']:.3g}")
    # The excess over 1/2: a 1/N_h term beside the 1/√N_h one (least squares on the means of e61).
    x = np.asarray(widths, dtype=float)
    (a, b), *_ = np.linalg.lstsq(np.vstack([x**-0.5, 1 / x]).T, [rows[n]["e61"].mean() for n in widths], rcond=None)
    print(f"\ntwo terms (e61): e ≈ {a:.3g}/√N_h + {b:.3g}/N_h")


def law_time(seeds: Sequence[int], n_hidden: int = 4096) -> None:
    """When the error peaks: max_entries |ΔA(t)| / max_t max|A| against t, to t = 30 (8→8)."""
    t = torch.linspace(0, 30, 121, dtype=F64)
    print(f"\n## The error against t (8→8, N_h = {n_hidden}, {len(seeds)} seeds; exact flow)\n")
    print("| c₁ = c₂ | peak | at t | t = 2 | t = 6 | t = 30 |")
    print("|---|---|---|---|---|---|")
    stats = TaskStats.from_task(task_of(8, 8))
    for c in (0.05, 0.5, 2.0):
        weights = draw(8, n_hidden, 8, (c, c), seeds)
        ref = get_theory("gram_ode", rtol=1e-12, atol=1e-14).predict(stats, weights, t).product
        pred = get_theory("wide").predict(stats, weights, t).product
        scale = ref.abs().amax((-2, -1)).amax(-1, keepdim=True)
        per_t = ((pred - ref).abs().amax((-2, -1)) / scale).mean(0)
        at = {x: float(per_t[int(round(x * 4))]) for x in (2.0, 6.0, 30.0)}
        print(f"| {c:g} | {float(per_t.max()):.2g} | {float(t[int(per_t.argmax())]):.2f} | {at[2.0]:.1e} | "
              f"{at[6.0]:.1e} | {at[30.0]:.1e} |", flush=True)


def law_scale_shape_spectrum(seeds: Sequence[int], n_hidden: int = 4096) -> None:
    print(f"\n## k = e_F·√(N_h/n_eff) at N_h = {n_hidden} ({len(seeds)} seeds; exact flow)\n")
    print("| case | e61 | e_F | k | measured/expected |")
    print("|---|---|---|---|---|")
    cases = [(f"8→8, c₁ + c₂ = {2 * c:g}", (8, 8), (c, c), None) for c in (0.01, 0.05, 0.2, 0.5, 2.0, 4.0)]
    cases += [(f"{a}→{b}, c = (.5, .5)", (a, b), (0.5, 0.5), None)
              for a, b in ((4, 4), (16, 16), (32, 32), (8, 4), (4, 8), (16, 4), (4, 16))]
    cases += [(f"16→4, c = {c}", (16, 4), c, None) for c in ((0.9, 0.1), (0.1, 0.9))]
    spread = [4.0 * (1 / 32) ** (k / 7) for k in range(8)]
    cases += [("8→8 flat spectrum (all 1), c = .5", (8, 8), (0.5, 0.5), [1.0] * 8),
              ("8→8 spread spectrum (4 … 0.125), c = .5", (8, 8), (0.5, 0.5), spread)]
    ks = []
    for label, shape, c, spectrum in cases:
        r = flow_errors(shape, n_hidden, c, seeds, spectrum)
        ks.append(r["k"])
        print(f"| {label} | {r['e61'].mean():.3g} | {r['frob'].mean():.3g} | {r['k'].mean():.3f} | "
              f"{r['ratio'].mean():.2f} |", flush=True)
    ks = np.concatenate(ks)
    print(f"\nk over every network above: median {np.median(ks):.3f}, max {ks.max():.3f} (K_MAX = 0.35)")


def logging_cost() -> None:
    """The trainer at N_h = 4096, 2 nets, 600 steps: 2 log points against 31 (each log point records the balance
    metrics, which once formed N_h × N_h matrices; see lazyrich.init.balance)."""
    task = task_of(8, 8)
    weights = draw(8, 4096, 8, (0.5, 0.5), range(2))
    print("\n## Trainer time at N_h = 4096 (2 nets, 600 GD steps)\n")
    for n_log in (2, 31):
        start = time.perf_counter()
        train(task, weights, LR, t_max=0.6, n_log=n_log, n_matrix=2, progress=False)
        print(f"- {n_log} log points: {time.perf_counter() - start:.2f} s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("table", "law", "deep", "logging", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="fewer seeds and widths (about a minute)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    if args.part in ("table", "all"):
        verdict(table(range(2 if args.quick else 4)))
    if args.part in ("law", "all"):
        widths = [64, 128, 256, 512, 1024, 2048, 4096] + ([] if args.quick else [8192, 16384, 32768])
        law_width(widths, range(8 if args.quick else 16))
        law_scale_shape_spectrum(range(4 if args.quick else 8))
        law_time(range(4 if args.quick else 8))
    if args.part in ("deep", "all"):
        from benchmarks.wide_deep import deep

        deep(quick=args.quick)
    if args.part in ("logging", "all"):
        logging_cost()
    print(f"\nruntime {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
