"""lazyrich.metrics: NTK in closed and trace form against torch.func Jacobians, and hand-computed examples."""

import math

import pytest
import torch
from conftest import rel_err
from torch.func import jacrev

from lazyrich.init import gaussian
from lazyrich.metrics import (
    balance_drift,
    kernel_change,
    kernel_distance,
    linear_ntk,
    loss_from_product,
    ntk_blocks,
    task_svals,
    two_layer_ntk_blocks,
)

P, NI, NH, NO = 7, 5, 4, 3


def jacobian_ntk(weights, x):
    """The empirical NTK from autodiff, output-major (o·P + p): an independent reference."""

    def f(*ws):
        h = x.mT
        for w in ws:
            h = w @ h
        return h.reshape(-1)

    jac = jacrev(f, argnums=tuple(range(len(weights))))(*weights)
    flat = torch.cat([j.reshape(j.shape[0], -1) for j in jac], dim=1)
    return flat @ flat.mT


@pytest.fixture
def data():
    return torch.randn(P, NI, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("widths", [[NI, NH, NO], [NI, NH, 6, NO], [NI, 2, 3, 4, NO]])
def test_linear_ntk_matches_torch_func(data, widths):
    ws = gaussian(widths, generator=torch.Generator().manual_seed(1))
    # 1e-10 of the kernel's largest entry is the bar; both sides are a few float64 matmuls, ~1e-15.
    assert rel_err(linear_ntk(ws, data), jacobian_ntk(ws, data)) <= 1e-10


@pytest.mark.parametrize("widths", [[NI, NH, NO], [NI, NH, 6, NO]])
@pytest.mark.parametrize("step", [1e-6, 1e-2, 1.0])
def test_trace_form_kernel_change_matches_full_kernels(data, widths, step):
    g = torch.Generator().manual_seed(2)
    ws0 = gaussian(widths, generator=g)
    ws1 = [w + step * torch.randn(w.shape, generator=g, dtype=w.dtype) for w in ws0]
    k0, k1 = jacobian_ntk(ws0, data), jacobian_ntk(ws1, data)
    dist, rel = kernel_change(ntk_blocks(ws0), ntk_blocks(ws1), data.mT @ data)
    # Absolute on purpose: the distance is a dimensionless 1 − cos, and the full-kernel reference loses ~1e-16
    # of 1 to cancellation whatever the step (so at step 1e-6, distance ~1e-12, only `rel` below is sharp).
    torch.testing.assert_close(dist, kernel_distance(k0, k1), atol=1e-10, rtol=0)
    expected_rel = torch.linalg.matrix_norm(k1 - k0) / torch.linalg.matrix_norm(k0)
    # Relative, because at step=1 the change is O(1) and at 1e-6 it is O(1e-6): the trace form keeps both. The
    # reference K1 − K0 cancels ~1e-16·‖K‖ per entry, ~1e-10 of a 1e-6 change: 1e-9 allows that, ×10.
    torch.testing.assert_close(rel, expected_rel, rtol=1e-9, atol=0)


def test_two_layer_blocks_from_grams_equal_blocks_from_weights(data):
    w1, w2 = gaussian([NI, NH, NO], generator=torch.Generator().manual_seed(3))
    b_w = ntk_blocks([w1, w2])
    b_g = two_layer_ntk_blocks(w1.mT @ w1, w2 @ w2.mT)
    for (a1, g1), (a2, g2) in zip(b_w, b_g, strict=True):
        torch.testing.assert_close(a1, a2)
        torch.testing.assert_close(g1, g2)


def test_kernel_distance_hand_examples():
    k = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    # A rescaled kernel has not moved. Absolute: 1 − cos is dimensionless, and ⟨K,3K⟩/(‖K‖‖3K‖) is 1 to a few
    # ulps (measured 1); 1e-14 (was 1e-15, 4.5 ulps) leaves room for other reduction orders.
    assert float(kernel_distance(k, 3.0 * k)) == pytest.approx(0.0, abs=1e-14)
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert float(kernel_distance(a, b)) == pytest.approx(1.0)  # orthogonal kernels
    # cos between diag(1,1) and diag(1,0) is 1/√2.
    assert float(kernel_distance(a + b, a)) == pytest.approx(1 - 1 / math.sqrt(2))


def test_loss_from_product_equals_the_data_loss_for_unwhitened_inputs():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(11, 4, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.1, 2.0])
    y = torch.randn(11, 3, generator=g, dtype=torch.float64)
    w = torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    direct = 0.5 * ((x @ w.mT - y) ** 2).sum((-2, -1)) / 11  # 1/(2P)‖ŷ − Y‖², the project's convention
    sxx, syx, syy = x.mT @ x / 11, y.mT @ x / 11, y.mT @ y / 11
    # Statistics vs samples: rounding of sums of ~50 O(1) terms, 1e-12 of each net's loss.
    assert rel_err(loss_from_product(w, sxx, syx, syy), direct) <= 1e-12


def test_task_svals_hand_example():
    u = torch.eye(2, dtype=torch.float64)
    v = torch.eye(3, dtype=torch.float64)
    w = torch.tensor([[2.0, 5.0, 7.0], [1.0, -3.0, 9.0]], dtype=torch.float64)
    torch.testing.assert_close(task_svals(w, u, v), torch.tensor([2.0, -3.0], dtype=torch.float64))


