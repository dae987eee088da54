"""Batch values checked before any training: each bad value is refused in one line naming its key.

The batch axes (``init.lam``, ``init.scale``, ``trainer.lr``, ``seed``) come from the command line as text,
numbers or lists; :func:`floats` and :func:`seeds` turn them into plain Python lists or raise
:class:`ConfigError` saying which key holds which bad value and what to give instead.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["BOOL", "FINITE", "FLOATS", "MAPPING", "MAX_SEED", "POSITIVE", "SEEDS", "TEXT", "Check", "ConfigError",
           "at_least", "floats", "one_of", "seeds"]

MAX_SEED = 2**63 - 1
"""Seeds are non-negative integers below 2⁶³ (what torch.Generator.manual_seed takes without wrapping)."""


class ConfigError(ValueError):
    """A configuration value that cannot be run; the message names the key, the value and the fix."""


def _items(key: str, value: Any) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    items = list(value)
    if not items:
        raise ConfigError(f"{key} is an empty list; give at least one value (e.g. {key}=0 or {key}=[0,1]).")
    return items


def floats(key: str, value: Any, *, positive: bool = False, nonnegative: bool = False,
           allow_nan: bool = False) -> list[float]:
    """``value`` (one number or a list) as finite floats; refuses text, NaN, ±inf and, if asked, x ≤ 0 / x < 0."""
    out = []
    for item in _items(key, value):
        try:
            x = float(item)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={item!r} is not a number; give a finite number.") from None
        if isinstance(item, bool) or (not math.isfinite(x) and not (allow_nan and math.isnan(x))):
            raise ConfigError(f"{key}={item!r} is not a finite number; give a finite number.")
        if positive and not x > 0:
            raise ConfigError(f"{key}={item!r} must be positive.")
        if nonnegative and x < 0:
            raise ConfigError(f"{key}={item!r} must be zero or positive.")
        out.append(x)
    return out


def seeds(key: str, value: Any) -> list[int]:
    """``value`` (one seed or a list) as integers in [0, MAX_SEED]; refuses text, fractions and bools."""
    out = []
    for item in _items(key, value):
        if isinstance(item, bool):
            raise ConfigError(f"{key}={item!r} is not an integer seed; give an integer in [0, 2**63 - 1].")
        if isinstance(item, float) and item.is_integer():
            item = int(item)
        if not isinstance(item, int):
            raise ConfigError(f"{key}={item!r} is not an integer seed; give an integer in [0, 2**63 - 1].")
        if not 0 <= item <= MAX_SEED:
            raise ConfigError(f"{key}={item} is out of range; seeds are integers in [0, 2**63 - 1].")
        out.append(item)
    return out


Check = Callable[[str, Any], Any]
"""A field's check: ``check(dotted key, value)`` returns the value (lists normalised) or raises a one-line
:class:`ConfigError` that names the key and what is wrong (:func:`~lazyrich.config.fields.fill_schema` adds
the default)."""


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
    return floats(key, value)


def SEEDS(key: str, value: Any) -> list[int]:  # noqa: N802
    """A non-empty list of seeds (integers in [0, 2**63 - 1])."""
    return seeds(key, value)


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
