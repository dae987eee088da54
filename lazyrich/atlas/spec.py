"""What an atlas is: two axes over run-config keys, the base run config, the theories to hold it to, and where
it goes; parsed from ``key=value`` words (the ``lazyrich atlas`` command) and checked once, here.

An axis is a dotted run-config key and its values (``init.lam=[-4,-1,0,1,4]``, ``init.scale=logspace(-3,0,7)``).
Axes that are batch axes of a run (:data:`~lazyrich.atlas.spec.BATCH_AXES`) are trained as ONE batch; any other
key (``model.depth``, ``model.activation``, ``model.hidden``, ``task.name``) makes one run, a *unit*, per value. Seeds
are not an axis:
every cell is the mean over ``seed`` with an interval.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from lazyrich.atlas.summary import BREAK_LEVEL
from lazyrich.config.checks import ConfigError

__all__ = ["ATLAS_KEYS", "BATCH_AXES", "DEFAULT_BASE", "GROUPS", "PRESETS", "AtlasConfig", "Axis", "is_log_spaced",
           "parse_atlas", "parse_atlases", "units_of", "values_of"]

BATCH_AXES: dict[str, str] = {"init.lam": "lam", "init.scale": "scale", "trainer.lr": "lr",
                              "trainer.weight_decay": "weight_decay", "trainer.output_scale": "output_scale"}
"""Run-config keys that are batch axes of one run, and the metadata column each becomes."""

DEFAULT_BASE: dict[str, Any] = {
    "task": {"name": "hierarchy"},
    "init": {"kind": "balanced", "align": False, "lam": [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0],
             "scale": [float(v) for v in np.logspace(-2, 1, 7)]},
    "trainer": {"lr": 0.002, "t_max": 10.0, "n_log": 101, "progress": False},
    "seed": [0, 1],
    "logger": None,
}
"""The default atlas: λ × init scale of a two-layer linear net on the hierarchy task (a random product, so λ = 0
starts near the saddle the exact theory also predicts), at a small step (lr 0.002: GD within 1% of the flow in
time to learn), two seeds a cell."""

ATLAS_KEYS = ("x", "y", "theories", "out", "preset", "boundary", "break_level", "sharpness", "logger")
"""The atlas's own keys; every other ``key=value`` word sets a run-config key. ``logger`` (and
``logger.wandb.<key>``) is the command's W&B choice (:func:`lazyrich.atlas.tracking.split_logger`), never part of
the atlas's record or of its runs' configs."""


@dataclass(frozen=True)
class Axis:
    """One axis of the atlas: a run-config key and its values, in order."""

    key: str
    values: tuple[Any, ...]

    @property
    def batch(self) -> bool:
        """Whether the axis is a batch axis of a run (trained in one batch) rather than one run per value."""
        return self.key in BATCH_AXES

    @property
    def column(self) -> str:
        """The column of the cell table that holds the axis's value (the key itself)."""
        return self.key

    @property
    def log(self) -> bool:
        """Whether the values are log-spaced (drawn on a log axis)."""
        return is_log_spaced(self.values)


