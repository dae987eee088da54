"""W&B for atlases: one run per atlas folder, written after the folder is sealed (``lazyrich atlas``, ``logger=``).

The run (job type ``atlas``, group the atlas folder as :func:`lazyrich.tracking.schema.sweep_group` names it, a
stable id, so a re-run into the folder updates the same run) holds the cell table as the ``wandb.Table``
``cells``, every map as a ``wandb.Image`` (``maps/<stem>``, e.g. ``maps/agreement_exact``) and ``atlas.json``
saved beside them. Its summary holds the headline numbers of the atlas's summary as scalar keys
(:func:`headline`: ``agreement/<theory>/fraction``, ``boundary/offset``, …) and its config the axes
(``atlas.x``, ``atlas.x_n``, ``atlas.x_min``, …), the theories, the preset and the base run config flattened.

The units' own runs are never mirrored (the base run config's ``logger`` stays None); every W&B error is a
warning: the atlas folder is the result, W&B only mirrors it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from lazyrich.atlas.runner import RECORD, figures, load_atlas
from lazyrich.atlas.spec import AtlasConfig, Axis
from lazyrich.config.checks import ConfigError
from lazyrich.config.run import WandbConfig, build_group

__all__ = ["JOB_TYPE", "atlas_config", "headline", "log_atlas", "split_logger"]

JOB_TYPE = "atlas"
"""The W&B job type of an atlas's run."""

_LOGGERS = ("wandb", "none")


def split_logger(argv: Sequence[str]) -> tuple[list[str], WandbConfig | None]:
    """(the words without the logger's, the W&B settings they give): ``logger=wandb`` (the default) or
    ``logger=none``, and ``logger.wandb.<key>=<value>`` (``project``, ``mode``, ``tags``, …, as for
    ``lazyrich run``); None for ``logger=none``. A bad word is refused in one line."""
    rest, given, choice = [], {}, "wandb"
    for word in argv:
        key, _, value = word.lstrip("+").partition("=")
        if key == "logger":
            choice = value
        elif key.startswith("logger.wandb."):
            given[key.removeprefix("logger.wandb.")] = _value(key, value)
        elif key.startswith("logger."):
            raise ConfigError(f"{key} is not an atlas key; the W&B settings are logger.wandb.<key> (e.g. "
                              f"logger.wandb.project=NAME), or logger=none for no W&B run.")
        else:
            rest.append(word)
    if choice not in _LOGGERS:
        raise ConfigError(f"logger={choice} is not an atlas logger; choose logger=wandb (one W&B run per atlas, "
                          f"offline unless WANDB_MODE=online) or logger=none.")
    settings = build_group(WandbConfig, given, "logger.wandb")
    return rest, settings if choice == "wandb" else None


def _value(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{key}={text} is not a value, e.g. {key}=NAME or {key}=[a,b].") from None


def headline(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar headline of an atlas summary (``atlas.json``'s ``summary``): ``cells``, ``networks``, ``break_level``,
    ``agreement/<theory>/<number>``, ``boundary/<key>`` and ``ranges/<column>/low|high``; None values and the
    ``breaks`` (keyed by axis values; in the saved ``atlas.json``) left out."""
    out: dict[str, Any] = {k: summary[k] for k in ("cells", "networks", "break_level") if k in summary}
    for theory, numbers in summary.get("agreement", {}).items():
        out.update({f"agreement/{theory}/{k}": v for k, v in numbers.items() if _scalar(v)})
    out.update({f"boundary/{k}": v for k, v in (summary.get("boundary") or {}).items() if _scalar(v)})
    for column, (low, high) in summary.get("ranges", {}).items():
        out.update({f"ranges/{column}/low": low, f"ranges/{column}/high": high})
    return out


def _scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)


def _axis(name: str, axis: Axis) -> dict[str, Any]:
    """An axis as config scalars: its key, count, values as text and, for numbers, its range and spacing."""
    out: dict[str, Any] = {f"atlas.{name}": axis.key, f"atlas.{name}_n": len(axis.values),
                           f"atlas.{name}_values": ", ".join(f"{v:g}" if isinstance(v, float) else str(v)
                                                             for v in axis.values)}
    numbers = [v for v in axis.values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == len(axis.values):
        out.update({f"atlas.{name}_min": min(numbers), f"atlas.{name}_max": max(numbers),
                    f"atlas.{name}_log": axis.log})
    return out


def atlas_config(config: AtlasConfig) -> dict[str, Any]:
    """The run's own config keys: the axes (:func:`_axis`), theories, preset, boundary, sharpness, break level, the
    number of seeds a cell and the base run config's scalars, flattened (``trainer.lr``, ``task.name``, …)."""
    from lazyrich.tracking.schema import flatten

    base = {k: v for k, v in flatten(config.base).items() if not k.startswith("logger")}
    seeds = base.pop("seed", 0)
    out = {k: v for k, v in base.items() if v is None or _scalar(v)}
    out.update({**_axis("x", config.x), **_axis("y", config.y), "atlas.theories": ",".join(config.theories),
                "atlas.preset": config.preset, "atlas.boundary": config.boundary,
                "atlas.sharpness": config.sharpness, "atlas.break_level": config.break_level,
                "n_seeds": len(seeds) if isinstance(seeds, list | tuple) else 1})
    return out


def log_atlas(folder: str | Path, wandb: WandbConfig | None) -> str | None:
    """Mirror the sealed atlas in ``folder`` as one W&B run (module docstring); returns its directory, or None
    when W&B is off (``wandb`` None, not enabled, or mode ``disabled``) or failed (one warning; the folder is
    untouched but for its ``wandb/``)."""
    from lazyrich.tracking.connect import resolve_mode

    if wandb is None or not wandb.enabled or resolve_mode(wandb.mode) == "disabled":
        return None
    folder = Path(folder)
    try:
        return _log(folder, wandb)
    except Exception as err:  # noqa: BLE001 — a W&B failure never costs the atlas
        warnings.warn(f"W&B: could not mirror the atlas in {folder} ({type(err).__name__}: {err}); the atlas folder "
                      f"is complete, re-run the same command to try again.", stacklevel=2)
        return None


def _log(folder: Path, wandb: WandbConfig) -> str | None:
    """The run itself: the verified cell table, the maps and ``atlas.json`` of ``folder``."""
    from lazyrich.tracking.schema import sweep_group
    from lazyrich.tracking.sink import Target, log_table_run

    cells = load_atlas(folder)
    record = cells.attrs.pop("atlas")
    config = AtlasConfig.from_record(record["config"])
    base = {k: v for k, v in config.base.items() if k != "logger"}
    target = Target.from_logger(wandb, group=sweep_group(folder), job_type=JOB_TYPE, config=base, unit="atlas",
                                run_dir=folder, extra=atlas_config(config),
                                theory=config.theories[0] if config.theories else "none")
    return log_table_run(target, "cells", cells.reset_index(drop=True),
                         name=f"atlas {config.preset}: {config.x.key} × {config.y.key}",
                         images={f"maps/{p.stem}": p for p in figures(folder)}, files=[folder / RECORD],
                         summary=headline(record.get("summary", {})))
