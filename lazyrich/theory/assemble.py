"""Turn what a theory computes (weight trajectories, or the blocks of QQᵀ) into a :class:`Prediction`.

Every theory reports the same figures as the trainer, from the same functions in ``lazyrich.metrics``: the
loss from the product, the signed task-basis singular values, and the NTK movement in trace form with
x_gram = XᵀX = P·Σxx, measured against the kernel of the initial weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lazyrich import metrics
from lazyrich.theory.base import Prediction, TaskStats, loss_from_product
from lazyrich.train import TrainOptions

__all__ = ["from_grams", "from_trajectory", "standard_trajectory"]


def standard_trajectory(weights0: Sequence[Tensor], traj: Sequence[Tensor], options: TrainOptions | None
                        ) -> tuple[list[Tensor], list[Tensor], Tensor | None]:
    """(U_l(0) (B, out, in), U_l(t) (B, T, out, in), k (B, L)) of weights W and their trajectory, U_l = k_l·W_l
    (:class:`lazyrich.train.TrainOptions`): the variables a prediction's figures are taken in when layer rates or
    an output multiplier are set (k None and W itself otherwise); :func:`lazyrich.theory.base.grams_of_weights`
    maps the Grams back."""
    if options is None or not options.rescales:
        return list(weights0), list(traj), None
    _, k = (x.to(weights0[0]) for x in options.standard(weights0[0].shape[0], len(weights0)))
    return ([w * k[:, l, None, None] for l, w in enumerate(weights0)],
            [w * k[:, None, l, None, None] for l, w in enumerate(traj)], k)


def _common(stats: TaskStats, product: Tensor, blocks0: metrics.Blocks, blocks_t: metrics.Blocks
            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    u, _, v = stats.svd
    loss = loss_from_product(product, stats)
    dist, rel = metrics.kernel_change(blocks0, blocks_t, stats.P * stats.sigma_xx)
    return loss, dist, rel, metrics.task_svals(product, u, v)


def from_trajectory(stats: TaskStats, weights0: Sequence[Tensor], traj: Sequence[Tensor], t: Tensor, *,
                    theory: str, final_loss: Tensor, converges_to_saddle: Tensor,
                    notes: Sequence[str] = ()) -> Prediction:
    """Prediction from trajectories ``traj`` [W_l (B, T, out, in)] starting at ``weights0`` (B, out, in)."""
    product = metrics.product(traj)
    # Identity blocks come back unbatched (n, n) and broadcast as they are; batched ones gain the time axis.
    blocks0 = [tuple(x.unsqueeze(1) if x.dim() > 2 else x for x in blk)
               for blk in metrics.ntk_blocks(weights0)]
    loss, dist, rel, svals = _common(stats, product, blocks0, metrics.ntk_blocks(traj))
    return Prediction(t=t, product=product, w1tw1=traj[0].mT @ traj[0], wwt_out=traj[-1] @ traj[-1].mT,
                      loss=loss, kernel_distance=dist, ntk_rel_change=rel, svals=svals,
                      converges_to_saddle=converges_to_saddle.to(torch.bool), final_loss=final_loss,
                      theory=theory, notes=list(notes))


def from_grams(stats: TaskStats, product: Tensor, w1tw1: Tensor, wwt_out: Tensor, w1tw1_0: Tensor,
               wwt_out_0: Tensor, t: Tensor, *, theory: str, final_loss: Tensor, converges_to_saddle: Tensor,
               notes: Sequence[str] = ()) -> Prediction:
    """Prediction of a two-layer net from its product (B,T,No,Ni) and Grams (B,T,·,·), NTK(0) from (B,·,·).

    Blocks of a larger matrix (views of a QQᵀ grid, as ``gram_ode`` passes) are copied out first: every reduction
    below, and those of the consumers of the prediction, run about twice as fast on contiguous matrices, and the
    grid is freed."""
    product, w1tw1, wwt_out = (m.contiguous() for m in (product, w1tw1, wwt_out))
    u, _, v = stats.svd
    dist, rel = metrics.two_layer_kernel_change(wwt_out_0.unsqueeze(1), w1tw1_0.unsqueeze(1), wwt_out, w1tw1,
                                                stats.P * stats.sigma_xx)
    loss, svals = loss_from_product(product, stats), metrics.task_svals(product, u, v)
    return Prediction(t=t, product=product, w1tw1=w1tw1, wwt_out=wwt_out, loss=loss, kernel_distance=dist,
                      ntk_rel_change=rel, svals=svals, converges_to_saddle=converges_to_saddle.to(torch.bool),
                      final_loss=final_loss, theory=theory, notes=list(notes))
