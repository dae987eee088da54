"""lazyrich.init: exact λ-balance over random shapes, the width constraints, alignment and re-factorisation."""

import math

import pytest
import torch
from conftest import balance_terms, rel_err
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazyrich.init import (
    balance,
    balanced_factors,
    deep_balanced,
    gaussian,
    gaussian_lambda,
    lambda_balanced,
    refactorise,
)


def _balance_error(w1, w2, lam):
    d = w2.mT @ w2 - w1 @ w1.mT
    eye = torch.eye(d.shape[-1], dtype=d.dtype)
    # Relative to the size of the terms D is the difference of: that is what rounding is proportional to.
    scale = torch.linalg.matrix_norm(w2.mT @ w2) + torch.linalg.matrix_norm(w1 @ w1.mT) + abs(lam)
    return float((torch.linalg.matrix_norm(d - lam * eye) / scale).max())


@st.composite
def allowed_shapes(draw):
    n_in, n_out = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    n_hidden = draw(st.integers(1, 8))
    lam = draw(st.sampled_from([0.0, 1e-6, -1e-6, 0.3, -0.3, 5.0, -5.0, 1e4, -1e4]))
    if n_hidden > max(n_in, n_out):
        lam = 0.0
    elif n_hidden > n_out:
        lam = -abs(lam)
    elif n_hidden > n_in:
        lam = abs(lam)
    scale = draw(st.sampled_from([1e-8, 1e-3, 0.1, 1.0, 30.0]))
    return n_in, n_hidden, n_out, lam, scale, draw(st.integers(0, 2**16))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(allowed_shapes())
def test_lambda_balanced_is_exact_for_every_allowed_shape(case):
    n_in, n_hidden, n_out, lam, scale, seed = case
    w1, w2 = lambda_balanced(n_in, n_hidden, n_out, lam, scale=scale, generator=torch.Generator().manual_seed(seed))
    assert w1.shape == (n_hidden, n_in) and w2.shape == (n_out, n_hidden)
    assert w1.dtype == torch.float64
    # 1e-12 relative is the bar; float64 rounding of a few matmuls sits near 1e-15.
    assert _balance_error(w1, w2, lam) < 1e-12
    # The product keeps the requested size: its singular values scale with `scale`, whatever λ is.
    k = min(n_in, n_out, n_hidden)
    s = torch.linalg.svdvals(w2 @ w1)[:k]
    assert float(s.max()) < 20 * scale * math.sqrt(max(n_in, n_out))


def test_factors_have_no_cancellation_at_huge_lambda():
    s = torch.tensor([1e-8, 1e-3, 1.0], dtype=torch.float64)
    for lam in (1e4, -1e4):
        s1, s2 = balanced_factors(s, lam)
        # s1·s2 = s to full relative precision even though one factor is ~1e-10 of the other: elementwise
        # relative on purpose (s spans 1e-8..1), 1e-14 is ~45 ulps of the few flops of each factor.
        torch.testing.assert_close(s1 * s2, s, rtol=1e-14, atol=0)
        torch.testing.assert_close(s2**2 - s1**2, torch.full_like(s, lam), rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    ("n_in", "n_hidden", "n_out", "lam", "needle"),
    [
        (4, 5, 3, 1.0, "forces lam = 0"),
        (6, 5, 3, 1.0, "forces lam <= 0"),
        (3, 5, 6, -1.0, "forces lam >= 0"),
    ],
)
def test_impossible_lambda_names_the_constraint_and_sign(n_in, n_hidden, n_out, lam, needle):
    with pytest.raises(ValueError, match=needle):
        lambda_balanced(n_in, n_hidden, n_out, lam)


def test_aligned_init_sits_in_the_task_basis():
    g = torch.Generator().manual_seed(0)
    sigma = torch.randn(3, 5, generator=g, dtype=torch.float64)
    w1, w2 = lambda_balanced(5, 3, 3, 2.0, scale=0.2, align_to=sigma, generator=g)
    u, _, vh = torch.linalg.svd(sigma, full_matrices=False)
    inner = u.mT @ (w2 @ w1) @ vh.mT
    # An SVD and three matmuls of O(1) matrices: rounding, ~1e-16 of the scale 0.2.
    assert rel_err(inner, 0.2 * torch.eye(3, dtype=torch.float64)) <= 1e-13


def test_refactorise_keeps_the_product_and_sets_lambda():
    g = torch.Generator().manual_seed(1)
    prod = torch.randn(4, 6, 3, generator=g, dtype=torch.float64)
    lams = torch.tensor([-3.0, 0.0, 0.5, 40.0], dtype=torch.float64)
    w1, w2 = refactorise(prod, lams, generator=g)
    # Rounding of each net's factors, which grow to ~√|λ| at λ = 40: 1e-12 of the product's scale.
    assert rel_err(w2 @ w1, prod, batch_dims=1) <= 1e-12
    lam_hat, dev = balance([w1, w2])
    # λ̂ and the deviation are rounding of W2ᵀW2 − W1W1ᵀ: bounded against the size of those two terms.
    terms = balance_terms([w1, w2])
    assert rel_err(lam_hat, lams[:, None], scale=terms, batch_dims=2) <= 1e-12
    assert float((dev / terms).max()) < 1e-12


