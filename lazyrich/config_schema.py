"""Typed schemas of the run config groups ``init``, ``model``, ``trainer`` and ``logger``: one home per default.

Each group is a dataclass whose field defaults are THE defaults of the project and whose field metadata holds
the key's meaning (the docs' config reference reads it) and its check. The CLI's YAML options pick values; the
Python API (:func:`lazyrich.experiment.run_experiment`) takes a plain mapping, which :func:`fill_run` completes
from these defaults and checks once, at the boundary: an unknown key or a bad value is refused in one line naming
the key. The suites' parameters have their schemas in :mod:`lazyrich.suite_schema`, built the same way.

Task and theory parameters are not here: tasks and theories are open registries (plug-ins add them), so a
task's parameters default to its generator's signature and a theory's to its registered class.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lazyrich import checks
from lazyrich.checks import ConfigError

__all__ = ["BOOL", "FINITE", "FLOATS", "MAPPING", "POSITIVE", "SCHEMAS", "SEEDS", "STORED", "TEXT", "Check",
           "InitConfig", "LoggerConfig", "ModelConfig", "TheoryConfig", "TrainerConfig", "WandbConfig", "at_least",
           "defaults", "defaults_of", "fill_group", "fill_run", "fill_schema", "mapping_keys", "meanings", "one_of",
           "plain", "spec", "store_schemas"]

Check = Callable[[str, Any], Any]
"""A field's check: ``check(dotted key, value)`` returns the value (lists normalised) or raises a one-line
:class:`~lazyrich.checks.ConfigError` that names the key and what is wrong (:func:`fill_schema` adds the default)."""


def spec(default: Any, meaning: str, check: Check | None = None) -> Any:
    """A field with ``default`` (copied for lists and dicts), its ``meaning`` and its ``check`` in the metadata."""
    metadata = {"doc": meaning, **({"check": check} if check is not None else {})}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def POSITIVE(key: str, value: Any) -> Any:  # noqa: N802 — a constant-like check, named as it reads in a field
    """A finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key}={value!r} must be a positive number.")
    return value


def FINITE(key: str, value: Any) -> Any:  # noqa: N802
    """A finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} must be a finite number.")
    return value


def FLOATS(key: str, value: Any) -> list[float]:  # noqa: N802
    """A non-empty list of finite numbers (one number becomes a list of one)."""
    return checks.floats(key, value)


def SEEDS(key: str, value: Any) -> list[int]:  # noqa: N802
    """A non-empty list of seeds (integers in [0, 2**63 - 1])."""
    return checks.seeds(key, value)


def MAPPING(key: str, value: Any) -> Any:  # noqa: N802
    """A mapping (``{name: …, param: …}``)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}={value!r} must be a mapping, e.g. {key}={{name: hierarchy}}.")
    return value


