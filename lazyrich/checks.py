"""Batch values checked before any training: each bad value is refused in one line naming its key.

The batch axes (``init.lam``, ``init.scale``, ``trainer.lr``, ``seed``) come from the command line as text,
numbers or lists; :func:`floats` and :func:`seeds` turn them into plain Python lists or raise
:class:`ConfigError` saying which key holds which bad value and what to give instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_SEED", "ConfigError", "floats", "seeds"]

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
