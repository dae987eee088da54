"""The training options against their theories, printed as four tables: ``python -m benchmarks.training_options``.

1. Change of variables: for layer rates (η₁, η₂), an output multiplier α and both, on a funnel (5→3), a square (3→3)
   and an inverted funnel (3→5), the largest relative gap of each theory's product (the network's function) to a
   DOP853 solve at rtol 2.5e-14 of the W dynamics with the options (:func:`reference_flow`, written here from the
   equations of motion, with no change of variables), and of ``aligned_gd`` to the trainer.
2. Weight decay: the measured λ̂(t) against λ₀e^{−2γt} as lr shrinks (the flow limit); the loss of the ode and
   aligned theories against the trainer, beside the derived GD–flow tolerance.
3. Held-out loss: the theory's test loss against the trainer's, beside the training loss's gap.
4. SGD: the rate at which minibatch noise drives λ̂ towards 0, against lr and batch size, and the fitted power law.

About a minute on one core (``--quick``: a few seconds, fewer points).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.integrate import solve_ivp

from lazyrich import init, tasks
from lazyrich.experiment import run_experiment
from lazyrich.theory import get_theory
from lazyrich.train import TrainOptions, train

F64 = torch.float64
SHAPES = {"funnel": (5, 3), "square": (3, 3), "inverted_funnel": (3, 5)}
OPTIONS = {"rates": {"layer_lr": [0.3, 2.0]}, "alpha": {"output_scale": 1.7},
           "rates+alpha": {"layer_lr": [0.3, 2.0], "output_scale": 1.7}}
FLOW_THEORIES = ("exact", "aligned", "deep_aligned", "ode")
T_GRID = np.linspace(0.0, 4.0, 9)


def reference_flow(task, weights: Sequence[torch.Tensor], t: np.ndarray, layer_lr: Sequence[float] = (1.0, 1.0),
                   output_scale: float = 1.0, weight_decay: float = 0.0) -> torch.Tensor:
    """The network's function α·W2(t)W1(t) (B, T, No, Ni) of two-layer nets under
    dW1/dt = m1(α·W2ᵀE − γW1), dW2/dt = m2(α·EW1ᵀ − γW2), E = Σyx − α·W2W1Σxx, one DOP853 solve per network at
    rtol 2.5e-14 (the tightest DOP853 accepts in float64), straight from these equations."""
    sxx, syx = task.sigma_xx.numpy(), task.sigma_yx.numpy()
    (m1, m2), alpha, gamma = layer_lr, output_scale, weight_decay
    out = []
    for w1, w2 in zip(*(w.numpy() for w in weights), strict=True):
        n1 = w1.size

        def rhs(_t: float, y: np.ndarray, shape1=w1.shape, shape2=w2.shape, n1=n1) -> np.ndarray:
            a, b = y[:n1].reshape(shape1), y[n1:].reshape(shape2)
            err = syx - alpha * b @ a @ sxx
            return np.concatenate([(m1 * (alpha * b.T @ err - gamma * a)).ravel(),
                                   (m2 * (alpha * err @ a.T - gamma * b)).ravel()])

        sol = solve_ivp(rhs, (0.0, float(t[-1])), np.concatenate([w1.ravel(), w2.ravel()]), method="DOP853",
                        t_eval=t, rtol=2.5e-14, atol=1e-15)
        a = sol.y[:n1].T.reshape(-1, *w1.shape)
        b = sol.y[n1:].T.reshape(-1, *w2.shape)
        out.append(alpha * b @ a)
    return torch.tensor(np.stack(out))


def balanced_in_rates(n_in: int, n_out: int, lams: Sequence[float], options: dict, *, aligned_to=None,
                      seed: int = 0) -> list[torch.Tensor]:
    """λ-balanced two-layer weights in the units of the layer rates (W_l = ρ_l·V_l, V λ-balanced), as the
    experiment's balanced init builds them for ``options``."""
    v = init.lambda_balanced(n_in, min(n_in, n_out), n_out, list(lams), scale=0.4,
                             generator=torch.Generator().manual_seed(seed), align_to=aligned_to)
    to_v = TrainOptions.of(**options).to_rate_units(len(lams), 2)
    return [w / to_v[:, l, None, None] for l, w in enumerate(v)]


