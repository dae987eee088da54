"""Typed schemas of the run config groups ``init``, ``model``, ``trainer`` and ``logger``: one home per default.

Each group is a dataclass whose field defaults are THE defaults of the project and whose field metadata holds
the key's meaning (the docs' config reference reads it). The CLI's YAML options pick values; the Python API
(:func:`lazyrich.experiment.run_experiment`) takes a plain mapping, which :func:`fill_run` completes from these
defaults and checks once, at the boundary: an unknown key or a bad value is refused in one line naming the key.

Task and theory parameters are not here: tasks and theories are open registries (plug-ins add them), so a
task's parameters default to its generator's signature and a theory's to its registered class.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lazyrich.checks import ConfigError

__all__ = ["SCHEMAS", "STORED", "InitConfig", "LoggerConfig", "ModelConfig", "TheoryConfig", "TrainerConfig",
           "WandbConfig", "defaults", "fill_group", "fill_run", "meanings"]


def _doc(default: Any, meaning: str) -> Any:
    """A field with ``default`` (copied for lists) and its ``meaning`` in the metadata."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"doc": meaning})
    return field(default=default, metadata={"doc": meaning})


@dataclass
class InitConfig:
    """Initial weights of every network of the batch (``init=balanced|aligned|gaussian``)."""

    kind: str = _doc("balanced", "which init: `balanced` (λ-balanced) or `gaussian` (independent layers)")
    lam: Any = _doc(0.0, "float or list (batch axis); λ > 0: output layer larger")
    scale: Any = _doc(0.1, "size of the initial product W2W1 (float or list: batch axis)")
    align: bool = _doc(False, "true: product = scale·Ũ_mṼ_mᵀ in the task's singular basis (Saxe 2014)")
    perturb: float = _doc(0.0, "δ > 0 adds δ·N(0, 1) to every weight entry: an explicit seed for leaving a "
                               "λ = 0 saddle")
    lecun: bool = _doc(True, "gaussian init only: scale each layer by 1/√fan_in (LeCun), so `scale` is the "
                             "per-layer gain")


@dataclass
class ModelConfig:
    """The network ŷ = W_L ⋯ W_1 x, no biases (``model=linear|deep|relu|tanh``)."""

    depth: int = _doc(2, "number of layers L ≥ 2")
    hidden: int | None = _doc(None, "hidden width; null = min(n_in, n_out), the width the exact theory needs")
    activation: str = _doc("none", "none | relu | tanh (comparison runs; no theory)")


@dataclass
class TrainerConfig:
    """Gradient descent on the batch; t = step·lr, every network logs on one t grid (``trainer=gd|sgd``)."""

    lr: Any = _doc(0.01, "float or list (batch axis)")
    t_max: float = _doc(10.0, "train until t = t_max")
    n_log: int = _doc(101, "logged points on the t grid")
    spacing: str = _doc("linear", "linear | log")
    n_matrix: int = _doc(21, "of which this many also keep W2W1, W1ᵀW1, W_LW_Lᵀ")
    batch_size: int | None = _doc(None, "null = full batch; an int = minibatch SGD")
    check_every: int = _doc(10, "divergence check period, in steps")
    batch_chunk: Any = _doc("auto", "networks trained, predicted and written at once; auto: sized from "
                                    "available memory")
    matrix_seeds: int | None = _doc(1, "the run folder keeps matrices for the first this-many seeds of each "
                                       "configuration (null: all)")
    progress: bool = _doc(True, "tqdm progress bar during training")
    dtype: str = _doc("float64", "float64 | float32: the trainer trains in this dtype; theories stay float64 "
                                 "(a float32 run warns)")
    max_steps: int | None = _doc(None, "refuse a run past this many GD steps per network per phase (null: "
                                       "10⁷); raise it on purpose")


@dataclass
class WandbConfig:
    """W&B mirror of the local tables (offline unless WANDB_MODE says otherwise)."""

    enabled: bool = _doc(True, "mirror the run to W&B (false: local files only)")
    project: str = _doc("lazyrich", "W&B project")
    entity: str | None = _doc(None, "W&B entity (user or team); null: your default")
    group: str | None = _doc(None, "default: the sweep folder (outputs/run/<time>, multirun/run/<time>/<job>, "
                                   "…/<suite>)")
    layout: str = _doc("auto", "auto: one W&B run per network unless that costs > 20% of the time | network | "
                               "configuration")
    tags: list = _doc([], "W&B tags added to every run")


@dataclass
class LoggerConfig:
    """Where a run is mirrored besides its folder (``logger=wandb|none``)."""

    wandb: WandbConfig = field(default_factory=WandbConfig, metadata={"doc": "W&B settings"})


