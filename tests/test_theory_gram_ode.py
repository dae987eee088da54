"""lazyrich.theory.gram_ode: the flow of the Gram QQᵀ against the ode theory on the weights, its width-independence
and the shift symmetry P → P + αJ that theory wide is built on."""

import pytest
import torch

from lazyrich import init, metrics, tasks
from lazyrich.theory import TaskStats, get_theory
from lazyrich.theory.gram_ode import gram_of, integrate_gram

F64 = torch.float64


def _stats(n_in, n_out, *, whiten=True, seed=3):
    task = tasks.make("random_regression", n_in=n_in, n_out=n_out, seed=seed, n_samples=12)
    return TaskStats.from_task(task.whiten() if whiten else task)


def _gap(a, b):
    return float(((a - b).abs().amax((-2, -1)) / b.abs().amax((-2, -1)).clamp_min(1e-300)).max())


@pytest.mark.parametrize("whiten", [True, False])
def test_gram_flow_is_the_weight_flow_for_any_init_and_any_sigma_xx(whiten):
    stats = _stats(4, 3, whiten=whiten)
    weights = init.gaussian([4, 20, 3], [0.8, 0.5], generator=torch.Generator().manual_seed(1), batch=3)
    t = torch.linspace(0, 4, 9, dtype=F64)
    ref = get_theory("ode", rtol=1e-12, atol=1e-14).predict(stats, weights, t)
    pred = get_theory("gram_ode", rtol=1e-12, atol=1e-14).predict(stats, weights, t)
    for field in ("product", "w1tw1", "wwt_out"):
        # Two DOP853 solves of the same flow at rtol 1e-12 over 4 time units: a few 1e-11 apart, 1e-9 is slack.
        assert _gap(getattr(pred, field), getattr(ref, field)) < 1e-9, field
    torch.testing.assert_close(pred.kernel_distance, ref.kernel_distance, rtol=0, atol=1e-9)
    torch.testing.assert_close(pred.final_loss, ref.final_loss, rtol=0, atol=0)  # the same rank-limited minimum


def test_nets_with_one_gram_have_one_prediction_whatever_their_width():
    """A width-5 net embedded isometrically into 800 hidden units has the same P, so the same flow."""
    stats = _stats(3, 2)
    w1, w2 = init.gaussian([3, 5, 2], generator=torch.Generator().manual_seed(2), batch=2)
    embed = torch.linalg.qr(torch.randn(800, 5, generator=torch.Generator().manual_seed(3), dtype=F64)).Q
    wide = [embed @ w1, w2 @ embed.mT]
    torch.testing.assert_close(gram_of(*wide), gram_of(w1, w2), rtol=0, atol=1e-14)  # rounding of the embedding
    t = torch.linspace(0, 3, 7, dtype=F64)
    narrow_pred, wide_pred = (get_theory("gram_ode").predict(stats, w, t) for w in ([w1, w2], wide))
    assert _gap(wide_pred.product, narrow_pred.product) < 1e-12  # the same ODE from P(0) equal to ~1e-15


@pytest.mark.parametrize("alpha", [-0.3, 0.25, 5.0])
def test_shifting_the_gram_by_alpha_j_changes_neither_the_product_nor_the_ntk(alpha):
    """P + αJ (J = diag(I_Ni, −I_No)) solves the same flow: M anticommutes with J and sees only the block A."""
    stats = _stats(4, 3)
    w1, w2 = init.gaussian([4, 50, 3], 0.7, variance="hidden", generator=torch.Generator().manual_seed(4), batch=2)
    p0 = gram_of(w1, w2)
    shift = alpha * torch.diag(torch.tensor([1.0] * 4 + [-1.0] * 3, dtype=F64))
    t = torch.linspace(0, 5, 11, dtype=F64).expand(2, -1)
    p, q = (integrate_gram(x, 4, stats.sigma_xx, stats.sigma_yx, t, rtol=1e-12, atol=1e-14) for x in (p0, p0 + shift))
    assert _gap(q[..., 4:, :4], p[..., 4:, :4]) < 1e-9  # two tight solves of one trajectory
    torch.testing.assert_close(q - p, shift.expand_as(p), rtol=0, atol=1e-9)  # the shift itself is conserved
    # The NTK Σ_l A_l ⊗ X G_l Xᵀ moves by −α·I⊗XXᵀ + α·I⊗XXᵀ = 0: the kernel distance is the same.
    kd = [metrics.two_layer_kernel_change(x[:, :1, 4:, 4:], x[:, :1, :4, :4], x[..., 4:, 4:], x[..., :4, :4],
                                          stats.sigma_xx)[0] for x in (p, q)]
    torch.testing.assert_close(kd[1], kd[0], rtol=0, atol=1e-10)


def test_gram_ode_refuses_deep_nets():
    stats = _stats(3, 3)
    weights = init.gaussian([3, 4, 4, 3], generator=torch.Generator().manual_seed(5), batch=1)
    assert "two-layer nets only" in get_theory("gram_ode").check(stats, weights)