def relative_gap(value: torch.Tensor, reference: torch.Tensor) -> float:
    """max |value − reference| / max |reference|, per network, the largest over the batch."""
    dims = tuple(range(1, reference.ndim))
    return float(((value - reference).abs().amax(dims) / reference.abs().amax(dims)).max())


def change_of_variables(lr: float = 0.01) -> list[dict]:
    """Table 1: every theory that applies against :func:`reference_flow`, aligned_gd against the trainer."""
    rows = []
    for shape, (n_in, n_out) in SHAPES.items():
        task = tasks.make("random_regression", n_in=n_in, n_out=n_out, seed=3).whiten()
        for label, options in OPTIONS.items():
            for aligned in (False, True):
                weights = balanced_in_rates(n_in, n_out, [0.7, -0.5], options,
                                            aligned_to=task.sigma_yx if aligned else None)
                ref = reference_flow(task, weights, T_GRID, **options)
                row = {"shape": shape, "options": label, "init": "aligned" if aligned else "random"}
                for name in FLOW_THEORIES:
                    theory = get_theory(name, **options)
                    if theory.check(task, weights) is None:
                        row[name] = relative_gap(theory.predict(task, weights, torch.tensor(T_GRID)).product, ref)
                if aligned:
                    traj = train(task, weights, lr, t_max=float(T_GRID[-1]), n_log=9, n_matrix=9, progress=False,
                                 **options)
                    gd = get_theory("aligned_gd", lr=lr, **options).predict(task, weights, traj.t)
                    row["aligned_gd vs trainer"] = relative_gap(gd.product, traj.matrices["product"])
                rows.append(row)
    return rows


def decay_law(lrs: Sequence[float], gamma: float = 0.2, t_max: float = 1.0) -> list[dict]:
    """Table 2a: the largest gap of λ̂(t) to λ₀e^{−2γt}, relative to the size of its terms, as lr shrinks. GD
    departs from the law by O(lr): (1 − lrγ)² per step instead of e^{−2lrγ}, and lr²(G2ᵀG2 − G1G1ᵀ), small on this
    weak task (s̃ ≤ 0.2), so that lr = 2e-5 reaches 1e-6 in 5·10⁴ steps."""
    task = decay_task()
    weights = list(init.lambda_balanced(3, 3, 3, [2.0, -1.0], scale=0.1, generator=torch.Generator().manual_seed(0)))
    rows = []
    for lr in lrs:
        traj = train(task, weights, lr, t_max=t_max, n_log=11, progress=False, weight_decay=gamma)
        lam = traj.scalars["lam_hat_1"]
        size = sum(torch.linalg.matrix_norm(w) ** 2 for w in weights) / 3
        gap = ((lam - lam[:, :1] * torch.exp(-2 * gamma * traj.t)).abs().amax(-1) / size).max()
        rows.append({"lr": lr, "steps": round(t_max / lr), "lam_law_gap": float(gap), "gap/lr": float(gap) / lr})
    return rows


def decay_task():
    """A weak 3→3 task (s̃ = 0.2, 0.1, 0.05) on which GD's departure from the decay law of λ is mostly its own
    (1 − lrγ)² factor, of size lr·γ²t."""
    return tasks.make("random_regression", n_in=3, n_out=3, seed=3, singular_values=[0.2, 0.1, 0.05])