def BOOL(key: str, value: Any) -> Any:  # noqa: N802
    """true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be true or false.")
    return value


def TEXT(key: str, value: Any) -> Any:  # noqa: N802
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}={value!r} must be a non-empty string.")
    return value


def one_of(*choices: str | None) -> Check:
    """A check: the value is one of ``choices`` (None among them: null is allowed)."""
    named = ", ".join("null" if c is None else c for c in choices)

    def check(key: str, value: Any) -> Any:
        if value not in choices or isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} is not one of {named}; pick one of those.")
        return value

    return check


def at_least(low: int, nullable: bool = False) -> Check:
    """A check: an integer ≥ ``low`` (or null if ``nullable``)."""

    def check(key: str, value: Any) -> Any:
        if value is None and nullable:
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ConfigError(f"{key}={value!r} must be an integer ≥ {low}{' (or null)' if nullable else ''}.")
        return value

    return check


@dataclass
class InitConfig:
    """Initial weights of every network of the batch (``init=balanced|aligned|gaussian``)."""

    kind: str = spec("balanced", "which init: `balanced` (λ-balanced) or `gaussian` (independent layers)",
                     one_of("balanced", "gaussian"))
    lam: Any = spec(0.0, "float or list (batch axis); λ > 0: output layer larger")
    scale: Any = spec(0.1, "size of the initial product W2W1 (float or list: batch axis)")
    align: bool = spec(False, "true: product = scale·Ũ_mṼ_mᵀ in the task's singular basis (Saxe 2014)")
    perturb: float = spec(0.0, "δ > 0 adds δ·N(0, 1) to every weight entry: an explicit seed for leaving a "
                               "λ = 0 saddle")
    lecun: bool = spec(True, "gaussian init only: scale each layer by 1/√fan_in (LeCun), so `scale` is the "
                             "per-layer gain")


@dataclass
class ModelConfig:
    """The network ŷ = W_L ⋯ W_1 x, no biases (``model=linear|deep|relu|tanh``)."""

    depth: int = spec(2, "number of layers L ≥ 2", at_least(2))
    hidden: int | None = spec(None, "hidden width; null = min(n_in, n_out), the width the exact theory needs",
                               at_least(1, nullable=True))
    activation: str = spec("none", "none | relu | tanh (comparison runs; no theory)",
                           one_of("none", "linear", "relu", "tanh"))


@dataclass
class TrainerConfig:
    """Gradient descent on the batch; t = step·lr, every network logs on one t grid (``trainer=gd|sgd``)."""

    lr: Any = spec(0.01, "float or list (batch axis)")
    t_max: float = spec(10.0, "train until t = t_max")
    n_log: int = spec(101, "logged points on the t grid", at_least(2))
    spacing: str = spec("linear", "linear | log", one_of("linear", "log"))
    n_matrix: int = spec(21, "of which this many also keep W2W1, W1ᵀW1, W_LW_Lᵀ", at_least(1))
    batch_size: int | None = spec(None, "null = full batch; an int = minibatch SGD", at_least(1, nullable=True))
    check_every: int = spec(10, "divergence check period, in steps", at_least(1))
    batch_chunk: Any = spec("auto", "networks trained, predicted and written at once; auto: sized from "
                                    "available memory")
    matrix_seeds: int | None = spec(1, "the run folder keeps matrices for the first this-many seeds of each "
                                       "configuration (null: all)", at_least(0, nullable=True))
    progress: bool = spec(True, "tqdm progress bar during training")
    dtype: str = spec("float64", "float64 | float32: the trainer trains in this dtype; theories stay float64 "
                                 "(a float32 run warns)", one_of("float64", "float32", "float16", "bfloat16"))
    max_steps: int | None = spec(None, "refuse a run past this many GD steps per network per phase (null: "
                                       "10⁷); raise it on purpose", at_least(1, nullable=True))


def _nullable_text(key: str, value: Any) -> Any:
    return value if value is None else TEXT(key, value)


def _tags(key: str, value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag for tag in value):
        raise ConfigError(f"{key}={value!r} must be a list of non-empty strings, e.g. {key}=[sweep1].")
    return value


WANDB_LAYOUTS = ("auto", "network", "configuration")
"""How runs map to W&B runs (``logger.wandb.layout``; :mod:`lazyrich.wandb_sink`)."""


@dataclass
class WandbConfig:
    """W&B mirror of the local tables (offline unless WANDB_MODE says otherwise)."""

    enabled: bool = spec(True, "mirror the run to W&B (false: local files only)", BOOL)
    mode: str | None = spec(None, "online | offline | disabled; null: WANDB_MODE, else offline (`lazyrich sync "
                                  "DIR` uploads later)", one_of(None, "online", "offline", "disabled"))
    project: str = spec("lazyrich", "W&B project", TEXT)
    entity: str | None = spec(None, "W&B entity (user or team); null: your default", _nullable_text)
    group: str | None = spec(None, "default: the sweep folder (outputs/run/<time>, multirun/run/<time>/<job>, "
                                   "…/<suite>)", _nullable_text)
    layout: str = spec("auto", "auto: one W&B run per network unless that costs > 20% of the time | network | "
                               "configuration", one_of(*WANDB_LAYOUTS))
    tags: list[str] = spec([], "W&B tags added to every run", _tags)


@dataclass
class LoggerConfig:
    """Where a run is mirrored besides its folder (``logger=wandb|none``)."""

    wandb: WandbConfig = field(default_factory=WandbConfig, metadata={"doc": "W&B settings"})


@dataclass
class TheoryConfig:
    """The theory overlaid on the curves (``theory=<registered name>|auto|none``). Theories are an open registry:
    a plug-in theory's own keys pass through unchecked."""

    name: str = spec("auto", "which theory predicts the curves: a registered theory, `auto` (the most exact that "
                             "applies) or `none`")


SCHEMAS: dict[str, type] = {"init": InitConfig, "model": ModelConfig, "trainer": TrainerConfig,
                            "logger": LoggerConfig, "theory": TheoryConfig}
"""Schema of each typed group, by group name."""

STORED: dict[str, type] = {group: SCHEMAS[group] for group in ("init", "model", "trainer", "logger")}
"""Groups whose YAML options extend their schema in Hydra's ConfigStore (``defaults: [/schema/<group>@_here_]``),
so that the YAML states only what an option changes; :func:`store_schemas` puts them there (and the suites')."""


