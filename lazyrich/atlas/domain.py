"""Each theory of an atlas on one block of networks: its prediction where it applies, and its domain.

A network is inside a theory's domain when the theory's own check accepts its initial weights on the task
(:meth:`lazyrich.theory.base.Theory.check`, with the run's training options), the network is linear and trained
by full-batch GD. Outside, the cell is marked "outside domain" with the reason. The prediction is made wherever
the check accepts, also for a nonlinear network: its gap is then the deviation from the linear theory that the
breaks preset maps (``in_domain`` stays false there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lazyrich.results.curves import Curves, predicted
from lazyrich.tasks import Task

__all__ = ["Domain", "domain_of", "predict_block"]


@dataclass(frozen=True)
class Domain:
    """Which networks of a block (B,) a theory can predict (``predictable``), which are inside its domain
    (``inside``: predictable, linear, full batch), and why not, per network ("" inside)."""

    predictable: np.ndarray
    inside: np.ndarray
    reason: np.ndarray


def _theory(name: str, options: Mapping[str, Any]):
    from lazyrich.theory import get_theory
    from lazyrich.theory.registry import filter_options

    return get_theory(name, **filter_options(name, dict(options)))


def _rows(options: Mapping[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """The per-network entries of ``options`` ((B, …) arrays) at ``rows``; the others as they are."""
    return {k: v[rows] if isinstance(v, np.ndarray) else v for k, v in options.items()}


def domain_of(name: str, task: Task, weights: Sequence[torch.Tensor], options: Mapping[str, Any],
              activation: str, full_batch: bool) -> Domain:
    """The :class:`~lazyrich.atlas.domain.Domain` of theory ``name`` over the networks ``weights`` ([W1 (B, …),
    …]); ``options`` holds each network's lr and training options ((B,) arrays) as
    :func:`lazyrich.experiment.predict.predict_theory` takes them. The check runs once on the block, and per network
    only where the block is refused."""
    from lazyrich.theory import TaskStats

    stats, batch = TaskStats.from_task(task), weights[0].shape[0]
    reason = _theory(name, options).check(stats, list(weights))
    reasons = np.full(batch, "", dtype=object)
    if reason is not None:
        for b in range(batch):
            one = np.array([b])
            why = _theory(name, _rows(options, one)).check(stats, [w[b:b + 1] for w in weights])
            reasons[b] = "" if why is None else why
    predictable = reasons == ""
    inside = predictable.copy()
    if activation not in ("none", "linear"):
        reasons[predictable] = f"the network is nonlinear (activation {activation}); {name} is a linear theory"
        inside[:] = False
    elif not full_batch:
        reasons[predictable] = f"minibatch SGD; {name} predicts full-batch training"
        inside[:] = False
    return Domain(predictable, inside, reasons)


def predict_block(name: str, task: Task, weights: Sequence[torch.Tensor], t: torch.Tensor,
                  options: Mapping[str, Any], rows: np.ndarray) -> Curves | None:
    """The theory's :class:`~lazyrich.results.curves.Curves` of the networks ``rows`` of the block (on their grid
    ``t`` (B, T)), or None when there are none."""
    from lazyrich.theory import TaskStats

    if len(rows) == 0:
        return None
    index = torch.as_tensor(rows, dtype=torch.long)
    prediction = _theory(name, _rows(options, rows)).predict(TaskStats.from_task(task), [w[index] for w in weights],
                                                             t[index])
    return predicted(prediction)