@dataclass
class AtlasConfig:
    """A whole atlas: two axes, the base run config (without the axes), the theories whose agreement is mapped,
    the level of final kernel distance that separates lazy from rich (None: halfway across the theory's map), the
    deviation from a theory that counts as breaking it (the summary's ``breaks``) and whether to measure the top
    Hessian eigenvalue S of the loss at init (the breaks preset)."""

    x: Axis
    y: Axis
    base: dict[str, Any]
    theories: tuple[str, ...] = ("exact", "lazy")
    boundary: float | None = None
    sharpness: bool = False
    break_level: float = BREAK_LEVEL
    preset: str = "default"
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The atlas as plain data (what ``atlas.json`` records; a re-run into the folder must match it)."""
        out = dataclasses.asdict(self)
        out["x"], out["y"] = ({"key": a.key, "values": list(a.values)} for a in (self.x, self.y))
        out["theories"] = list(self.theories)
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AtlasConfig:
        """The atlas a :meth:`~lazyrich.atlas.spec.AtlasConfig.record` describes."""
        data = dict(record)
        data["x"], data["y"] = (Axis(a["key"], tuple(a["values"])) for a in (data["x"], data["y"]))
        data["theories"] = tuple(data["theories"])
        return cls(**data)


def is_log_spaced(values: Sequence[Any]) -> bool:
    """True for three or more positive numbers in a geometric progression (ratio ≠ 1, to 1e-6)."""
    if len(values) < 3 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return False
    v = np.asarray(values, dtype=float)
    if not (v > 0).all():
        return False
    ratios = v[1:] / v[:-1]
    return bool(abs(math.log(ratios[0])) > 1e-9 and np.allclose(ratios, ratios[0], rtol=1e-6))


def values_of(key: str, text: str) -> list[Any]:
    """The values of an axis word: a YAML list ``[a, b]``, ``logspace(a, b, n)`` (10^a … 10^b),
    ``linspace(a, b, n)`` or comma-separated values; a ConfigError in one line otherwise."""
    text = text.strip()
    for name, fn in (("logspace", np.logspace), ("linspace", np.linspace)):
        if text.startswith(name + "("):
            try:
                a, b, n = (float(p) for p in text[len(name) + 1:].rstrip(")").split(","))
            except ValueError:
                raise ConfigError(f"{key}={text} must read {name}(start, stop, count), e.g. {key}={name}(-3,0,7)."
                                  ) from None
            if n < 2 or n != int(n):
                raise ConfigError(f"{key}={text}: the count must be an integer ≥ 2.")
            return [float(v) for v in fn(a, b, int(n))]
    try:
        value = yaml.safe_load(text if not ("," in text and not text.startswith("[")) else f"[{text}]")
    except yaml.YAMLError:
        raise ConfigError(f"{key}={text} is not a value or a list, e.g. {key}=[0.1,1] or {key}=logspace(-3,0,7)."
                          ) from None
    return value if isinstance(value, list) else [value]


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part} is a value, not a group; drop the key or fix its spelling.")
        node = child
    node[parts[-1]] = value


def _get(tree: Mapping[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _words(argv: Sequence[str]) -> dict[str, str]:
    words = {}
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ConfigError(f"{word!r} is not key=value; e.g. lazyrich atlas x=init.lam y=trainer.lr "
                              f"trainer.lr=logspace(-3,-1,5).")
        words[key.lstrip("+")] = value
    return words


def _axis(base: dict[str, Any], key: str, name: str) -> Axis:
    if key == "seed":
        raise ConfigError(f"{name}=seed: seeds are averaged in every cell, not an axis; set seed=[0,1,2] and pick "
                          f"another {name} (e.g. {name}=init.lam).")
    values = _get(base, key)
    if any(isinstance(v, list | tuple | dict) for v in (values if isinstance(values, list | tuple) else [])):
        raise ConfigError(f"{name}={key}: an axis takes single values (numbers or names), not lists such as "
                          f"trainer.layer_lr's; run one atlas per setting ({key}=[1,2] out=<folder>) and line them "
                          f"up with `lazyrich compare <folder> <folder> --out <dir>`.")
    if values is None:
        raise ConfigError(f"{name}={key} has no values: give them too, e.g. {key}=[a,b,c] or "
                          f"{key}=logspace(-3,0,7).")
    values = list(values) if isinstance(values, list | tuple) else [values]
    if len(values) < 2:
        raise ConfigError(f"{name}={key} has one value ({values[0]!r}); an axis needs two or more, e.g. "
                          f"{key}=[{values[0]},…].")
    if len(set(map(str, values))) != len(values):
        raise ConfigError(f"{key}={values} repeats a value; give each value once.")
    return Axis(key, tuple(values))


def parse_atlas(argv: Sequence[str]) -> AtlasConfig:
    """The :class:`AtlasConfig` of ``key=value`` words: ``preset=`` (:data:`~lazyrich.atlas.spec.PRESETS`), the axes
    ``x=`` and ``y=`` (run-config keys, defaults ``init.lam`` and ``init.scale``) whose values are set like any
    other key, ``theories=[exact,lazy]``, ``boundary=`` (a kernel distance), and run-config keys
    (``task.name=…``, ``trainer.t_max=…``, ``seed=[0,1,2]``). ``out=`` is the command's and is returned in
    ``extra``. A bad word is refused in one line."""
    words = _words(argv)
    preset = words.pop("preset", "default")
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset} is not an atlas preset; choose one of "
                          f"{', '.join([*PRESETS, *GROUPS])}.")
    made = copy.deepcopy(PRESETS[preset])
    base = made.pop("base")
    own = {k: words.pop(k) for k in list(words) if k in ATLAS_KEYS}
    for key, text in words.items():
        _set(base, key, values_of(key, text) if key in (own.get("x"), own.get("y"), made["x"], made["y"])
             or text.startswith(("logspace(", "linspace(", "[")) else yaml.safe_load(text))
    x, y = own.get("x", made["x"]), own.get("y", made["y"])
    if x == y:
        raise ConfigError(f"x and y are both {x}; pick two different keys (e.g. x=init.lam y=init.scale).")
    _unswept(base, (made["x"], made["y"]), (x, y), words)
    theories = values_of("theories", own["theories"]) if "theories" in own else made["theories"]
    boundary = float(own["boundary"]) if "boundary" in own else None
    sharp = own.get("sharpness", str(made.get("sharpness", False))).lower() in ("true", "1", "yes")
    config = AtlasConfig(_axis(base, x, "x"), _axis(base, y, "y"), base, tuple(str(t) for t in theories),
                         boundary=boundary, sharpness=sharp, preset=preset,
                         break_level=_break_level(own.get("break_level", made.get("break_level", BREAK_LEVEL))),
                         extra={"out": own["out"]} if "out" in own else {})
    _check_theories(config.theories)
    from lazyrich.config.run import resolve_run

    for _, _, run in units_of(config):  # every unit's run config checked before anything is written
        resolve_run(run)
    return config


def _break_level(text: object) -> float:
    """``break_level=``: a relative deviation in (0, 1), e.g. 0.05 (5%) or 1e-3."""
    try:
        level = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        level = float("nan")
    if not 0 < level < 1:
        raise ConfigError(f"break_level={text} must be a relative deviation between 0 and 1, e.g. break_level=0.05 "
                          f"(5%) or break_level=1e-3.")
    return level


def units_of(config: AtlasConfig) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(unit id, the unit's values of the non-batch axes, its run config) for every unit of the atlas; the id is
    the first 12 hex digits of the sha1 of the run config as sorted JSON (the same atlas, the same ids)."""
    unit_axes = [a for a in (config.x, config.y) if not a.batch]
    for values in itertools.product(*(a.values for a in unit_axes)):
        run = copy.deepcopy(config.base)
        given = dict(zip((a.key for a in unit_axes), values, strict=True))
        for key, value in given.items():
            _set(run, key, value)
        run.setdefault("theory", {}).setdefault("name", config.theories[0] if config.theories else "none")
        text = json.dumps(run, sort_keys=True, default=str)
        yield hashlib.sha1(text.encode()).hexdigest()[:12], given, run


