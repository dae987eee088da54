"""Every loss threshold a suite measures is taken above the loss floor of the phase's task, for the simulation and
the theory alike: the suites' measures on curves that decay to a floor L_min > 0 (no training)."""

import math

import pytest
import torch

from lazyrich import metrics
from lazyrich.results.curves import Curves
from lazyrich.suites import SUITES

FLOOR, START, RATE = 0.3, 2.3, 2.0
"""loss(t) = FLOOR + (START − FLOOR)·e^{−RATE·t}: the excess over the floor falls by e^{-RATE t}."""


def decaying(source: str = "sim") -> Curves:
    """Two networks' loss curves on a fine grid (t ≤ 6, 6001 points: interpolation error ~1e-7 of a time)."""
    t = torch.linspace(0.0, 6.0, 6001, dtype=torch.float64).expand(2, -1)
    return Curves(source, t, {"loss": FLOOR + (START - FLOOR) * torch.exp(-RATE * t)})


def of(suite: str, column: str):
    return {m.column: m for m in SUITES[suite].measures}[column].of


def crossing(fraction: float) -> float:
    """The t at which the excess is ``fraction`` of its start."""
    return math.log(1.0 / fraction) / RATE


@pytest.mark.parametrize("source", ["sim", "exact"])
def test_reversal_success_and_time_to_reverse_are_measured_above_the_floor(source):
    params = {"success_threshold": 0.01, "plateau_band": 0.1, "saddle_loss": START, "floor": FLOOR}
    curves = decaying(source)
    # 1% of the loss at the switch (0.023) lies below the floor (0.3): only the excess can fall to 1% of its start.
    assert FLOOR > 0.01 * START
    assert of("reversal", "success")(curves, params).all()
    torch.testing.assert_close(of("reversal", "time_to_reverse")(curves, params),
                               torch.full((2,), crossing(0.01), dtype=torch.float64), rtol=1e-6, atol=0)
    # The plateau at the saddle: the excess within 10% of the saddle's excess, i.e. until it has fallen to 90%
    # (counted by the trapezoid rule on the indicator: exact to half a log interval, 5e-4).
    torch.testing.assert_close(of("reversal", "plateau_time")(curves, params),
                               torch.full((2,), crossing(0.9), dtype=torch.float64), rtol=0, atol=5e-4)


def test_rotation_time_to_learn_is_measured_above_the_floor():
    params = {"threshold": 1e-3, "zero_loss": START, "floor": FLOOR}
    torch.testing.assert_close(of("rotation", "time_to_learn")(decaying(), params),
                               torch.full((2,), crossing(1e-3), dtype=torch.float64), rtol=1e-6, atol=0)


def test_finetune_time_to_threshold_is_measured_above_the_floor():
    params = {"threshold": 0.01, "floor": FLOOR}
    torch.testing.assert_close(of("finetune", "time_to_threshold")(decaying(), params),
                               torch.full((2,), crossing(0.01), dtype=torch.float64), rtol=1e-6, atol=0)


def test_the_floor_is_that_of_the_task_at_the_network_s_rank():
    from lazyrich.suites.common import loss_floor
    from lazyrich.tasks import make

    task = make("random_regression", n_in=4, n_out=4, singular_values=[2.0, 1.0, 0.5, 0.25])
    full = [torch.zeros(3, 4, 4), torch.zeros(3, 4, 4)]
    narrow = [torch.zeros(3, 2, 4), torch.zeros(3, 4, 2)]  # a hidden layer of 2: rank 2
    assert loss_floor(task, full) == pytest.approx(0.0, abs=1e-12)
    assert loss_floor(task, narrow) == pytest.approx(0.5 * (0.5**2 + 0.25**2), rel=1e-9)
    assert loss_floor(task, narrow) == float(metrics.loss_floor(task.sigma_xx, task.sigma_yx, task.sigma_yy, 2))
