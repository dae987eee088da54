"""lazyrich: learning dynamics of deep linear networks, from the rich to the lazy regime.

Data flows one way: ``tasks`` → ``init`` → ``train`` → ``metrics`` / ``results``, with ``theory`` beside the
trainer predicting the same metrics on the same t grid. Conventions: X is (P, Ni), loss = 1/(2P)‖ŷ − Y‖²,
t = step·lr, float64 for anything compared with theory.
"""

from lazyrich import init, metrics, results, tasks, theory
from lazyrich.experiment import run_experiment
from lazyrich.train import Trajectory, train

__version__ = "0.3.0"

__all__ = ["Trajectory", "init", "metrics", "results", "run_experiment", "tasks", "theory", "train"]
