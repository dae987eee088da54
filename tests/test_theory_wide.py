"""lazyrich.theory.wide: the closed form at λ = ±(c₁ + c₂) for wide i.i.d. two-layer nets, its sign rule, its stated
finite-width error, its refusals and its place in theory=auto.

The reference is theory gram_ode (the exact flow, any width; tests/test_theory_gram_ode.py), and the trainer itself
for the slow end-to-end tests."""

import math

import pytest
import torch

from lazyrich import init, tasks
from lazyrich.experiment import run_experiment
from lazyrich.theory import TaskStats, get_theory, select_theory
from lazyrich.theory.exact import ExactTheory
from lazyrich.theory.gram_ode import integrate_gram
from lazyrich.theory.wide import K_MAX, expected_error, required_width, wide_lambda, wide_scales

F64 = torch.float64
T = torch.linspace(0, 6, 31, dtype=F64)


def _task(n_in, n_out, seed=1):
    return tasks.make("random_regression", n_in=n_in, n_out=n_out, seed=seed).whiten()


def _wide(n_in, n_hidden, n_out, c1, c2, batch=4, seed=0):
    return init.gaussian([n_in, n_hidden, n_out], [math.sqrt(c1), math.sqrt(c2)], variance="hidden",
                         generator=torch.Generator().manual_seed(seed), batch=batch)


def _frob_error(pred, ref):
    """The law's metric: max_t ‖A_pred − A‖_F / max_t ‖A‖_F per network."""
    num = (pred - ref).flatten(-2).norm(dim=-1).amax(-1)
    return num / ref.flatten(-2).norm(dim=-1).amax(-1)


@pytest.mark.parametrize(("shape", "sign"), [((8, 4), 1.0), ((4, 8), -1.0), ((6, 6), 1.0)])
def test_the_map_is_exact_at_infinite_width_with_the_sign_rule_only(shape, sign):
    """N_h → ∞ without finite-width noise: P(0) = diag(c₁I, c₂I) with a small A(0) off the diagonal. The closed form
    at λ = sign·(c₁ + c₂) follows the exact Gram flow up to the O(|A(0)|²/S) the re-factorisation leaves; for a
    funnel or an inverted funnel the other sign is off by O(1): the unmatched directions relax at the wrong rate."""
    n_in, n_out = shape
    stats = TaskStats.from_task(_task(n_in, n_out))
    c1, c2 = 0.3, 0.5
    a0 = 1e-3 * torch.randn(2, n_out, n_in, generator=torch.Generator().manual_seed(1), dtype=F64)
    p0 = torch.zeros(2, n_in + n_out, n_in + n_out, dtype=F64)
    p0[:, :n_in, :n_in] = c1 * torch.eye(n_in, dtype=F64)
    p0[:, n_in:, n_in:] = c2 * torch.eye(n_out, dtype=F64)
    p0[:, n_in:, :n_in], p0[:, :n_in, n_in:] = a0, a0.mT
    ref = integrate_gram(p0, n_in, stats.sigma_xx, stats.sigma_yx, T.expand(2, -1), rtol=1e-12, atol=1e-14)
    ref = ref[..., n_in:, :n_in]
    errors = {}
    for s in (1.0, -1.0):
        b1, b2 = init.refactorise(a0, s * (c1 + c2), n_hidden=min(n_in, n_out), rotate=False)
        errors[s] = float(_frob_error(ExactTheory().predict(stats, [b1, b2], T).product, ref).max())
    # |A(0)|²/S ~ 1e-6·n/0.8 relative to a target of order 1: measured 1e-6 … 1e-5.
    assert errors[sign] < 1e-4, errors
    if n_in != n_out:
        assert errors[-sign] > 0.1, errors  # measured 0.4 – 0.6
    else:
        assert errors[-sign] < 1e-4, errors  # a square net's product depends on |λ| only
    assert float(wide_lambda(n_in, n_out, torch.tensor(c1), torch.tensor(c2))) == pytest.approx(sign * (c1 + c2))


@pytest.mark.parametrize(("shape", "n_hidden", "c"), [((8, 8), 512, (0.5, 0.5)), ((8, 8), 2048, (0.05, 0.05)),
                                                       ((8, 8), 2048, (2.0, 2.0)), ((8, 4), 2048, (0.8, 0.2)),
                                                       ((4, 8), 2048, (0.2, 0.8))])
def test_the_error_is_within_the_stated_law(shape, n_hidden, c):
    n_in, n_out = shape
    task = _task(n_in, n_out)
    weights = _wide(n_in, n_hidden, n_out, *c)
    pred = get_theory("wide").predict(task, weights, T)
    ref = get_theory("gram_ode").predict(task, weights, T)
    err = _frob_error(pred.product, ref.product)
    c1, c2 = wide_scales(*weights)
    bound = expected_error(n_in, n_out, n_hidden, c1, c2, bound=True)
    assert bool((err <= bound).all()), (err, bound)  # K_MAX is the worst of the calibration (0.33 measured)
    ratio = float((err / pred.expected_error).mean())
    assert 0.4 < ratio < 2.0, ratio  # the typical law: 0.65 – 1.28 measured against the trainer (4 nets per row)
    # The NTK is invariant under the shift: the kernel distance carries the product's accuracy (measured ≤ 0.03 of
    # its largest value at these widths).
    kd_gap = (pred.kernel_distance - ref.kernel_distance).abs().amax(-1)
    assert bool((kd_gap <= 0.1 * ref.kernel_distance.amax(-1) + 1e-3).all()), kd_gap
    torch.testing.assert_close(pred.w1tw1[:, 0], weights[0].mT @ weights[0], rtol=0, atol=0)  # G(0) as it is
    torch.testing.assert_close(pred.product[:, 0], weights[1] @ weights[0], rtol=0, atol=1e-15)