def _unswept(base: dict[str, Any], preset_axes: Sequence[str], axes: Sequence[str], given: Mapping[str, str]) -> None:
    """A key the preset sweeps but this atlas does not falls back to the run's default (unless given); a batch
    axis of the run given several values without being an axis of the atlas is refused (its values would be
    averaged into the cells unseen)."""
    for key in preset_axes:
        if key not in axes and key not in given:
            *parents, last = key.split(".")
            node = _get(base, ".".join(parents)) if parents else base
            if isinstance(node, dict):
                node.pop(last, None)
    for key in BATCH_AXES:
        value = _get(base, key)
        if key not in axes and isinstance(value, list | tuple) and len(value) > 1:
            raise ConfigError(f"{key} has {len(value)} values but is not an axis of this atlas (x={axes[0]}, "
                              f"y={axes[1]}); give it one value, or make it an axis (x={key} or y={key}).")


def parse_atlases(argv: Sequence[str]) -> list[AtlasConfig]:
    """The atlases of ``key=value`` words: one, or each of a preset group (``preset=breaks``:
    :data:`~lazyrich.atlas.spec.GROUPS`), the other words applied to every one."""
    words = [w for w in argv if not w.startswith("preset=")]
    preset = next((w.split("=", 1)[1] for w in argv if w.startswith("preset=")), "default")
    names = GROUPS.get(preset, (preset,))
    return [parse_atlas([*words, f"preset={name}"]) for name in names]


