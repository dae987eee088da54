"""The theories at their edges: precision policy, NaN/inf inputs, near-singular B, the lazy limit at λ ≈ 0,
zero kernels and the Gaussian init's λ (issue 13, sections 1, 2 and 5)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import balance_terms, rel_err

from lazyrich import init, metrics, tasks
from lazyrich.device import torch_threads
from lazyrich.theory import PrecisionWarning, TaskStats, get_theory, integrate_flow, qqt
from lazyrich.train import train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets: one torch thread (as the CLI runs) keeps kernels from waiting on a busy second core."""
    with torch_threads(1):
        yield


F64 = torch.float64


def hierarchy_stats() -> tuple[tasks.Task, TaskStats]:
    task = tasks.make("hierarchy")
    return task, TaskStats.from_task(task)


# --- 1. precision policy -------------------------------------------------------------------------------------

def test_float32_lambda_is_read_as_the_decimal_it_was_typed_as():
    w1, w2 = init.lambda_balanced(4, 4, 4, lam=torch.tensor(0.8), generator=torch.Generator().manual_seed(0))
    lam_hat = float(init.balance([w1, w2])[0])
    assert abs(float(torch.tensor(0.8)) - 0.8) > 1e-8  # float32's rounding, what a plain cast would give
    # Rounding of W2ᵀW2 − W1W1ᵀ (measured 3.5e-16 of those terms' size, ≈ 5): float32's 1e-8 would show.
    assert abs(lam_hat - 0.8) <= 1e-14 * float(balance_terms([w1, w2])[0])
    assert init.exact_lam(np.array([0.1, -2.5], dtype=np.float32)).tolist() == [0.1, -2.5]


def test_trainer_trains_in_the_dtype_it_is_given():
    task, _ = hierarchy_stats()
    w = init.lambda_balanced(8, 8, 8, [0.0], scale=0.1, generator=torch.Generator().manual_seed(0))
    traj = train(task, [x.float() for x in w], 0.05, t_max=1.0, n_log=3, progress=False)
    assert traj.scalars["loss"].dtype == torch.float32
    assert all(x.dtype == torch.float32 for x in traj.final_weights)


def test_theory_promotes_float32_weights_once_and_names_precision_as_the_cause():
    _, stats = hierarchy_stats()
    w1, w2 = init.lambda_balanced(8, 8, 8, [0.5], scale=1.0, generator=torch.Generator().manual_seed(1))
    f1, f2 = w1.float(), w2.float()
    t = torch.linspace(0, 2, 5, dtype=F64)
    with pytest.warns(PrecisionWarning) as record:
        reason = get_theory("exact").check(stats, [f1, f2])
    assert len(record) == 1 and "float32" in str(record[0].message)
    # float32 rounding breaks the balance at ~1e-8: the reason starts with the real cause, then the check.
    assert reason is not None and reason.startswith("float32 weights: promote to float64")
    assert "not λ-balanced" in reason
    with pytest.warns(PrecisionWarning) as record:
        pred = get_theory("exact", balance_rtol=1e-6).predict(stats, [f1, f2], t)
    assert len(record) == 1
    ref = get_theory("exact", balance_rtol=1e-6).predict(stats, [f1.double(), f2.double()], t)
    assert torch.equal(pred.product, ref.product)  # promoted, not approximated: the same float64 numbers
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        assert get_theory("exact").check(stats, [w1, w2]) is None  # float64: silent


def test_qqt_promotes_float32_sigma_and_t_and_says_so():
    _, stats = hierarchy_stats()
    w1, w2 = init.lambda_balanced(8, 8, 8, 1.0, scale=0.5, generator=torch.Generator().manual_seed(2))
    t32 = torch.linspace(0, 3, 4)
    with pytest.warns(PrecisionWarning, match="sigma_yx is float32"):
        low = qqt(w1, w2, stats.sigma_yx.float(), t32.double())
    with pytest.warns(PrecisionWarning, match="t is float32"):
        qqt(w1, w2, stats.sigma_yx, t32)
    assert torch.equal(low, qqt(w1, w2, stats.sigma_yx.float().double(), t32.double()))


