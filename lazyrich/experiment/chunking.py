"""How many networks to train, predict and write at once: ``trainer.batch_chunk``, or a size that fits memory.

A sweep larger than one chunk runs chunk by chunk (each network's numbers do not depend on its neighbours, so
the chunking changes nothing but the peak memory). ``auto`` sizes a chunk from an estimate of what one
network costs at its peak (the theory's (T, Ni + No, Ni + No) Gram blocks and their temporaries, its rows of
the long table, its matrices) and a budget of a quarter of the available memory, capped at
:data:`MAX_BUDGET` so that chunks stay cache-friendly and a run's footprint does not grow with the machine.

Under ``auto`` the trainer also takes several chunks at once (:func:`training_blocks`): a GD step of a few
hundred small networks costs mostly its fixed overhead, while the theory's per-chunk peak is what bounds a chunk.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

from lazyrich.config.run import TrainerConfig

__all__ = ["BLOCK_BUDGET", "MAX_BUDGET", "MIN_CHUNK", "TRAIN_BLOCK", "auto_chunk", "available_memory", "chunk_size",
           "per_network_bytes", "release_memory", "run_chunk", "trajectory_bytes", "training_blocks"]

MAX_BUDGET = 384 * 2**20
"""Bytes one chunk may use at its peak under ``auto``."""

MIN_CHUNK = 64
"""``auto`` never goes below this many networks: below it a GD step is overhead-bound (README, Scaling)."""


TRAIN_BLOCK = 1024
"""Under ``auto``, the most networks trained at once: 1000 steps of 4096 two-layer nets of width 8 took 3.3–3.7 s
in blocks of 1024 on this project's 2-core reference machine, 3.9–4.3 s in chunks of 256 and 3.9–5.0 s as one
batch (whose working set leaves the cache)."""

BLOCK_BUDGET = 64 * 2**20
"""Bytes the trajectories of one training block may hold (up to three blocks are alive at once: one being
trained, one being predicted and written, one waiting for it: :mod:`~lazyrich.experiment.overlap`)."""


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable of /proc/meminfo), else 4 GiB."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def per_network_bytes(n_in: int, n_out: int, n_log: int, n_matrix: int, n_phases: int = 1) -> int:
    """Estimated peak bytes per network: theory Grams with ~6 temporaries of their size, ~64 float columns of
    the long table, and the kept matrices three times (simulation, theory, the written copy)."""
    n = n_in + n_out
    theory = 6 * n * n * n_log
    table = 64 * n_log
    matrices = 3 * n_matrix * (n_in * n_out + n_in * n_in + n_out * n_out)
    return 8 * n_phases * (theory + table + matrices)


def trajectory_bytes(n_in: int, n_out: int, n_log: int, n_matrix: int, n_phases: int = 1) -> int:
    """Bytes one network's training record holds: ~16 + min(Ni, No) metric columns over the log points, and
    W2W1, W1ᵀW1 and W_LW_Lᵀ at the matrix points."""
    scalars = (16 + min(n_in, n_out)) * n_log
    matrices = n_matrix * (n_in * n_out + n_in * n_in + n_out * n_out)
    return 8 * n_phases * (scalars + matrices)


def training_blocks(n_batch: int, chunk: int, *, auto: bool, per_network: int) -> list[range]:
    """The networks trained at once, each block a whole number of chunks of ``chunk``: one chunk each unless
    ``auto``; under ``auto`` up to :data:`TRAIN_BLOCK` networks, their records (``per_network`` bytes each,
    :func:`trajectory_bytes`) within :data:`BLOCK_BUDGET`. The first and the last block are one chunk, so that
    the predicting and writing of chunks (on a spare core, :mod:`~lazyrich.experiment.overlap`) starts early and
    ends soon after the training."""
    chunks = [range(s, min(s + chunk, n_batch)) for s in range(0, n_batch, chunk)]
    per_block = min(TRAIN_BLOCK, BLOCK_BUDGET // max(1, per_network)) // chunk
    if not auto or per_block <= 1 or len(chunks) <= 2:
        return chunks
    middle = chunks[1:-1]
    grouped = [range(middle[i].start, middle[min(i + per_block, len(middle)) - 1].stop)
               for i in range(0, len(middle), per_block)]
    return [chunks[0], *grouped, chunks[-1]]


def auto_chunk(n_in: int, n_out: int, n_log: int, n_matrix: int, n_phases: int = 1,
               available: int | None = None) -> int:
    """Networks per chunk under ``auto`` (a power of two, at least :data:`MIN_CHUNK`)."""
    budget = min(MAX_BUDGET, (available_memory() if available is None else available) // 4)
    fits = max(1, budget // per_network_bytes(n_in, n_out, n_log, n_matrix, n_phases))
    return max(MIN_CHUNK, 1 << (fits.bit_length() - 1))


def chunk_size(value: object, n_batch: int, **shape: int) -> int:
    """The chunk size for a batch of ``n_batch``: ``value`` (a positive int), or ``auto``/None (see module)."""
    if value in (None, "auto"):
        return min(n_batch, auto_chunk(**shape))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"trainer.batch_chunk must be a positive int or 'auto', got {value!r}.")
    return min(n_batch, value)


def run_chunk(trainer: TrainerConfig, n_batch: int, *, n_in: int, n_out: int, n_phases: int = 1) -> int:
    """The chunk size a run of ``n_batch`` networks writes in: ``trainer.batch_chunk`` for the run's widths, log
    points and kept matrices (:func:`chunk_size`)."""
    return chunk_size(trainer.batch_chunk, n_batch, n_in=n_in, n_out=n_out, n_log=trainer.n_log,
                      n_matrix=min(trainer.n_matrix, trainer.n_log), n_phases=n_phases)


@functools.cache
def _libc_trim():
    """glibc's malloc_trim, or None where the C library has none (macOS, musl, Windows)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def release_memory() -> None:
    """Hand the freed heap back to the system between chunks (glibc only; elsewhere nothing to do).

    Each chunk frees tens of MB of tensors and tables; glibc keeps such freed blocks in its heap, and small
    long-lived objects allocated between them stop it from shrinking, so without this the resident size grew
    by ~12 kB per network over a 65 536-network run (measured) instead of staying at one chunk's footprint.
    """
    trim = _libc_trim()
    if trim is not None:
        trim(0)
