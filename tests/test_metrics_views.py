"""Helpers in lazyrich.metrics that the figures and suites draw with, each against an independent reference."""

import torch

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
        torch.testing.assert_close(losses[..., k], direct, rtol=1e-10, atol=1e-12)
