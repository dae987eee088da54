"""What a W&B run is called and what its config holds: one flat schema for ``lazyrich run`` and ``lazyrich bench``.

Every run's config has the top-level scalars of :data:`SCHEMA_KEYS` that apply to it (``lam``, ``seed``, ``lr``,
``scale``, ``task``, ``depth``, ``hidden``, ``arch``, ``suite``, ``theory``, ``phase``) and
``unit``, beside the flattened run config with the batch lists left out: a W&B run never carries a list of
the batch's λ values or seeds. The group is the sweep (a run folder, all jobs of one ``-m`` sweep, or a suite
folder), the job type ``run`` or ``bench/<suite>``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_KEYS", "flatten", "network_config", "run_group", "run_id", "run_name", "sweep_group", "tags"]

SCHEMA_KEYS = ("lam", "seed", "lr", "scale", "task", "depth", "hidden", "arch", "suite", "theory", "phase")
"""Top-level config keys, the same for run and bench: filter, group and colour by these in W&B."""

_BATCH_LEAVES = {"lam", "lams", "seed", "seeds", "scale", "lr"}
_PATHS = {"task": ("task.name", "experiment.task.name", "pretrain.task.name"),
          "depth": ("model.depth", "experiment.model.depth", "pretrain.model.depth"),
          "hidden": ("model.hidden", "experiment.model.hidden", "pretrain.model.hidden"),
          "theory": ("theory.name", "experiment.theory.name", "pretrain.theory.name", "theory"),
          "suite": ("suite",)}


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → flat ``{"a.b": value}`` (lists kept as values), the form W&B filters and groups on."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def _scalar(value: Any) -> Any:
    """A plain Python scalar (numpy scalars unwrapped, integral floats of ints kept as floats)."""
    return value.item() if hasattr(value, "item") else value


def network_config(config: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    """The flat W&B config of one network (or configuration): ``point`` holds its own scalars (lam, seed, …)."""
    flat = flatten(config)
    out = {k: v for k, v in flat.items() if k.rsplit(".", 1)[-1] not in _BATCH_LEAVES
           and not isinstance(v, list | tuple) and not k.startswith("logger.")}
    for key, paths in _PATHS.items():
        value = next((flat[p] for p in paths if p in flat and not isinstance(flat[p], Mapping)), None)
        if value is not None:
            out[key] = value
    for key, value in point.items():
        value = _scalar(value)
        if isinstance(value, float) and math.isnan(value):
            continue
        out[key] = value
    return out


def sweep_group(folder: str | Path) -> str:
    """The W&B group of a sweep folder: its path from the working directory when below it (``outputs/run/<time>``,
    ``multirun/run/<time>/0``, ``outputs/bench/default/<time>/reversal``), else its last three parts."""
    path = Path(folder).resolve()
    try:
        parts = path.relative_to(Path.cwd().resolve()).parts
    except ValueError:
        parts = path.parts[-3:]
    return "/".join(parts[-4:]) or path.name


def run_group(run_dir: str | Path) -> str:
    """The group of a ``lazyrich run`` folder: its multirun sweep folder for a ``-m`` job (Hydra writes
    ``multirun.yaml`` there), so every job of one sweep shares a group; else the run folder itself."""
    run_dir = Path(run_dir)
    return sweep_group(run_dir.parent if (run_dir.parent / "multirun.yaml").exists() else run_dir)


def run_id(group: str, unit: str, seed: Any = None) -> str:
    """A stable W&B run id from the sweep, the unit and the seed: re-running into the same folder resumes the same
    W&B run instead of creating a duplicate; the same unit in another sweep gets another id."""
    text = f"{group}\x00{unit}\x00{seed}"
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    return f"{digest}-s{seed}" if seed is not None else digest


def run_name(point: Mapping[str, Any]) -> str:
    """A readable run name, e.g. ``lam=-2 seed=0`` or ``arch=funnel lam=8 seed=1``."""
    def text(value: Any) -> str:
        value = _scalar(value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    return " ".join(f"{k}={text(v)}" for k, v in point.items()) or "run"


def tags(config: Mapping[str, Any]) -> list[str]:
    """Tags of a run: its suite, task and architecture, where they apply."""
    return [f"{k}={config[k]}" for k in ("suite", "task", "arch") if config.get(k) is not None]
