"""The exact closed form of QQᵀ(t) against numerical gradient flow and Fukumizu's naive formula.

Workload: Ni = No = Nh = 32, a λ-balanced random init (λ = 1), a random whitened task, and
QQᵀ = [W1ᵀ; W2][W1ᵀ; W2]ᵀ on 1000 time points in [0, 20]. ``exact`` is ``lazyrich.theory.qqt``; ``ode`` is
``integrate_flow`` (DOP853, rtol 1e-10) plus forming QQᵀ; ``fukumizu`` is ``fukumizu_qqt`` (a matrix
exponential and an inverse per time point). Errors are max-abs against DOP853 at rtol 1e-13. Target: exact
≥ 50× faster than ode at equal or better accuracy. Further rows: a 101-point grid (the trainer's usual log), a
long stiff run (λ = 100, t ≤ 100), and the naive form overflowing at t ≈ 50 for λ = 20 while the exact one
stays finite and matches ode. Torch runs on one thread (restored afterwards), like the numpy ODE on these
32×32 matrices, so that the ratio compares algorithms, not thread counts.

Run standalone: ``python -m benchmarks.perf.bench_theory [--quick] [--out bench_results/theory.md]``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from benchmarks.perf.common import COLUMNS, Row, median, parser, per_call, repeat_time, row
from lazyrich.init import lambda_balanced
from lazyrich.theory import fukumizu_qqt, integrate_flow, qqt

NAME = "theory"
F64 = torch.float64
REF_TOL = {"rtol": 1e-13, "atol": 1e-15}  # the reference: ~1e-12 here, far below what is compared
ODE_TOL = {"rtol": 1e-10, "atol": 1e-12}  # the contender, as asked


@dataclass(frozen=True)
class Sizes:
    n: int = 32
    n_times: int = 1000
    t_max: float = 20.0
    lam: float = 1.0
    stiff_lam: float = 100.0
    stiff_t: float = 100.0
    overflow_lam: float = 20.0
    overflow_t: float = 50.0


FULL = Sizes()
QUICK = Sizes(n=8, n_times=100, stiff_lam=20.0, stiff_t=20.0)


def problem(n: int, lam: float, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """(W1, W2, Σyx): a λ-balanced init with product scale 0.5 and a Gaussian whitened task (s̃₁ ≈ 3.7)."""
    g = torch.Generator().manual_seed(seed)
    sigma_yx = 2 * torch.randn(n, n, generator=g, dtype=F64) / math.sqrt(n)
    w1, w2 = lambda_balanced(n, n, n, lam, scale=0.5, generator=g)
    return w1, w2, sigma_yx


def flow_qqt(w1: Tensor, w2: Tensor, sigma_yx: Tensor, t: Tensor, **tol: float) -> Tensor:
    """QQᵀ (T, 2n, 2n) from the numerically integrated weights."""
    eye = torch.eye(w1.shape[-1], dtype=F64)
    traj1, traj2 = integrate_flow([w1, w2], eye, sigma_yx, t, **tol)
    q = torch.cat([traj1.mT, traj2], dim=-2)
    return q @ q.mT


def max_error(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max())


def compare(label: str, sizes: Sizes, lam: float, t: Tensor, repeats: int, quick: bool,
            with_fukumizu: bool = False) -> list[Row]:
    """Rows timing exact against ode (and optionally Fukumizu) on one problem and grid."""
    w1, w2, sigma_yx = problem(sizes.n, lam)
    reference = flow_qqt(w1, w2, sigma_yx, t, **REF_TOL)
    exact_s = per_call(lambda: qqt(w1, w2, sigma_yx, t), repeats=repeats)
    exact_err = max_error(qqt(w1, w2, sigma_yx, t), reference)
    ode_times, ode_out = repeat_time(lambda: flow_qqt(w1, w2, sigma_yx, t, **ODE_TOL), repeats)
    ode_err = max_error(ode_out, reference)
    grid = f"{t.numel()} points in [0, {float(t[-1]):g}]"
    notes = (f"n={sizes.n}, λ={lam:g}, {grid}; ode = DOP853 rtol {ODE_TOL['rtol']:g} with error "
             f"{ode_err:.1e}; errors vs DOP853 rtol {REF_TOL['rtol']:g}; tolerance = ode's own error.")
    rows = [row(NAME, f"exact vs ode, {label}", baseline=median(ode_times), lazyrich=exact_s,
                min_ratio=50.0, max_error=exact_err, tolerance=max(ode_err, 1e-12), notes=notes, quick=quick,
                repeats=repeats, ode_error=ode_err)]
    if with_fukumizu:
        fuk_times, fuk_out = repeat_time(lambda: fukumizu_qqt(w1, w2, sigma_yx, t), repeats)
        fuk_err = max_error(fuk_out, reference) if torch.isfinite(fuk_out).all() else math.inf
        notes = f"{grid}; Fukumizu's error {fuk_err:.1e} (its rounding grows like e^{{2ε₁t}})"
        rows.append(row(NAME, f"exact vs naive Fukumizu, {label}", baseline=median(fuk_times),
                        lazyrich=exact_s, max_error=exact_err, notes=notes, quick=quick, repeats=repeats,
                        fukumizu_error=fuk_err))
    return rows


def overflow_row(sizes: Sizes, repeats: int, quick: bool) -> Row:
    """λ = 20 up to t = 50: the naive form overflows, the stable one stays finite and matches ode."""
    w1, w2, sigma_yx = problem(sizes.n, sizes.overflow_lam)
    t = torch.linspace(0, sizes.overflow_t, 51, dtype=F64)
    naive = fukumizu_qqt(w1, w2, sigma_yx, t)
    bad = ~torch.isfinite(naive).flatten(1).all(-1)
    first_bad = float(t[bad][0]) if bool(bad.any()) else math.nan
    exact = qqt(w1, w2, sigma_yx, t)
    reference = flow_qqt(w1, w2, sigma_yx, t, **REF_TOL)
    exact_s = per_call(lambda: qqt(w1, w2, sigma_yx, t), repeats=repeats)
    ode_times, _ = repeat_time(lambda: flow_qqt(w1, w2, sigma_yx, t, **ODE_TOL), repeats)
    notes = (f"n={sizes.n}, λ={sizes.overflow_lam:g}, 51 points in [0, {sizes.overflow_t:g}]: Fukumizu "
             f"non-finite at {int(bad.sum())}/51 points from t = {first_bad:g}; exact finite: "
             f"{bool(torch.isfinite(exact).all())}; error vs DOP853 rtol {REF_TOL['rtol']:g}.")
    # 1e-8: entries reach ~|λ| = 20 and both sides are good to ~1e-11 relative.
    return row(NAME, "overflow: exact vs ode where Fukumizu fails", baseline=median(ode_times),
               lazyrich=exact_s, max_error=max_error(exact, reference), tolerance=1e-8, notes=notes,
               quick=quick, repeats=repeats, fukumizu_nonfinite=int(bad.sum()),
               fukumizu_first_nonfinite_t=first_bad)


def markdown(rows: list[Row]) -> str:
    """The rows as a Markdown table (times in seconds)."""
    def fmt(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return "" if value is None else str(value)

    cols = ["name", "baseline", "lazyrich", "ratio", "target", "status", "max_error", "tolerance", "notes"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write(rows: list[Row], out: Path) -> Path:
    """Write the table to ``out`` (.md, or .csv for a CSV); a directory gets theory.md inside."""
    if out.suffix == "" or out.is_dir():
        out = out / "theory.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        keys = list(COLUMNS) + sorted({k for r in rows for k in r} - set(COLUMNS))
        with out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
    else:
        out.write_text(markdown(rows))
    return out


def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/theory.md"), help="table (.md or .csv)")
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or 3
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dense = torch.linspace(0, sizes.t_max, sizes.n_times, dtype=F64)
        label = f"{sizes.n_times}-point grid"
        rows = compare(label, sizes, sizes.lam, dense, repeats, args.quick, with_fukumizu=True)
        log_grid = torch.linspace(0, sizes.t_max, 101, dtype=F64)
        rows += compare("101-point grid", sizes, sizes.lam, log_grid, repeats, args.quick)
        stiff = torch.linspace(0, sizes.stiff_t, 101, dtype=F64)
        label = f"λ={sizes.stiff_lam:g}, t ≤ {sizes.stiff_t:g}"
        rows += compare(label, sizes, sizes.stiff_lam, stiff, 1, args.quick)
        rows.append(overflow_row(sizes, repeats, args.quick))
    finally:
        torch.set_num_threads(threads)
    print(markdown(rows))
    print(f"written to {write(rows, args.out)}")
    return rows


if __name__ == "__main__":
    main()
