"""Helpers in lazyrich.metrics that the figures and suites draw with, each against an independent reference."""

import torch
from conftest import rel_err

from lazyrich import metrics
from lazyrich.tasks import make


def test_task_losses_is_the_loss_of_the_outputs_on_each_task():
    tasks = make("continual_stream", K=3, n_in=3, n_out=2, seed=4).tasks
    gen = torch.Generator().manual_seed(0)
    product = torch.randn(5, 7, 2, 3, generator=gen, dtype=torch.float64)  # (B, T, No, Ni)
    losses = metrics.task_losses(product, tasks)
    assert losses.shape == (5, 7, 3)
    for k, task in enumerate(tasks):  # 1/(2P) ‖W Xᵀ − Yᵀ‖² from the samples themselves
        direct = 0.5 * ((task.X @ product.mT - task.Y) ** 2).sum((-2, -1)) / task.P
        assert rel_err(losses[..., k], direct) <= 1e-10  # statistics vs samples: rounding of O(1) sums


def _two_layer(batch: int, n_in: int, n_hidden: int, n_out: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, n_hidden, n_in, generator=gen, dtype=torch.float64),
            torch.randn(batch, n_out, n_hidden, generator=gen, dtype=torch.float64)]


def test_two_layer_ntk_from_grams_is_the_jacobian_gram_of_the_network():
    w1, w2 = _two_layer(3, n_in=3, n_hidden=4, n_out=2)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kernel = metrics.two_layer_ntk(w1.mT @ w1, w2 @ w2.mT, x)
    assert kernel.shape == (3, 10, 10)
    for b in range(3):  # reference: J Jᵀ with J = ∂ vec(outputs, output-major) / ∂ (W1, W2), by autograd
        def outputs(a1, a2):
            return (x @ a1.mT @ a2.mT).mT.reshape(-1)  # index o·P + p

        j1, j2 = torch.func.jacrev(outputs, argnums=(0, 1))(w1[b], w2[b])
        jac = torch.cat([j1.reshape(10, -1), j2.reshape(10, -1)], -1)
        assert rel_err(kernel[b], jac @ jac.mT) <= 1e-12  # a few float64 matmuls, O(10) entries: rounding
    assert rel_err(kernel, metrics.linear_ntk([w1, w2], x), batch_dims=1) <= 1e-12


def test_representation_similarity_is_the_gram_of_hidden_activations_and_of_read_out_targets():
    task = make("hierarchy", depth=2, branching=2)
    w1, w2 = _two_layer(2, n_in=task.n_in, n_hidden=6, n_out=task.n_out, seed=3)
    rsm_in, rsm_out = metrics.representation_similarity(w1.mT @ w1, w2 @ w2.mT, task.X, task.Y)
    hidden = task.X @ w1.mT  # (B, P, Nh): the hidden activations of every sample
    assert rel_err(rsm_in, hidden @ hidden.mT, batch_dims=1) <= 1e-12  # matmuls only: rounding
    back = task.Y @ torch.linalg.pinv(w2).mT  # Y (W2⁺)ᵀ: targets read back into the hidden layer
    # Two routes through a pseudo-inverse (of W2 here, of W2W2ᵀ there): rounding times cond(W2W2ᵀ) (measured
    # 4e-15 of the scale); 1e-10 (was elementwise rtol 1e-8 + atol 1e-10) still fails on any wrong formula.
    assert rel_err(rsm_out, back @ back.mT, batch_dims=1) <= 1e-10


def test_noise_costs_monte_carlo_matches_their_exact_expectation():
    task = make("hierarchy", depth=2, branching=2)  # whitened: Σxx = I, as the expectation assumes
    weights = _two_layer(3, n_in=task.n_in, n_hidden=5, n_out=task.n_out, seed=2)
    weights = [0.5 * w for w in weights]
    sigma = 0.1
    mc_in, mc_par = metrics.noise_costs(weights, task, sigma, n_draws=20000, seed=1)
    w1, w2 = weights
    ex_in, ex_par = metrics.expected_noise_costs(w2 @ w1, w1.mT @ w1, w2 @ w2.mT, sigma, n_hidden=5)
    # 20 000 draws: the Monte Carlo mean is within ~1% (a few standard errors) of the expectation.
    torch.testing.assert_close(mc_in, ex_in, rtol=0.03, atol=0.0)
    torch.testing.assert_close(mc_par, ex_par, rtol=0.03, atol=0.0)
    assert not torch.allclose(mc_par, 2 * ex_par, rtol=0.03)  # the test can tell a factor of 2


def test_gaussian_balance_moments_match_monte_carlo_draws():
    from lazyrich import init as inits

    n_in, n_hidden, n_out = 3, 4, 5
    w1, w2 = inits.gaussian([n_in, n_hidden, n_out], [1.3, 0.7], lecun=True, batch=200_000,
                            generator=torch.Generator().manual_seed(0))
    lam, dev = inits.balance([w1, w2])
    measured = [float((dev[:, 0] ** 2).mean()), float((torch.linalg.matrix_norm(w2.mT @ w2) ** 2).mean()),
                float((torch.linalg.matrix_norm(w1 @ w1.mT) ** 2).mean()), float(lam[:, 0].mean())]
    exact = metrics.gaussian_balance_moments(n_in, n_hidden, n_out, s1=1.3, s2=0.7)
    for got, want in zip(measured[:3], exact[:3], strict=True):
        assert abs(got - want) < 0.02 * want, (measured, exact)
    assert abs(measured[3] - exact[3]) < 0.01, (measured, exact)  # E λ̂ = No σ2²/Nh − σ1² = −1.0775
    assert metrics.gaussian_balance_moments(3, 1, 2)[0] == 0.0  # Nh = 1: D is a scalar, always λ̂-balanced
    table = metrics.gaussian_balance([(8, 4, 8)])
    assert set(table) == {"r_sim", "r_theory", "lam_sim", "lam_theory", "n_seeds"} and table["n_seeds"][0] >= 16
    assert abs(table["r_sim"][0] / table["r_theory"][0] - 1) < 0.05 and table["lam_theory"][0] == 8 / 4 - 1