@pytest.mark.parametrize("where", ["W1", "sigma_yx", "t"])
def test_nan_or_inf_inputs_name_the_input(where):
    _, stats = hierarchy_stats()
    w1, w2 = init.lambda_balanced(8, 8, 8, 1.0, scale=0.5, generator=torch.Generator().manual_seed(3))
    syx, t = stats.sigma_yx.clone(), torch.linspace(0, 1, 3, dtype=F64)
    {"W1": w1, "sigma_yx": syx, "t": t}[where][1] = float("nan")
    with pytest.raises(ValueError, match=rf"{where} contains NaN|{where} must be finite"):
        qqt(w1, w2, syx, t)
    if where == "sigma_yx":
        with pytest.raises(ValueError, match="Σyx .* contains NaN"):
            TaskStats(stats.sigma_xx, syx, stats.sigma_yy, stats.P)
    if where == "W1":
        w1[...] = float("inf")
        with pytest.raises(ValueError, match="weights W1 contains inf"):
            get_theory("exact").predict(stats, [w1, w2], torch.linspace(0, 1, 3, dtype=F64))


# --- 2. near-singular B ---------------------------------------------------------------------------------------

def wrong_sign_inits(lams: list[float]) -> tuple[TaskStats, torch.Tensor, torch.Tensor]:
    """The issue's set-up: random_regression seed 5 (4×4); a product whose det has the 'wrong' sign in the task
    basis (so B is singular at λ = 0), re-factorised at each small λ."""
    stats = TaskStats.from_task(tasks.make("random_regression", n_in=4, n_out=4, seed=5))
    u, _, v = stats.svd
    w = 0.3 * torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    if torch.det(u.mT @ w @ v) > 0:
        w = w - 2 * (w @ v[:, :1]) @ v[:, :1].mT
    w1, w2 = init.refactorise(w.expand(len(lams), 4, 4), torch.tensor(lams, dtype=F64),
                              generator=torch.Generator().manual_seed(1))
    return stats, w1, w2


@pytest.mark.slow
def test_near_singular_b_stays_accurate_against_an_independent_ode():
    lams = [1e-4, 1e-6, 1e-8, 1e-10, 1e-12]
    stats, w1, w2 = wrong_sign_inits(lams)
    # Before the escape from the saddle (t ≤ 30) and after it (t ≥ 100); around it see the next test.
    t = torch.tensor([0.0, 0.5, 2.0, 5.0, 10.0, 20.0, 30.0, 100.0, 150.0], dtype=F64)
    pred = get_theory("exact").predict(stats, [w1, w2], t)
    ref1, ref2 = integrate_flow([w1, w2], stats.sigma_xx, stats.sigma_yx, t, method="LSODA", rtol=1e-13,
                                atol=1e-16)
    ref = ref2 @ ref1
    err = (pred.product - ref).norm(dim=(-2, -1)) / ref.norm(dim=(-2, -1))
    assert float(err.max()) <= 1e-8, err.amax(-1)  # the target, every λ down to 1e-12, t = 0 included
    assert pred.ode_fallback.all() and not pred.converges_to_saddle.any()
    assert any("nearly singular" in n for n in pred.notes)
    # qqt takes the same route, and the closed form still serves well-conditioned nets in the same batch.
    direct = qqt(w1, w2, stats.sigma_yx, t)
    assert rel_err(direct[..., 4:, :4], pred.product, batch_dims=1) <= 1e-9


def test_a_batch_mixing_near_singular_and_well_conditioned_nets_gives_each_its_lone_result():
    # qqt sends the near-singular network to the ODE and keeps the closed form for the other one in the batch.
    stats, w1, w2 = wrong_sign_inits([1e-10, 1.0])
    t = torch.tensor([0.0, 1.0, 5.0, 20.0], dtype=F64)
    both = qqt(w1, w2, stats.sigma_yx, t)
    for b in range(2):
        alone = qqt(w1[b:b + 1], w2[b:b + 1], stats.sigma_yx, t)
        assert torch.equal(both[b], alone[0])
    pred = get_theory("exact").predict(stats, [w1, w2], t)
    assert pred.ode_fallback.tolist() == [True, False]


