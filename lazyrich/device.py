"""Device and dtype resolution: one place decides where tensors live."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads (None or 0: leave torch's setting), then restore it.

    The nets here are small: on a busy machine every extra thread makes each tiny kernel wait for a descheduled
    worker (measured 50× slower per step at 2 threads under load), so the CLI runs with 1 unless told otherwise.
    """
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