def test_the_error_falls_like_one_over_root_width():
    task = _task(8, 8)
    errs = []
    for n_hidden in (256, 4096):
        weights = _wide(8, n_hidden, 8, 0.5, 0.5, batch=8)
        pred = get_theory("wide", target_error=1.0).predict(task, weights, T)  # N_h = 256 is below the default's
        ref = get_theory("gram_ode").predict(task, weights, T)
        errs.append(float(_frob_error(pred.product, ref.product).mean()))
    slope = math.log(errs[0] / errs[1]) / math.log(16)
    assert 0.35 < slope < 0.7, (errs, slope)  # p = 0.517 ± 0.008 over 64 … 32768 with 16 seeds; 8 seeds here


def test_refusals_name_the_reason_and_the_fix():
    task = _task(8, 8)
    wide = get_theory("wide")
    assert "not wide" in wide.check(task, _wide(8, 8, 8, 0.5, 0.5))
    narrow = wide.check(task, _wide(8, 64, 8, 0.5, 0.5))
    need = int(required_width(8, 8, torch.tensor(0.5), torch.tensor(0.5), 0.05))
    assert "too narrow" in narrow and f"N_h ≥ {need}" in narrow and need == math.ceil(8 * (K_MAX / 0.05) ** 2)
    assert wide.check(task, _wide(8, 1024, 8, 0.5, 0.5)) is None
    assert "too narrow for target_error = 0.01" in get_theory("wide", target_error=0.01).check(
        task, _wide(8, 1024, 8, 0.5, 0.5))
    padded = init.lambda_balanced(8, 512, 8, 0.0, scale=0.5, generator=torch.Generator().manual_seed(0), batch=1)
    assert "λ-balanced" in wide.check(task, list(padded))
    w1, w2 = _wide(8, 1024, 8, 0.5, 0.5, batch=1)
    low_rank = w1 * torch.tensor([1.0, 1.0] + [0.0] * 6, dtype=F64)
    assert "W1ᵀW1 is not ≈ c·I" in wide.check(task, [low_rank, w2])
    assert "two-layer" in wide.check(task, [w1, torch.eye(1024, dtype=F64)[None], w2])
    raw = tasks.make("random_regression", n_in=8, n_out=8, seed=1)
    raw = raw.replace(X=raw.X * torch.linspace(0.5, 1.5, 8, dtype=raw.X.dtype))
    assert "not whitened" in wide.check(raw, [w1, w2])
    with pytest.raises(ValueError, match="target_error must be positive"):
        get_theory("wide", target_error=0.0)


def test_auto_picks_wide_for_a_wide_gaussian_net_and_not_for_a_narrow_one():
    task = _task(8, 8)
    theory, why = select_theory(task, _wide(8, 2048, 8, 0.5, 0.5, batch=2))
    assert theory.name == "wide" and why.startswith("wide applies (exact: ")
    theory, why = select_theory(task, _wide(8, 8, 8, 0.5, 0.5, batch=2))
    assert theory.name == "ode" and "wide: N_h = 8 is not wide" in why
    pred = get_theory("auto").predict(task, _wide(8, 2048, 8, 0.5, 0.5, batch=2), T)
    assert pred.theory == "wide" and pred.expected_error.shape == (2,)
    assert any("expected product error" in note for note in pred.notes)


@pytest.mark.slow
def test_a_run_reports_the_expected_error_beside_its_tolerance_and_agrees_with_the_trainer():
    """End to end, the trainer at N_h = 1024 (≈ 3 s): auto picks wide; the summary states the expected product
    error beside theory_rtol, and the loss curves agree within it."""
    cfg = {"task": {"name": "random_regression", "n_in": 8, "n_out": 8, "seed": 1, "whiten": True},
           "init": {"kind": "gaussian", "variance": "hidden", "scale": math.sqrt(0.5), "lam": None},
           "model": {"hidden": 1024}, "trainer": {"lr": 1e-3, "t_max": 6.0, "n_log": 13, "n_matrix": 13,
                                                   "progress": False},
           "seed": [0, 1]}
    result = run_experiment(cfg)
    summary = result.summary
    assert result.predictions[0].theory == "wide"
    assert {"theory_expected_err", "theory_rtol", "theory_agrees"} <= set(summary)
    assert bool(summary["theory_agrees"].all()), summary[["theory_max_rel_err", "theory_rtol"]]
    traj, pred = result.trajectories[0], result.predictions[0]
    err = _frob_error(pred.product[:, traj.matrix_index], traj.matrices["product"])
    bound = expected_error(8, 8, 1024, *wide_scales(*traj.init_weights), bound=True)
    assert bool((err <= bound).all()), (err, bound)
    torch.testing.assert_close(torch.tensor(summary["theory_expected_err"].to_numpy()), pred.expected_error.cpu())