def store_schemas() -> None:
    """Put the typed schemas into Hydra's ConfigStore: ``schema/<group>`` for :data:`STORED`,
    ``schema/suite/<name>`` for every suite and ``schema/suite/selection`` for a suite choice's top level. The YAML
    files of those groups start from them; call this before composing ``config`` or ``bench`` (the CLI does)."""
    from hydra.core.config_store import ConfigStore

    from lazyrich.suite_schema import SUITE_SCHEMAS, SuiteSelection

    store = ConfigStore.instance()
    for group, schema in STORED.items():
        store.store(group="schema", name=group, node=schema)
    for name, schema in SUITE_SCHEMAS.items():
        store.store(group="schema/suite", name=name, node=schema)
    # a plain mapping, not the typed class: a suite choice adds one key per suite it runs next to these
    store.store(group="schema/suite", name="selection", node=dataclasses.asdict(SuiteSelection()))


def _schema(group: str) -> type:
    if group == "suite":
        from lazyrich.suite_schema import SuiteSelection

        return SuiteSelection
    return SCHEMAS[group]


def defaults_of(schema: type) -> dict[str, Any]:
    """The field defaults of the dataclass ``schema`` as a plain nested dict."""
    return dataclasses.asdict(schema())


def defaults(group: str) -> dict[str, Any]:
    """The schema defaults of ``group`` as a plain nested dict."""
    return defaults_of(SCHEMAS[group])


def meanings(group: str, prefix: str = "") -> dict[str, str]:
    """{dotted key: meaning} of every field of ``group``'s schema (nested schemas flattened). For ``suite``: the
    keys of a suite choice's top level and ``<name>.<key>`` of every suite."""
    out = _meanings(_schema(group), prefix)
    if group == "suite":
        from lazyrich.suite_schema import SUITE_SCHEMAS

        for name, schema in SUITE_SCHEMAS.items():
            out.update(_meanings(schema, f"{prefix}{name}."))
    return out


def mapping_keys(group: str, prefix: str = "") -> frozenset[str]:
    """The dotted keys of ``group`` whose value is an open mapping (a task and its parameters, …): one value in
    the reference, not one row per entry."""
    schemas = {"": _schema(group)}
    if group == "suite":
        from lazyrich.suite_schema import SUITE_SCHEMAS

        schemas.update({f"{name}.": schema for name, schema in SUITE_SCHEMAS.items()})
    return frozenset(f"{prefix}{head}{f.name}" for head, schema in schemas.items() for f in dataclasses.fields(schema)
                     if isinstance(getattr(schema(), f.name), dict))


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


def plain(node: Any) -> Any:
    """A config node as plain Python: an OmegaConf node resolved to containers, a schema object to a dict, anything
    else as it is."""
    from omegaconf import OmegaConf

    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return dataclasses.asdict(node)
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def fill_schema(schema: type, given: Mapping[str, Any] | Any | None, prefix: str, what: str) -> dict[str, Any]:
    """``given`` (a mapping, a ``schema`` instance, a DictConfig or None) completed with ``schema``'s defaults as
    a plain dict. Nested schemas are filled the same way; an open mapping (a ``dict`` field: a task and its
    parameters, …) is a value: a given one replaces the default whole (a key deleted in Hydra stays deleted).
    Every given value passes its field's check; an unknown key is refused, naming ``<prefix>.<key>``, ``what`` it
    is not a key of, and the valid keys."""
    given = dict(plain(given) or {})
    instance = schema()
    out = dataclasses.asdict(instance)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in given.items():
        dotted = f"{prefix}.{key}"
        if key not in fields:
            raise ConfigError(f"{dotted} is not a key of the {what}; valid keys: {', '.join(sorted(out))}.")
        value, default = plain(value), getattr(instance, key)
        if dataclasses.is_dataclass(default):
            out[key] = fill_schema(type(default), value, dotted, what)
            continue
        check = fields[key].metadata.get("check")
        try:
            out[key] = check(dotted, value) if check is not None else value
        except ConfigError as err:
            raise ConfigError(f"{str(err).rstrip('.')}; the default is {json.dumps(default)}.") from None
    return out


def fill_group(group: str, given: Mapping[str, Any] | Any | None) -> dict[str, Any]:
    """``given`` (a mapping, a schema instance or None) completed with the defaults of ``group``, as a plain
    dict; refuses an unknown key or a bad value with :class:`~lazyrich.checks.ConfigError` naming the key."""
    return fill_schema(SCHEMAS[group], given, group, f"{group} config")


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
    out["theory"] = {**dataclasses.asdict(TheoryConfig()), **dict(plain(cfg.get("theory")) or {})}
    return out
