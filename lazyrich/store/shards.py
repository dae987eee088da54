"""A run folder split into shards: one run whose networks are written by several processes, each into a part.

Layout of a sharded run folder (``lazyrich run shards=N``)::

    <run>/shards.json          the plan: the batch's size and each shard's folder and network range [start, stop)
    <run>/shards/<k>/          shard k: a unit folder of its own (metrics.parquet, matrices-<start>-<stop>.npz with
                               the batch-wide network indices, summary, config, theory.txt, shard.json, MANIFEST.json,
                               DONE), written by one process under its own lock
    <run>/config.yaml, theory.txt, identity.json, curves.png
    <run>/MANIFEST.json, DONE  written last, by the command that submitted the shards, once every shard verifies

The index is written when the shards start, so a folder with ``shards.json`` is a sharded run from then on; its
shards are its *parts*, never units of their own. Sealing the run (:func:`lazyrich.store.integrity.write_manifest`)
records the sha256 of each part's ``MANIFEST.json`` in the index, which the run's own manifest lists: verifying the
run (:func:`lazyrich.store.integrity.verify_unit`) verifies every part, and a part changed after the run finished
fails it. Readers list a unit's parts with :func:`parts` and never glob into ``shards/`` themselves.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lazyrich.store.storage import full_disk_guard

__all__ = ["INDEX", "RECORD", "SHARDS_DIR", "Shard", "bounds", "clear", "owner", "parts", "plan", "range_problem",
           "read_index", "write_index", "write_record"]

SHARDS_DIR = "shards"
INDEX = "shards.json"
RECORD = "shard.json"
"""Each shard's own record of its range (listed in its manifest)."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of a run: the networks ``start`` … ``stop − 1`` of its batch, written into ``folder``
    (relative to the run folder); ``manifest`` the sha256 of its MANIFEST.json once the run is sealed."""

    index: int
    start: int
    stop: int
    folder: str
    manifest: str | None = None

    @property
    def networks(self) -> str:
        return f"networks {self.start}–{self.stop - 1}"


def bounds(n_networks: int, n_shards: int) -> list[tuple[int, int]]:
    """[start, stop) of each of ``n_shards`` contiguous slices of a batch of ``n_networks``, in batch order, their
    sizes differing by one at most (the first ones larger)."""
    if n_shards < 1 or n_shards > n_networks:
        raise ValueError(f"shards={n_shards} must be between 1 and the batch's {n_networks} networks; lower shards.")
    size, extra = divmod(n_networks, n_shards)
    edges = [0]
    for k in range(n_shards):
        edges.append(edges[-1] + size + (k < extra))
    return list(zip(edges[:-1], edges[1:], strict=True))


def plan(n_networks: int, n_shards: int) -> list[Shard]:
    """The shards of a batch (see :func:`bounds`), in folders ``shards/<k>`` numbered with one width."""
    width = len(str(n_shards - 1))
    return [Shard(k, start, stop, f"{SHARDS_DIR}/{k:0{width}d}")
            for k, (start, stop) in enumerate(bounds(n_networks, n_shards))]


def read_index(run_dir: str | Path) -> list[Shard] | None:
    """The shards that ``run_dir``'s index lists, None for a folder without one (not sharded); a ValueError saying
    so for an index that is not one, or that names a folder outside ``shards/``."""
    path = Path(run_dir) / INDEX
    if not path.is_file():
        return None
    try:
        shards = [Shard(**entry) for entry in json.loads(path.read_text())["shards"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a shard index ({type(err).__name__}: {err}); re-run the command that "
                         f"wrote the folder.") from None
    for shard in shards:
        if Path(shard.folder).parent != Path(SHARDS_DIR) or Path(shard.folder).name in ("", ".", ".."):
            raise ValueError(f"{path} names the folder {shard.folder!r}, not one under {SHARDS_DIR}/; re-run the "
                             f"command that wrote the folder.")
    return shards


def write_index(run_dir: str | Path, shards: Sequence[Shard]) -> Path:
    """Write ``run_dir``'s index (atomically: a reader sees the old one or the new one)."""
    path = Path(run_dir) / INDEX
    tmp = path.with_name(INDEX + ".tmp")
    networks = max((s.stop for s in shards), default=0)
    text = json.dumps({"version": 1, "networks": networks, "shards": [asdict(s) for s in shards]}, indent=1)
    with full_disk_guard(path, tmp):
        tmp.write_text(text + "\n")
    tmp.replace(path)
    return path


def write_record(folder: str | Path, shard: Shard) -> None:
    """A shard's record of what it holds (its index and range), in its own folder."""
    path = Path(folder) / RECORD
    with full_disk_guard(path):
        path.write_text(json.dumps({"index": shard.index, "start": shard.start, "stop": shard.stop}) + "\n")


def range_problem(folder: str | Path, shard: Shard) -> str | None:
    """None if ``folder`` records ``shard``'s range, else one line saying what it holds instead."""
    path = Path(folder) / RECORD
    try:
        held = json.loads(path.read_text())
        start, stop = int(held["start"]), int(held["stop"])
    except FileNotFoundError:
        return f"{RECORD} is missing"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{RECORD} is unreadable"
    if (start, stop) != (shard.start, shard.stop):
        return f"it holds networks {start}–{stop - 1}, this command's shard {shard.index} is {shard.networks}"
    return None


def owner(folder: str | Path) -> Path:
    """The unit that ``folder`` belongs to: the sharded run a shard folder is a part of, else ``folder`` itself."""
    folder = Path(folder)
    run = folder.parent.parent
    if folder.parent.name == SHARDS_DIR and (run / INDEX).is_file():
        return run
    return folder


def parts(unit: str | Path) -> list[Path]:
    """The folders that hold a unit's tables and matrices, in network order: the shards of a sharded run (its
    index), else the unit itself."""
    unit = Path(unit)
    shards = read_index(unit)
    return [unit] if shards is None else [unit / s.folder for s in shards]


def clear(run_dir: str | Path) -> None:
    """Remove a sharded layout from ``run_dir`` (its index and shard folders): the run is rewritten whole."""
    run_dir = Path(run_dir)
    (run_dir / INDEX).unlink(missing_ok=True)
    shutil.rmtree(run_dir / SHARDS_DIR, ignore_errors=True)