def decay_theories(quick: bool) -> list[dict]:
    """Table 2b and 3: run_experiment with weight decay (and a held-out set): each theory's loss and test loss
    against the trainer, beside the derived tolerance."""
    rows = []
    for theory, align in (("ode", False), ("aligned", True)):
        cfg = {"task": {"name": "random_regression", "n_in": 4, "n_out": 4, "seed": 1, "n_test": 64},
               "init": {"lam": [-1.0, 0.0, 1.0], "scale": 0.3, "align": align},
               "trainer": {"lr": [0.01, 0.001] if not quick else [0.01], "t_max": 5.0, "n_log": 26,
                           "weight_decay": [0.05, 0.2], "progress": False}, "theory": {"name": theory}}
        summary = run_experiment(cfg).summary
        for lr, part in summary.groupby("lr"):
            rows.append({"theory": theory, "lr": lr, "loss gap": part["theory_max_rel_err"].max(),
                         "loss rtol": part["theory_rtol"].min(), "test gap": part["theory_test_max_rel_err"].max(),
                         "test rtol": part["theory_test_rtol"].min(), "lam_law_gap": part["lam_law_gap"].max(),
                         "agrees": bool(part["theory_agrees"].all() and part["theory_test_agrees"].all())})
    return rows


def sgd_drift(lrs: Sequence[float], batch_sizes: Sequence[int], t_max: float, seeds: int) -> tuple[list[dict], dict]:
    """Table 4: the rate r = −d log|λ̂|/dt over the second half of the run under minibatch SGD, on a noisy
    student–teacher task (P = 32), averaged over ``seeds``; and the least-squares power law
    r ≈ C·lr^a·(1/b − 1/P)^c over the points with b < P."""
    task = tasks.make("student_teacher", n_in=4, n_hidden=2, n_out=4, n_samples=32, noise=0.5, seed=0)
    gen = torch.Generator().manual_seed(0)
    lams = [2.0] * seeds
    weights = list(init.lambda_balanced(4, 4, 4, lams, scale=0.5, generator=gen))
    rows = []
    for b in batch_sizes:
        for lr in lrs:
            traj = train(task, weights, lr, t_max=t_max, n_log=41, batch_size=b if b < task.P else None,
                         seed=1, progress=False)
            lam, t = traj.scalars["lam_hat_1"], traj.t
            half = t.shape[1] // 2
            slope = np.polyfit(t[0, half:].numpy(), np.log(lam[:, half:].abs().mean(0).numpy()), 1)[0]
            rows.append({"batch_size": b, "lr": lr, "lam_hat_end": float(lam[:, -1].mean()), "rate": -slope})
    pts = [(r["lr"], 1 / r["batch_size"] - 1 / task.P, r["rate"]) for r in rows if r["batch_size"] < task.P]
    design = np.array([[1.0, math.log(lr), math.log(noise)] for lr, noise, _ in pts])
    coef, *_ = np.linalg.lstsq(design, np.log([max(r, 1e-300) for *_, r in pts]), rcond=None)
    return rows, {"C": math.exp(coef[0]), "lr exponent": coef[1], "(1/b − 1/P) exponent": coef[2]}


def markdown(rows: list[dict]) -> str:
    """A Markdown table of ``rows`` (floats to 3 significant digits, absent cells –)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))

    def cell(value) -> str:
        if value is None:
            return "–"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="fewer points (a smoke test)")
    quick = args.parse_args(argv).quick
    torch.set_num_threads(1)
    print("## 1. Change of variables: relative gap of the product to the W dynamics (DOP853, rtol 2.5e-14)\n")
    print(markdown(change_of_variables()))
    print("\n## 2a. Weight decay: λ̂(t) against λ₀·e^{−2γt} (γ = 0.2, t ≤ 1), relative to the size of its terms\n")
    print(markdown(decay_law([1e-3, 1e-4] if quick else [1e-3, 1e-4, 2e-5])))
    print("\n## 2b, 3. Weight decay with held-out data: theory against the trainer (largest gap, derived tolerance)\n")
    print(markdown(decay_theories(quick)))
    print("\n## 4. SGD: rate r = −d log|λ̂|/dt against lr and batch size (P = 32, t ≤ 20, second half)\n")
    rows, law = sgd_drift([0.01, 0.02] if quick else [0.005, 0.01, 0.02], [2, 8, 32] if quick else [1, 2, 4, 8, 32],
                          10.0 if quick else 20.0, 2 if quick else 8)
    print(markdown(rows))
    print("\nfitted: r ≈ " + ", ".join(f"{k} = {v:.3g}" for k, v in law.items()))


if __name__ == "__main__":
    main()
