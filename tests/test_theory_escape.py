"""The λ = 0 saddle under gradient descent (issue 13, section 3): the escape model against measured plateaus."""

from __future__ import annotations

import math

import pytest
import torch

from lazyrich import init, metrics, tasks
from lazyrich.device import torch_threads
from lazyrich.tasks.transforms import reverse
from lazyrich.theory import TaskStats, get_theory
from lazyrich.theory.escape import escape_times, mode_imbalance
from lazyrich.train import train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets: one torch thread (as the CLI runs) keeps kernels from waiting on a busy second core."""
    with torch_threads(1):
        yield


F64 = torch.float64
S_TILDE = [3.0, 2.0, 1.5]


@pytest.fixture(scope="module")
def reversal():
    """The learned λ = 0 solution of a 3×3 task, about to learn the reversed task (B = 0 up to rounding)."""
    task = tasks.make("random_regression", n_in=3, n_out=3, singular_values=S_TILDE, seed=0)
    u, s, v = task.svd
    r = init.random_orthogonal(3, generator=torch.Generator().manual_seed(4))
    root = torch.diag(s.sqrt())
    weights = [(r @ root @ v.mT)[None], (u @ root @ r.mT)[None]]
    rev = reverse(task)
    return rev, TaskStats.from_task(rev), weights


def measured_and_predicted(rev, stats, weights, dtype, t_max=40.0):
    lr = 0.05 / (2 * S_TILDE[0])
    traj = train(rev, [w.to(dtype) for w in weights], lr, t_max=t_max, n_log=801, progress=False)
    t = traj.t[0]
    pred = get_theory("escape", dtype=dtype).predict(stats, weights, t)
    l_zero = float(metrics.loss_from_product(torch.zeros(3, 3, dtype=F64), stats.sigma_xx, stats.sigma_yx,
                                             stats.sigma_yy))
    plateau = [float(metrics.time_in_band(t, loss, l_zero, 0.1)) for loss in (traj.scalars["loss"][0].double(),
                                                                               pred.loss[0])]
    svals = torch.stack([traj.scalars[f"sval_{k}"][0].double() for k in (1, 2, 3)], -1)
    half = [float(t[(svals[:, k] >= S_TILDE[k] / 2).nonzero()[0]]) for k in range(3)]
    return plateau, half, pred


@pytest.mark.parametrize("dtype,delta", [(F64, 0.0), (torch.float32, 0.0), (F64, 1e-10), (F64, 1e-6), (F64, 1e-3)])
@pytest.mark.slow
def test_escape_model_predicts_the_plateau_within_20_percent(reversal, dtype, delta):
    rev, stats, weights = reversal
    weights = init.perturb(weights, delta, generator=torch.Generator().manual_seed(1))
    (measured, predicted), half, pred = measured_and_predicted(rev, stats, weights, dtype)
    assert pred.converges_to_saddle.tolist() == [True]  # still a saddle for the flow ...
    assert measured > 1.0  # a real plateau, not the descent into it
    assert abs(predicted - measured) <= 0.2 * measured, (measured, predicted)  # ... and GD's plateau predicted
    # The strongest mode's escape (s reaching s̃/2), which ends the plateau: within 20% too. (Weaker modes escape
    # later than predicted once a perturbation is large: the escaped modes take over hidden directions their seed
    # partly lay in; measured +26% for the weakest at δ = 1e-6.)
    assert abs(float(pred.escape_time[0, 0]) - half[0]) <= 0.2 * half[0], (half, pred.escape_time)


def test_escape_time_closed_form_matches_its_curve():
    s0 = torch.tensor([-1.0, -0.3, 0.0], dtype=F64)
    s_t = torch.tensor([1.0, 2.0, 0.5], dtype=F64)
    lam = mode_imbalance(s0.clamp_max(-1e-3), torch.tensor([1e-12, 1e-6, 1e-3], dtype=F64))
    t_esc = escape_times(s0, s_t, lam, c=2.0)
    from lazyrich.theory import singular_values

    at = singular_values(s0, s_t, lam, 2.0 * t_esc)
    # A round trip through log (escape_times) and exp (singular_values) of seeds down to 1e-12: 1e-9 relative.
    assert torch.allclose(at, s_t / 2, rtol=1e-9, atol=0)
    # ≈ ln(1/β)/(c s̃) for a tiny seed: the log law the issue measured (37/s̃ in float64)
    assert math.isclose(float(t_esc[0]) * 2.0 * 1.0, math.log(1e12), rel_tol=0.1)
    assert torch.isnan(escape_times(s0.abs() + 0.1, s_t, lam)).all()  # right side: nothing to escape


def test_escape_theory_refuses_lambda_away_from_zero(reversal):
    _, stats, _ = reversal
    w1, w2 = init.lambda_balanced(3, 3, 3, [1.0], scale=0.5, generator=torch.Generator().manual_seed(0))
    reason = get_theory("escape").check(stats, [w1, w2])
    assert reason is not None and "theory=exact" in reason
    with pytest.raises(ValueError, match="float dtype"):
        get_theory("escape", dtype="int64")