def test_near_singular_escape_window_is_as_accurate_as_the_problem_allows():
    # Around the escape (t ≈ 50 here) the curve depends on the seed σ_min(B) ≈ λ, which the weights hold only to
    # u·scale ≈ 1e-16: any solver's error there is about u/σ_min (measured: two ODE solvers differ by 1e-6 at
    # λ = 1e-12). The fallback must stay within that bound.
    lams = [1e-8, 1e-12]
    stats, w1, w2 = wrong_sign_inits(lams)
    t = torch.tensor([40.0, 50.0, 60.0], dtype=F64)
    pred = get_theory("exact").predict(stats, [w1, w2], t)
    ref1, ref2 = integrate_flow([w1, w2], stats.sigma_xx, stats.sigma_yx, t, method="LSODA", rtol=1e-13,
                                atol=1e-16)
    err = ((pred.product - ref2 @ ref1).norm(dim=(-2, -1)) / (ref2 @ ref1).norm(dim=(-2, -1))).amax(-1)
    bound = 1e-16 / torch.tensor(lams, dtype=F64) * 100
    assert (err <= torch.maximum(bound, torch.tensor(1e-8, dtype=F64))).all(), err


def test_exact_singular_b_is_still_a_saddle():
    stats = TaskStats.from_task(tasks.make("random_regression", n_in=3, n_out=3, seed=6))
    u, s, v = stats.svd
    root = torch.diag(s.sqrt())
    pred = get_theory("exact").predict(stats, [root @ v.mT, -(u @ root)], torch.linspace(0, 5, 3, dtype=F64))
    assert pred.converges_to_saddle.tolist() == [True] and pred.ode_fallback.tolist() == [True]


# --- 5. smaller edges -----------------------------------------------------------------------------------------

def test_lazy_lambda_kernel_refuses_lambda_zero_and_ntk_agrees_with_itself():
    _, stats = hierarchy_stats()
    w1, w2 = init.lambda_balanced(8, 8, 8, [0.0, 4.0], scale=0.1, generator=torch.Generator().manual_seed(0),
                                  align_to=stats.sigma_yx)
    reason = get_theory("lazy", kernel="lambda").check(stats, [w1, w2])
    assert reason is not None and "[0]" in reason and "kernel='ntk'" in reason
    assert get_theory("lazy", kernel="lambda").check(stats, [w1[1:], w2[1:]]) is None
    # kernel='ntk' at λ = 0: its own curve at a late time reaches the final loss it reports.
    pred = get_theory("lazy").predict(stats, [w1, w2], torch.tensor([0.0, 1e5], dtype=F64))
    # Relative (both nets' losses are O(1) and > 0): at t = 1e5 only the slowest rate's tail is left.
    assert rel_err(pred.loss[:, -1], pred.final_loss, batch_dims=1) <= 1e-9


def test_zero_initial_kernel_has_a_defined_distance():
    task, _ = hierarchy_stats()
    zero = [torch.zeros(1, 8, 8, dtype=F64), torch.zeros(1, 8, 8, dtype=F64)]
    traj = train(task, zero, 0.05, t_max=1.0, n_log=3, progress=False)
    assert traj.scalars["kernel_distance"].tolist() == [[0.0, 0.0, 0.0]]  # W = 0 is a fixed point: no move
    w = init.lambda_balanced(8, 8, 8, [1.0], scale=0.1, generator=torch.Generator().manual_seed(0))
    x_gram = task.P * task.sigma_xx
    dist, rel = metrics.kernel_change(metrics.ntk_blocks(zero), metrics.ntk_blocks(list(w)), x_gram)
    assert dist.tolist() == [1.0] and rel.tolist() == [float("inf")]
    k_zero, k_w = metrics.linear_ntk(zero, task.X), metrics.linear_ntk(list(w), task.X)
    assert metrics.kernel_distance(k_zero, k_w).tolist() == [1.0]
    assert metrics.kernel_distance(k_zero, k_zero).tolist() == [0.0]


@pytest.mark.parametrize("widths,scale,lecun", [([8, 16, 4], (1.0, 2.0), True), ([10, 5, 20], (1.5, 0.5), True),
                                                ([6, 12, 8], (0.3, 0.2), False)])
def test_gaussian_init_lambda_formula(widths, scale, lecun):
    n = 4000
    w = init.gaussian(widths, scale, lecun=lecun, generator=torch.Generator().manual_seed(7), batch=n)
    lam = init.balance(w)[0][:, 0]
    predicted = init.gaussian_lambda(widths, scale, lecun=lecun)
    stderr = float(lam.std()) / n**0.5
    assert abs(float(lam.mean()) - predicted) <= 4 * stderr + 1e-12
    if lecun:  # the old docstring's n_out σ₂² − n_in σ₁² is far outside the error bars
        old = widths[2] * scale[1] ** 2 - widths[0] * scale[0] ** 2
        assert abs(float(lam.mean()) - old) > 20 * stderr
