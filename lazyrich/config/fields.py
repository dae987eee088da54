"""Schema machinery shared by every typed config: a field with its default, meaning and check; a schema's
defaults as plain data; and :func:`fill_schema`, which completes a partial mapping from a schema and checks each
given value once, at the boundary.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from lazyrich.config.checks import Check, ConfigError

__all__ = ["defaults_of", "fill_schema", "instantiate", "meanings_of", "plain", "spec"]


def spec(default: Any, meaning: str, check: Check | None = None) -> Any:
    """A field with ``default`` (copied for lists and dicts), its ``meaning`` and its ``check`` in the metadata."""
    metadata = {"doc": meaning, **({"check": check} if check is not None else {})}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def defaults_of(schema: type) -> dict[str, Any]:
    """The field defaults of the dataclass ``schema`` as a plain nested dict."""
    return dataclasses.asdict(schema())


def meanings_of(schema: type, prefix: str = "") -> dict[str, str]:
    """{dotted key: meaning} of every field of the dataclass ``schema`` (nested schemas flattened)."""
    out: dict[str, str] = {}
    instance = schema()
    for f in dataclasses.fields(schema):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            out.update(meanings_of(type(value), f"{prefix}{f.name}."))
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


def instantiate(schema: type, filled: Mapping[str, Any]) -> Any:
    """The ``schema`` object of a mapping :func:`fill_schema` returned (nested schemas built the same way)."""
    values = {}
    for f in dataclasses.fields(schema):
        value = filled[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        values[f.name] = instantiate(type(default), value) if dataclasses.is_dataclass(default) else value
    return schema(**values)