def _check_theories(names: Sequence[str]) -> None:
    from lazyrich.theory.registry import available_theories

    known = available_theories()
    for name in names:
        if name not in known:
            raise ConfigError(f"theories: {name!r} is not a registered theory; choose from {', '.join(known)}.")


_SCALES = [float(v) for v in np.logspace(-3, 0, 7)]

PRESETS: dict[str, dict[str, Any]] = {
    "default": {"base": DEFAULT_BASE, "x": "init.lam", "y": "init.scale", "theories": ["exact", "lazy"]},
    "breaks-activation": {"base": {**DEFAULT_BASE, "model": {"activation": ["none", "tanh", "relu"]},
                                   "init": {"kind": "balanced", "lam": 4.0, "scale": _SCALES}},
                          "x": "model.activation", "y": "init.scale", "theories": ["exact"]},
    "breaks-tanh": {"base": {**DEFAULT_BASE, "model": {"activation": "tanh"},
                             "init": {"kind": "balanced", "lam": [-4.0, 0.0, 4.0, 8.0, 16.0, 32.0, 64.0],
                                      "scale": _SCALES}},
                    "x": "init.lam", "y": "init.scale", "theories": ["exact"], "break_level": 1e-3},
    "breaks-lr": {"base": {**DEFAULT_BASE, "init": {"kind": "balanced", "lam": [0.0, 1.0, 4.0, 8.0], "scale": 0.1},
                           "trainer": {**DEFAULT_BASE["trainer"],
                                       "lr": [float(v) for v in np.logspace(-3, 0.5, 8)]}},
                  "x": "trainer.lr", "y": "init.lam", "theories": ["exact"], "sharpness": True},
    "breaks-decay": {"base": {**DEFAULT_BASE, "init": {"kind": "balanced", "lam": [0.5, 2.0, 8.0], "scale": 0.1},
                              "trainer": {**DEFAULT_BASE["trainer"],
                                          "weight_decay": [0.0, *(float(v) for v in np.logspace(-3, -0.5, 6))]}},
                     "x": "trainer.weight_decay", "y": "init.lam", "theories": ["exact", "ode"]},
}
"""Named atlases: ``default`` (λ × init scale, linear, small step) and the three maps of where the linear theory
breaks: ``breaks-activation`` (tanh and ReLU × init scale, at λ = 4), ``breaks-tanh`` (tanh, λ × init scale:
where it stays within 0.1% of the linear theory, so ``break_level`` 1e-3), ``breaks-lr`` (the GD step up to past 2/S,
with S at init logged, × λ) and ``breaks-decay`` (weight decay × λ: λ̂(t) against its law λ0·e^{−2γt})."""

GROUPS: dict[str, tuple[str, ...]] = {"breaks": ("breaks-activation", "breaks-tanh", "breaks-lr", "breaks-decay")}
"""Presets that name several atlases, run one after the other into sub-folders of ``out``."""
