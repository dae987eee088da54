"""An example lazyrich task plug-in: a diagonal whitened task with a chosen spectrum."""

from __future__ import annotations

import numpy as np


def example_plugin(n: int = 4, scale: float = 1.0) -> object:
    """Diagonal task: X = √n·I (whitened), Σyx = scale·diag(n, n−1, …, 1)/n."""
    from lazyrich.tasks import Task

    X = np.sqrt(n) * np.eye(n)
    sigma = scale * np.diag(np.arange(n, 0, -1) / n)
    return Task(X, X @ sigma.T, name="example_plugin", meta={"plugin": "lazyrich-example-plugin"})
