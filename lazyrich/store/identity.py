"""A results folder belongs to one configuration: its identity is recorded and a different one is refused.

The identity is the sha256 of the resolved config as sorted JSON, leaving out the keys a resume may change
without changing any result already written: the batch axes (more λ values or seeds add units beside the old
ones) and purely operational settings (progress bars, threads, the W&B mirror, the step budget). It is kept in
``identity.json`` with the config it hashes, so a refusal can say which settings differ.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lazyrich.config.fields import plain
from lazyrich.store.integrity import DONE
from lazyrich.store.storage import full_disk_guard

__all__ = ["BENCH_IGNORED", "IDENTITY_FILE", "RUN_IGNORED", "FolderConflict", "check", "check_run", "claim",
           "identity", "record"]

IDENTITY_FILE = "identity.json"
OPERATIONAL = ("device", "threads", "progress", "name", "logger", "logger.*", "max_steps", "trainer.progress",
               "trainer.max_steps", "trainer.batch_chunk", "shards", "hydra", "hydra.*")
"""Settings that change how a command runs, never a number it writes (a network's numbers do not depend on the
chunking nor on the sharding; see the docs' performance page for what ODE-based theories share within a chunk)."""
RUN_BATCH = ("init.lam", "init.scale", "trainer.lr", "trainer.weight_decay", "trainer.output_scale",
             "trainer.layer_lr", "seed")
RUN_IGNORED = (*RUN_BATCH, *OPERATIONAL)
"""Left out when an unfinished ``lazyrich run`` folder is matched (a re-run rewrites every file, so it may change the
batch); a run folder records its batch (claimed with :data:`OPERATIONAL` left out), and into a finished one only
the same batch may go (:func:`check_run`)."""
BENCH_IGNORED = ("suite.lams", "seed", "suite.*.lams", "suite.*.seeds", *OPERATIONAL)
"""Left out of a ``lazyrich bench`` folder's identity: resuming with more λ values or seeds adds units."""


class FolderConflict(ValueError):
    """The folder holds results of another configuration."""


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out or {prefix[:-1]: {}}
    if isinstance(node, list | tuple):
        return {prefix[:-1]: [_flat(v) if isinstance(v, Mapping) else v for v in node]}
    return {prefix[:-1]: node}


def identity(config: Mapping[str, Any], ignored: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """(hash, the flat dotted-key config it hashes) of ``config`` without the keys matching ``ignored``."""
    return _digest(_flat(plain(config)), ignored)


def _digest(flat: Mapping[str, Any], ignored: Sequence[str]) -> tuple[str, dict[str, Any]]:
    kept = {k: v for k, v in flat.items() if not any(fnmatch.fnmatchcase(k, pattern) for pattern in ignored)}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16], json.loads(text)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 4) -> str:
    changed = [k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>")]
    keys = sorted(changed, key=lambda k: (k not in old or k not in new, k.count("."), k))  # changes first
    shown = [f"{k}: {old.get(k, '<unset>')!r} → {new.get(k, '<unset>')!r}" for k in keys[:limit]]
    return "; ".join(shown) + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")


def check(folder: str | Path, config: Mapping[str, Any], ignored: Sequence[str]) -> None:
    """Raise :class:`FolderConflict` if ``folder`` records an identity other than ``config``'s (never writes)."""
    folder = Path(folder)
    path = folder / IDENTITY_FILE
    if not path.is_file():
        return
    digest, flat = identity(config, ignored)
    try:
        recorded = json.loads(path.read_text())
        old_digest, old_flat = _digest(recorded["config"], ignored)  # the record may hold more keys than compared
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise FolderConflict(f"{path} is unreadable, so {folder} cannot be matched to this configuration; write "
                             f"elsewhere (hydra.run.dir=<new folder>).") from None
    if old_digest != digest:
        raise FolderConflict(f"{folder} holds results of another configuration ({_differences(old_flat, flat)}); "
                             f"re-run with the same settings to resume, or write elsewhere "
                             f"(hydra.run.dir=<new folder>).")


def check_run(folder: str | Path, config: Mapping[str, Any]) -> None:
    """:func:`check` for a ``lazyrich run`` folder: a re-run is rewritten whole, so into a finished folder (``DONE``)
    only the same batch may go — another batch would silently replace its networks."""
    folder = Path(folder)
    finished = (folder / DONE).is_file()
    try:
        check(folder, config, OPERATIONAL if finished else RUN_IGNORED)
    except FolderConflict as err:
        if finished and "another configuration" in str(err):
            check(folder, config, RUN_IGNORED)  # the settings agree: only the batch differs
            raise FolderConflict(str(err).replace("holds results of another configuration",
                                                  "holds a finished run of another batch") + " A run folder is "
                                 "rewritten whole: its networks would be lost.") from None
        raise


def claim(folder: str | Path, config: Mapping[str, Any], ignored: Sequence[str]) -> str:
    """Check ``folder`` (see :func:`check`) and record ``config``'s identity in it; returns the identity."""
    check(folder, config, ignored)
    return record(folder, config, ignored)


def record(folder: str | Path, config: Mapping[str, Any], ignored: Sequence[str]) -> str:
    """Record ``config``'s identity in ``folder`` (already checked by the writer that holds it); returns it."""
    folder = Path(folder)
    digest, flat = identity(config, ignored)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"identity": digest, "config": flat}, indent=1, sort_keys=True) + "\n"
    with full_disk_guard(folder / IDENTITY_FILE):
        (folder / IDENTITY_FILE).write_text(text)
    return digest
