"""S, the top eigenvalue of the Hessian of the training loss at init, per network: gradient descent at step lr
is stable near a point while lr < 2/S (the edge of stability), so ``lr·S/2`` > 1 says a step is too large for
the flow theory to describe it.

The loss is the trainer's, 1/(2P)‖α·W_L φ(… φ(W_1 X))‖² − Y‖² plus (γ/2)Σ‖W_l‖² with weight decay γ; the
Hessian over all weights is formed exactly (torch.func), so this is for small networks (a few hundred weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["ACTIVATIONS", "sharpness"]

ACTIVATIONS = {"none": None, "linear": None, "tanh": torch.tanh, "relu": torch.relu}


def _loss(flat: Tensor, shapes: Sequence[torch.Size], x: Tensor, y: Tensor, activation, alpha: Tensor,
          decay: Tensor) -> Tensor:
    weights, at = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        weights.append(flat[at:at + size].reshape(shape))
        at += size
    h = x
    for l, w in enumerate(weights):
        h = h @ w.mT
        if activation is not None and l < len(weights) - 1:
            h = activation(h)
    return 0.5 * ((alpha * h - y) ** 2).sum() / x.shape[0] + 0.5 * decay * (flat ** 2).sum()


def sharpness(weights: Sequence[Tensor], x: Tensor, y: Tensor, activation: str = "none",
              output_scale: np.ndarray | None = None, weight_decay: np.ndarray | None = None) -> np.ndarray:
    """S (B,) of B networks [W1 (B, N1, Ni), …] on data X (P, Ni), Y (P, No), in float64."""
    batch = weights[0].shape[0]
    shapes = [w.shape[1:] for w in weights]
    flat = torch.cat([w.reshape(batch, -1) for w in weights], -1).to(torch.float64)
    alpha = torch.as_tensor(np.ones(batch) if output_scale is None else output_scale, dtype=torch.float64)
    decay = torch.as_tensor(np.zeros(batch) if weight_decay is None else weight_decay, dtype=torch.float64)
    act = ACTIVATIONS[activation]
    x, y = x.to(torch.float64), y.to(torch.float64)

    def one(f: Tensor, a: Tensor, g: Tensor) -> Tensor:
        return torch.linalg.eigvalsh(torch.func.hessian(_loss)(f, shapes, x, y, act, a, g))[-1]

    return torch.stack([one(flat[b], alpha[b], decay[b]) for b in range(batch)]).numpy()