@dataclass
class TheoryConfig:
    """The theory overlaid on the curves (``theory=<registered name>|auto|none``). Theories are an open registry:
    a plug-in theory's own keys pass through unchecked."""

    name: str = _doc("auto", "which theory predicts the curves: a registered theory, `auto` (the most exact that "
                             "applies) or `none`")


SCHEMAS: dict[str, type] = {"init": InitConfig, "model": ModelConfig, "trainer": TrainerConfig,
                            "logger": LoggerConfig, "theory": TheoryConfig}
"""Schema of each typed group, by group name."""

STORED: dict[str, type] = {group: SCHEMAS[group] for group in ("init", "model", "trainer")}
"""Groups whose YAML options extend their schema in Hydra's ConfigStore (``defaults: [/schema/<group>@_here_]``),
so that the YAML states only what an option changes. ``logger`` stays self-contained YAML: ``bench`` composes it
without the CLI's registrations."""

_CHOICES = {"init.kind": ("balanced", "gaussian"), "model.activation": ("none", "linear", "relu", "tanh"),
            "trainer.spacing": ("linear", "log"), "trainer.dtype": ("float64", "float32", "float16", "bfloat16")}
_INTS = {"model.depth": 2, "trainer.n_log": 2, "trainer.n_matrix": 1, "trainer.check_every": 1,
         "model.hidden": 1, "trainer.batch_size": 1, "trainer.matrix_seeds": 0, "trainer.max_steps": 1}


def defaults(group: str) -> dict[str, Any]:
    """The schema defaults of ``group`` as a plain nested dict."""
    return dataclasses.asdict(SCHEMAS[group]())


def meanings(group: str, prefix: str = "") -> dict[str, str]:
    """{dotted key: meaning} of every field of ``group``'s schema (nested schemas flattened)."""
    return _meanings(SCHEMAS[group], prefix)


def _meanings(schema: type, prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    instance = schema()
    for f in dataclasses.fields(schema):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_meanings(type(value), f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = f.metadata.get("doc", "")
    return out


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _check_value(key: str, value: Any) -> None:
    if key in _CHOICES and value is not None and str(value) not in _CHOICES[key]:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(_CHOICES[key])}; pick one of those.")
    if key in _INTS and value is not None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < _INTS[key]:
            raise ConfigError(f"{key}={value!r} must be an integer ≥ {_INTS[key]}"
                              f"{' (or null)' if key in ('model.hidden', 'trainer.batch_size') else ''}; "
                              f"e.g. {key}={max(_INTS[key], 2)}.")


def fill_group(group: str, given: Mapping[str, Any] | Any | None) -> dict[str, Any]:
    """``given`` (a mapping, a schema instance or None) completed with the defaults of ``group``, as a plain
    dict; refuses an unknown key or a bad value with :class:`~lazyrich.checks.ConfigError` naming the key."""
    if dataclasses.is_dataclass(given) and not isinstance(given, type):
        given = dataclasses.asdict(given)
    given = dict(_plain(given) or {})
    out = defaults(group)
    for key, value in given.items():
        if key not in out:
            raise ConfigError(f"{group}.{key} is not a key of the {group} config; valid keys: "
                              f"{', '.join(sorted(out))}.")
        if isinstance(out[key], dict) and isinstance(_plain(value), Mapping):
            extra = sorted(set(_plain(value)) - set(out[key]))
            if extra:
                raise ConfigError(f"{group}.{key}.{extra[0]} is not a key of the {group} config; valid keys: "
                                  f"{', '.join(sorted(out[key]))}.")
            out[key].update(_plain(value))
            continue
        _check_value(f"{group}.{key}", value)
        out[key] = _plain(value)
    return out


def fill_run(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A ``lazyrich run`` config (mapping or DictConfig) with its ``init``, ``model`` and ``trainer`` groups
    filled and checked against their schemas, and ``theory.name`` defaulting to :class:`TheoryConfig`'s; other
    keys are passed through unchanged. The ``logger`` group is checked but not filled (no logger given: nothing
    is mirrored)."""
    out = dict(cfg)
    for group in ("init", "model", "trainer"):
        out[group] = fill_group(group, cfg.get(group))
    if cfg.get("logger") is not None:
        fill_group("logger", cfg.get("logger"))
    theory = cfg.get("theory")
    if dataclasses.is_dataclass(theory) and not isinstance(theory, type):
        theory = dataclasses.asdict(theory)
    out["theory"] = {**dataclasses.asdict(TheoryConfig()), **dict(_plain(theory) or {})}
    return out
