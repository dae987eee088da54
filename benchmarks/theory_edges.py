"""The figures of issue 13 (theory at its edges), printed as three tables: ``python -m benchmarks.theory_edges``.

1. near-singular B: the closed form alone, and the exact theory (which hands such nets to a tight ode solve),
   against an independent LSODA solve; 2. the λ = 0 saddle: GD's measured plateau against the escape model;
3. gradient descent: aligned_gd and the flow against the trainer. About 30 s on one core.
"""

from __future__ import annotations

import math

import torch

from lazyrich import init, metrics, tasks
from lazyrich.tasks.transforms import reverse
from lazyrich.theory import TaskStats, get_theory, integrate_flow
from lazyrich.theory.exact import _evaluate, _rows, _scaled_svd, _setup
from lazyrich.train import train

F64 = torch.float64


def near_singular() -> None:
    stats = TaskStats.from_task(tasks.make("random_regression", n_in=4, n_out=4, seed=5))
    u, s, v = stats.svd
    w = 0.3 * torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    if torch.det(u.mT @ w @ v) > 0:  # the 'wrong' sign: B singular at λ = 0
        w = w - 2 * (w @ v[:, :1]) @ v[:, :1].mT
    lams = [1e-4, 1e-6, 1e-8, 1e-10, 1e-12]
    w1, w2 = init.refactorise(w.expand(5, 4, 4), torch.tensor(lams, dtype=F64),
                              generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.0, 0.5, 2.0, 5.0, 10.0, 20.0, 30.0, 100.0, 150.0], dtype=F64)
    r1, r2 = integrate_flow([w1, w2], stats.sigma_xx, stats.sigma_yx, t, method="LSODA", rtol=1e-13, atol=1e-16)
    ref = r2 @ r1
    st = _setup(w1, w2, _scaled_svd(stats.sigma_yx, 1.0, stats.svd), torch.tensor(lams, dtype=F64))
    forced = _forced(w1, w2, stats, lams)
    now = get_theory("exact").predict(stats, [w1, w2], t).product
    print("| λ | σ_min(B)/scale | closed form, error at t = 0 | exact theory now, max error over t |")
    print("|---|---|---|---|")
    err_now = (now - ref).norm(dim=(-2, -1)) / ref.norm(dim=(-2, -1))  # (5, T)
    for i, lam in enumerate(lams):
        try:  # the closed form, forced through B⁻¹, at t = 0
            raw = _evaluate(_rows(forced, torch.tensor([i])), t[None, :1])[1][0, 0]  # W2W1
            before = f"{float((raw - ref[i, 0]).norm() / ref[i, 0].norm()):.2g}"
        except RuntimeError:
            before = "fails (A(t) not positive definite)"
        print(f"| {lam:g} | {float(st.conditioning[i]):.2g} | {before} | {float(err_now[i].max()):.2g} |")


def _forced(w1, w2, stats, lams):
    """The closed form's setup with B inverted whatever its conditioning (what the theory used to do)."""
    import lazyrich.theory.exact as exact

    keep = exact.NEAR_SINGULAR_RTOL
    exact.NEAR_SINGULAR_RTOL = 0.0
    try:
        st = _setup(w1, w2, _scaled_svd(stats.sigma_yx, 1.0, stats.svd), torch.tensor(lams, dtype=F64))
    finally:
        exact.NEAR_SINGULAR_RTOL = keep
    return _rows(st, torch.arange(len(lams)))


def escape() -> None:
    s_tilde = [3.0, 2.0, 1.5]
    task = tasks.make("random_regression", n_in=3, n_out=3, singular_values=s_tilde, seed=0)
    u, s, v = task.svd
    r = init.random_orthogonal(3, generator=torch.Generator().manual_seed(4))
    root = torch.diag(s.sqrt())
    learned = [(r @ root @ v.mT)[None], (u @ root @ r.mT)[None]]  # the λ = 0 solution, about to be reversed
    rev = reverse(task)
    stats = TaskStats.from_task(rev)
    l_zero = float(metrics.loss_from_product(torch.zeros(3, 3, dtype=F64), stats.sigma_xx, stats.sigma_yx,
                                             stats.sigma_yy))
    print("| training | perturbation δ | measured plateau | predicted | error |")
    print("|---|---|---|---|---|")
    for dtype, delta in [(F64, 0.0), (torch.float32, 0.0), (F64, 1e-10), (F64, 1e-6), (F64, 1e-3)]:
        weights = init.perturb(learned, delta, generator=torch.Generator().manual_seed(1))
        traj = train(rev, [w.to(dtype) for w in weights], 0.05 / 6, t_max=40.0, n_log=801, progress=False)
        pred = get_theory("escape", dtype=dtype).predict(stats, weights, traj.t[0])
        measured = float(metrics.time_in_band(traj.t[0], traj.scalars["loss"][0].double(), l_zero, 0.1))
        predicted = float(metrics.time_in_band(pred.t[0], pred.loss[0], l_zero, 0.1))
        print(f"| {str(dtype).removeprefix('torch.')} | {delta:g} | {measured:.3g} | {predicted:.3g} | "
              f"{(predicted - measured) / measured:+.1%} |")


def descent() -> None:
    task = tasks.make("hierarchy")
    stats = TaskStats.from_task(task)
    w1, w2 = init.lambda_balanced(8, 8, 8, [-2.0, 0.0, 1.0, 3.0], scale=0.1, align_to=task.sigma_yx,
                                  generator=torch.Generator().manual_seed(0))
    print("| lr | aligned_gd − trainer (max over loss, product) | aligned (flow) − trainer, loss |")
    print("|---|---|---|")
    for lr in (0.01, 0.1, 0.25):
        traj = train(task, [w1, w2], lr, t_max=6.0, n_log=25, progress=False)
        gd = get_theory("aligned_gd", lr=lr).predict(stats, [w1, w2], traj.t)
        flow = get_theory("aligned").predict(stats, [w1, w2], traj.t)
        gap = max(float((gd.loss - traj.scalars["loss"]).abs().max()),
                  float((gd.product[:, traj.matrix_index] - traj.matrices["product"]).abs().max()))
        print(f"| {lr:g} | {gap:.2g} | {float((flow.loss - traj.scalars['loss']).abs().max()):.2g} |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for part in (near_singular, escape, descent):
        print(f"\n## {part.__name__}\n")
        part()
    print(f"\n(log e-folds for the float64 plateau: ln(1/u) = {math.log(1 / 2**-53):.1f})")