def test_batched_lambda_gives_one_network_per_value():
    w1, w2 = lambda_balanced(4, 4, 4, [-5.0, 0.0, 5.0], scale=0.3, generator=torch.Generator().manual_seed(2))
    assert w1.shape == (3, 4, 4)
    lam_hat, _ = balance([w1, w2])
    want = torch.tensor([[-5.0], [0.0], [5.0]], dtype=torch.float64)
    # Rounding of W2ᵀW2 − W1W1ᵀ, of the size of those terms (~|λ| + 0.3²): 1e-13 of it (~450 ulps).
    assert rel_err(lam_hat, want, scale=balance_terms([w1, w2]), batch_dims=2) <= 1e-13


@pytest.mark.parametrize("lams", [[1.0, -2.0], [0.0, 0.0, 0.0], [30.0, 5.0, -1.0]])
def test_deep_balanced_every_pair(lams):
    widths = [3] * (len(lams) + 2)
    ws = deep_balanced(widths, lams, scale=0.5, generator=torch.Generator().manual_seed(3), batch=2)
    lam_hat, dev = balance(ws)
    # Relative to the size of each pair's terms: bisection on a_1² is exact to float64 resolution.
    terms = balance_terms(ws)
    assert rel_err(lam_hat, torch.tensor([lams, lams], dtype=torch.float64), scale=terms, batch_dims=2) <= 1e-12
    assert float((dev / terms).max()) < 1e-12


def test_deep_balanced_rejects_wide_hidden_layers():
    with pytest.raises(ValueError, match="hidden width"):
        deep_balanced([3, 5, 3], [0.0])


def test_gaussian_init_is_nearly_balanced_with_the_predicted_lambda():
    # E[W2ᵀW2 − W1W1ᵀ] = (No σ2²/Nh − σ1²) I under LeCun scaling (docs/theory.md §3, with 1/fan-in variances).
    n_in, n_hidden, n_out, s1, s2 = 6, 40, 10, 0.5, 2.0
    ws = gaussian([n_in, n_hidden, n_out], [s1, s2], generator=torch.Generator().manual_seed(4), batch=4000)
    lam_hat, _ = balance(ws)
    expected = n_out * s2**2 / n_hidden - s1**2
    # Standard error of the mean over 4000 draws is ~0.003 here; 0.02 is a 6σ band.
    assert abs(float(lam_hat.mean()) - expected) < 0.02


def test_balance_on_a_hand_example():
    w1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    w2 = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    lam, dev = balance([w1, w2])
    # D = diag(9, 1) − diag(1, 4) = diag(8, −3): λ̂ = 5/2, deviation ‖diag(5.5, −5.5)‖ = 5.5·√2.
    assert float(lam) == pytest.approx(2.5)
    assert float(dev) == pytest.approx(5.5 * math.sqrt(2))


def _hidden_balance(ws):
    """λ̂ and ‖D − λ̂I‖ from the Nh × Nh matrix D itself: the reference for the row-space route."""
    d = ws[1].mT @ ws[1] - ws[0] @ ws[0].mT
    lam = torch.diagonal(d, dim1=-2, dim2=-1).sum(-1) / d.shape[-1]
    return lam, torch.linalg.matrix_norm(d - lam[..., None, None] * torch.eye(d.shape[-1], dtype=d.dtype))


@pytest.mark.parametrize("make", [
    lambda g: gaussian([8, 600, 4], [0.7, 1.3], generator=g, batch=3),
    lambda g: list(lambda_balanced(5, 300, 5, 0.0, scale=0.4, generator=g, batch=2)),  # deviation at rounding
    lambda g: gaussian([9, 100, 2], 0.1, lecun=False, generator=g, batch=2),  # no fan-in scaling: large λ̂
])
def test_balance_of_a_wide_hidden_layer_never_forms_it_and_agrees_to_rounding(make):
    ws = make(torch.Generator().manual_seed(5))
    lam, dev = balance(ws)
    ref_lam, ref_dev = _hidden_balance(ws)
    scale = sum((w * w).sum((-2, -1)) for w in ws)
    # Both routes round at ~u·‖W‖² (the QR is backward stable; no difference of large squares is formed):
    # 1e-14 of the scale is a few hundred u, far below any deviation the project reads (1e-8 and up).
    assert float(((lam[..., 0] - ref_lam).abs() / scale).max()) < 1e-14
    assert float(((dev[..., 0] - ref_dev).abs() / scale).max()) < 1e-14


def test_hidden_variance_keeps_both_grams_at_scale_squared_whatever_the_width():
    n_in, n_out, s1, s2 = 6, 3, 0.5, 1.5
    for n_hidden in (64, 1024):
        w1, w2 = gaussian([n_in, n_hidden, n_out], [s1, s2], variance="hidden",
                          generator=torch.Generator().manual_seed(8), batch=400)
        g1, g2 = (w1.mT @ w1).mean(0), (w2 @ w2.mT).mean(0)
        # The mean of 400 Wishart draws: an entry's standard error is σ²/√(400·N_h) (√2 that on the diagonal);
        # 6/√(400·N_h) is a 4.2σ band on the diagonal for the ~90 entries checked.
        band = 6 / math.sqrt(400 * n_hidden)
        torch.testing.assert_close(g1, s1**2 * torch.eye(n_in, dtype=g1.dtype), rtol=0, atol=band * s1**2)
        torch.testing.assert_close(g2, s2**2 * torch.eye(n_out, dtype=g2.dtype), rtol=0, atol=band * s2**2)
        lam = balance([w1, w2])[0][:, 0]
        expected = gaussian_lambda([n_in, n_hidden, n_out], [s1, s2], variance="hidden")
        assert abs(float(lam.mean()) - expected) <= 4 * float(lam.std()) / 20 + 1e-12  # 4 standard errors
    with pytest.raises(ValueError, match="variance='hidden' divides by the hidden width"):
        gaussian([4, 2], variance="hidden")