def test_balance_drift_hand_example():
    w1 = torch.eye(2, dtype=torch.float64)
    w2 = 2 * torch.eye(2, dtype=torch.float64)
    assert float(balance_drift([w1, w2], [w1, w2])) == 0.0
    # W2 → diag(2, 3): D changes by diag(0, 5); the terms at init have norms ‖4I‖ + ‖I‖ = 5√2.
    w2b = torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64))
    assert float(balance_drift([w1, w2b], [w1, w2])) == pytest.approx(5 / (5 * math.sqrt(2)))


def test_continual_metrics_hand_example():
    from lazyrich.metrics import backward_transfer, forgetting

    # R[i, j]: loss on task i after phase j. Task 0: 1 after learning it, 7 at the end → forgot 6.
    r = torch.tensor([[1.0, 5.0, 7.0], [9.0, 2.0, 4.0], [8.0, 8.0, 3.0]])
    torch.testing.assert_close(forgetting(r), torch.tensor([6.0, 2.0]))
    assert float(backward_transfer(r)) == -4.0  # negative BWT = forgetting


def test_time_to_threshold_interpolates_and_reports_never():
    from lazyrich.metrics import time_to_threshold

    t = torch.tensor([0.0, 1.0, 2.0, 3.0])
    loss = torch.tensor([[1.0, 0.5, 0.005, 0.001], [1.0, 1.0, 1.0, 1.0], [1.0, 0.01, 0.0, 0.0]])
    out = time_to_threshold(t, loss, 0.01)
    # Row 0 crosses 0.01 between t=1 (0.5) and t=2 (0.005): 1 + 0.49/0.495. Row 2 hits it exactly at t=1.
    torch.testing.assert_close(out[[0, 2]], torch.tensor([1 + 0.49 / 0.495, 1.0]))
    assert math.isnan(float(out[1]))
    assert float(time_to_threshold(t, loss[0], 0.4, relative=False)) == pytest.approx(1 + 0.1 / 0.495)


def test_generalisation_score_and_its_prediction():
    from lazyrich.metrics import generalisation_score, predicted_generalisation

    torch.testing.assert_close(generalisation_score(torch.tensor([2.0, 1.0, -0.5]), 0),
                               torch.tensor([1.0, 0.5, -0.25]))
    # One-hot items (X = I): the predicted profile is a row of W1ᵀW1 scaled to 1 at the trained item.
    g = torch.tensor([[4.0, 2.0, 0.0], [2.0, 3.0, 1.0], [0.0, 1.0, 5.0]])
    torch.testing.assert_close(predicted_generalisation(g, torch.eye(3), 1), torch.tensor([2 / 3, 1.0, 1 / 3]))


def test_time_in_band_counts_the_plateau_by_the_trapezoid_rule():
    from lazyrich.metrics import time_in_band

    t = torch.tensor([0.0, 1.0, 2.0, 4.0])
    # Level 2, band 10% → [1.8, 2.2]: points 1 and 2 are in (the 1→2 interval counts 1), 0 and 3 are out
    # (the 0→1 and 2→4 intervals count half of their lengths: 0.5 and 1). Total 2.5.
    loss = torch.tensor([[8.0, 2.1, 1.9, 0.5], [8.0, 4.0, 3.0, 2.5]])
    torch.testing.assert_close(time_in_band(t, loss, 2.0, 0.1), torch.tensor([2.5, 0.0]))
    # A level per row: row 1 at level 3 has only point 2 inside → half of 1→2 and half of 2→4 = 1.5.
    torch.testing.assert_close(time_in_band(t, loss, torch.tensor([2.0, 3.0]), 0.1), torch.tensor([2.5, 1.5]))


def test_relative_change_hand_example():
    from lazyrich.metrics import relative_change

    before = torch.diag(torch.tensor([3.0, 4.0]))  # ‖·‖_F = 5
    after = torch.diag(torch.tensor([3.0, 1.0]))  # moved by 3
    assert float(relative_change(before, after)) == pytest.approx(0.6)


def test_balance_drift_of_a_wide_hidden_layer_agrees_with_the_hidden_matrix():
    g = torch.Generator().manual_seed(2)
    w0 = gaussian([4, 300, 3], [0.8, 1.2], generator=g, batch=2)  # Nh = 300 > 2(Ni + No): the row-space route
    moved = [w + 1e-5 * torch.randn(w.shape, generator=g, dtype=w.dtype) for w in w0]
    d = [w[1].mT @ w[1] - w[0] @ w[0].mT for w in (moved, w0)]
    scale = torch.linalg.matrix_norm(w0[1].mT @ w0[1]) + torch.linalg.matrix_norm(w0[0] @ w0[0].mT)
    ref = torch.linalg.matrix_norm(d[0] - d[1]) / scale
    # The drift is ~1e-5 here; both routes carry an absolute rounding of ~u (relative to the scale): 1e-14.
    torch.testing.assert_close(balance_drift(moved, w0)[..., 0], ref, rtol=0, atol=1e-14)
