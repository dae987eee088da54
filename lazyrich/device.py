"""Device and dtype resolution: one place decides where tensors live."""

from __future__ import annotations

import torch

DTYPE = torch.float64
"""Default dtype: float64, because every curve is compared with the exact theory."""


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Map ``"auto" | "cpu" | "cuda" | "cuda:N"`` to a ``torch.device``; ``auto`` picks CUDA when present."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but CUDA is not available; use device=cpu or auto.")
    return dev
