"""Theory registry: names → Theory classes, built-ins plus plug-ins from entry points.

A plug-in package declares, in its pyproject.toml::

    [project.entry-points."lazyrich.theories"]
    my_theory = "my_package.module:MyTheory"

where ``MyTheory`` is a :class:`~lazyrich.theory.base.Theory` subclass (or any callable returning a Theory).
Entry points are listed on the first lookup and each is imported only when its name is asked for, so a broken
plug-in fails with an error naming it and never hides the built-ins.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar

from lazyrich.theory.base import Theory
from lazyrich.train import TRAINING_OPTIONS, TrainOptions

__all__ = ["ENTRY_POINT_GROUP", "available_theories", "describe_theories", "filter_options", "get_theory",
           "register_theory"]

ENTRY_POINT_GROUP = "lazyrich.theories"

T = TypeVar("T", bound=type[Theory])

_REGISTRY: dict[str, Callable[..., Theory]] = {}
_ENTRY_POINTS: dict[str, metadata.EntryPoint] | None = None  # None until the first lookup


def register_theory(name: str) -> Callable[[T], T]:
    """Class decorator registering a Theory subclass under ``name`` (and setting its ``name``)."""

    def decorate(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, Theory)):
            raise TypeError(f"register_theory({name!r}) decorates Theory subclasses, got {cls!r}.")
        old = _REGISTRY.get(name)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"theory name {name!r} is already registered to "
                             f"{old.__module__}.{old.__qualname__}; choose another name for "
                             f"{cls.__module__}.{cls.__qualname__}.")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _entry_points() -> dict[str, metadata.EntryPoint]:
    global _ENTRY_POINTS
    if _ENTRY_POINTS is None:
        _ENTRY_POINTS = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return _ENTRY_POINTS


def _clear_entry_point_cache() -> None:
    """Forget the listed entry points (tests use this after patching ``importlib.metadata``)."""
    global _ENTRY_POINTS
    _ENTRY_POINTS = None
    for name in [n for n, f in _REGISTRY.items() if getattr(f, "_from_entry_point", False)]:
        del _REGISTRY[name]


def _load(name: str) -> Callable[..., Theory]:
    ep = _entry_points()[name]
    where = f"entry point {ep.name} = {ep.value!r} in group {ENTRY_POINT_GROUP!r}"
    try:
        obj = ep.load()
    except (Exception, SystemExit) as exc:  # the plug-in's own bug (or exit()): say whose it is
        raise ImportError(f"theory {name!r} could not be loaded from {where}: "
                          f"{type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise TypeError(f"theory {name!r} from {where} is {obj!r}, not a Theory subclass or factory.")
    if isinstance(obj, type) and issubclass(obj, Theory) and not obj.name:
        obj.name = name

    def factory(**options: Any) -> Theory:
        theory = obj(**options)
        if not isinstance(theory, Theory):
            raise TypeError(f"theory {name!r} from {where} returned {type(theory).__name__}, not a Theory.")
        return theory

    factory._from_entry_point = True  # type: ignore[attr-defined]
    factory.__wrapped_theory__ = obj  # type: ignore[attr-defined]
    _REGISTRY[name] = factory
    return factory


def available_theories() -> list[str]:
    """Names of every theory: built-ins and entry points (not imported until asked for), sorted."""
    return sorted(set(_REGISTRY) | set(_entry_points()))


def describe_theories() -> str:
    """One line per theory, ``name: summary`` (plug-ins not yet imported show their entry point instead)."""
    lines = []
    for name in available_theories():
        factory = _REGISTRY.get(name)
        if factory is None:
            lines.append(f"{name}: plug-in {_entry_points()[name].value!r} (not imported yet)")
            continue
        doc = getattr(factory, "__wrapped_theory__", factory).__doc__ or ""
        lines.append(f"{name}: {doc.strip().splitlines()[0] if doc.strip() else '(no description)'}")
    return "\n".join(lines)


def get_theory(name: str, **options: Any) -> Theory:
    """A fresh instance of theory ``name`` built with ``options`` (e.g. ``get_theory("ode", rtol=1e-9)``).

    The training options ``layer_lr``, ``output_scale`` and ``weight_decay`` (:class:`lazyrich.train.TrainOptions`)
    are given to every theory as its ``training``: one that does not model an option set refuses it in ``check``.
    """
    factory = _REGISTRY.get(name)
    if factory is None:
        if name not in _entry_points():
            raise ValueError(f"unknown theory {name!r}; valid names: {', '.join(available_theories())}.")
        factory = _load(name)
    training = {key: options.pop(key) for key in TRAINING_OPTIONS if key in options}
    try:
        theory = factory(**options)
    except TypeError as exc:
        if options and "unexpected keyword" in str(exc):
            raise ValueError(f"theory {name!r} does not take options {sorted(options)}: {exc}") from exc
        raise
    if training:
        theory.training = TrainOptions.of(**training)
    return theory


def filter_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``options`` that theory ``name`` takes (e.g. ``rtol`` goes to ode, not to exact); the
    training options (``layer_lr``, ``output_scale``, ``weight_decay``) go to every theory (:func:`get_theory`)."""
    factory = _REGISTRY.get(name) or _load(name)
    target = getattr(factory, "__wrapped_theory__", factory)
    params = inspect.signature(target).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(options)
    names = {p.name for p in params} | set(TRAINING_OPTIONS)
    return {k: v for k, v in options.items() if k in names}
