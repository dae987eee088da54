"""Task registry: names → task-building functions, built-ins plus plug-ins from entry points.

A plug-in package declares, in its pyproject.toml::

    [project.entry-points."lazyrich.tasks"]
    my_task = "my_package.module:build_my_task"

The function takes keyword parameters and returns a Task or TaskSequence; ``make("my_task", ...)`` then works,
and so does ``lazyrich run task=my_task task.param=value``. Entry points load lazily, on the first lookup of a
name that is not built in (or on ``available()``), and a broken one never hides the built-ins.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar

from lazyrich.tasks.base import Task, TaskError, TaskSequence

ENTRY_POINT_GROUP = "lazyrich.tasks"
MISSING = "???"
"""Hydra's marker for a mandatory value: what ``task_defaults`` gives for a parameter without a default."""

RESERVED_PARAMS = ("name", "whiten", "phase")
"""Keys the CLI's task config node uses next to a task's own parameters ({name, whiten, **params}), so no task
function may take a parameter with these names."""

F = TypeVar("F", bound=Callable[..., Any])

_REGISTRY: dict[str, Callable[..., Task | TaskSequence]] = {}
_ORIGIN: dict[str, str] = {}  # name -> "built-in" or "entry point NAME = VALUE (distribution D)"
_BROKEN: dict[str, str] = {}  # entry-point name -> error message
_entry_points_loaded = False


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _config_value(value: Any) -> bool:
    """Whether a config (OmegaConf) can hold ``value``: None, bool, int, float, str, or lists/dicts of them."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_config_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _config_value(v) for k, v in value.items())
    return False


def _unsupported_defaults(sig: inspect.Signature) -> list[str]:
    """``name=value`` of each parameter whose default a config cannot hold (e.g. a numpy array)."""
    return [f"{p.name}={type(p.default).__name__}" for p in sig.parameters.values()
            if p.default is not inspect.Parameter.empty and not _config_value(p.default)]


def _add(name: str, fn: Callable[..., Any], origin: str) -> None:
    if not callable(fn):
        raise TaskError(
            f"task {name!r} ({origin}): {fn!r} is not callable; register a function that returns "
            f"a Task or TaskSequence."
        )
    clash = [p for p in RESERVED_PARAMS if p in _signature(fn).parameters]
    if clash:
        raise TaskError(
            f"task {name!r} ({origin}): parameter(s) {clash} clash with the config keys "
            f"{list(RESERVED_PARAMS)} that lazyrich puts next to task parameters; rename them."
        )
    bad = _unsupported_defaults(_signature(fn))
    if bad:
        raise TaskError(
            f"task {name!r} ({origin}): the default(s) of {bad} cannot go into a config (only None, bool, int, "
            f"float, str and lists/dicts of them can); use a tuple or list instead."
        )
    old = _REGISTRY.get(name)
    if old is not None and _qualname(old) != _qualname(fn):
        raise TaskError(
            f"task name {name!r} is already registered to {_qualname(old)} ({_ORIGIN[name]}); "
            f"choose another name for {_qualname(fn)} ({origin})."
        )
    _REGISTRY[name] = fn
    _ORIGIN[name] = origin


def register(name: str | Callable[..., Any] | None = None) -> Any:
    """Decorator registering a task function under ``name`` (default: the function's name).

    Usable as ``@register``, ``@register()`` or ``@register("name")``; returns the function unchanged.
    """
    if callable(name):
        fn = name
        _add(fn.__name__, fn, "built-in" if fn.__module__.startswith("lazyrich.") else _qualname(fn))
        return fn

    def decorator(fn: F) -> F:
        key = name or fn.__name__
        _add(key, fn, "built-in" if fn.__module__.startswith("lazyrich.") else _qualname(fn))
        return fn

    return decorator


def _entry_points() -> list[metadata.EntryPoint]:
    """The installed entry points of the ``lazyrich.tasks`` group (a seam for tests)."""
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    try:
        eps = _entry_points()
    except Exception as exc:  # a corrupt installation must not break the built-ins
        _BROKEN["<entry points>"] = f"reading entry points of group {ENTRY_POINT_GROUP!r} failed: {exc!r}"
        return
    for ep in eps:
        dist = getattr(getattr(ep, "dist", None), "name", None) or "unknown distribution"
        where = f"entry point {ep.name} = {ep.value!r} (group {ENTRY_POINT_GROUP!r}, distribution {dist})"
        if ep.name in _REGISTRY and _ORIGIN[ep.name] == "built-in":
            _BROKEN.setdefault(
                f"{ep.name} [{dist}]",
                f"{where} was ignored: {ep.name!r} is a built-in task; rename the entry point.",
            )
            continue
        try:
            fn = ep.load()
            _add(ep.name, fn, where)
        except (Exception, SystemExit) as exc:  # a plug-in's bug or exit() must not take the built-ins down
            _BROKEN[ep.name] = (
                f"{where} failed to load: {type(exc).__name__}: {exc}. Fix or uninstall "
                f"{dist} (pip uninstall {dist})."
            )


def _reset_entry_points() -> None:
    """Forget loaded plug-ins so that the next lookup reads entry points again (for tests)."""
    global _entry_points_loaded
    for name in [n for n, o in _ORIGIN.items() if o.startswith("entry point")]:
        del _REGISTRY[name], _ORIGIN[name]
    _BROKEN.clear()
    _entry_points_loaded = False


def _lookup(name: str) -> Callable[..., Any]:
    if name not in _REGISTRY:
        _load_entry_points()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _BROKEN:
        raise TaskError(f"task {name!r} is unavailable: {_BROKEN[name]}")
    valid = sorted(_REGISTRY)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise TaskError(
        f"unknown task {name!r}.{hint} Valid tasks: {', '.join(valid)} "
        f"(see `lazyrich tasks`; plug-ins register in entry-point group {ENTRY_POINT_GROUP!r})."
    )


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return inspect.Signature([inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])


def _param_list(sig: inspect.Signature) -> str:
    parts = []
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            parts.append(f"**{p.name}")
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
        else:
            parts.append(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}")
    return ", ".join(parts) or "(none)"


def make(name: str, **params: Any) -> Task | TaskSequence:
    """Build the registered task ``name`` from keyword ``params``; failures are TaskErrors naming both."""
    fn = _lookup(name)
    sig = _signature(fn)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_any:
        unknown = [k for k in params if k not in sig.parameters]
        if unknown:
            close = {k: difflib.get_close_matches(k, list(sig.parameters), n=1) for k in unknown}
            hints = "".join(f" ({k!r}: did you mean {c[0]!r}?)" for k, c in close.items() if c)
            raise TaskError(
                f"task {name!r} got unknown parameter(s) {', '.join(map(repr, unknown))}.{hints} "
                f"Valid parameters: {_param_list(sig)}."
            )
    try:
        sig.bind(**params)
    except TypeError as exc:
        raise TaskError(f"task {name!r}: {exc}. Parameters: {_param_list(sig)}.") from None
    try:
        result = fn(**params)
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no parameters"
        what = str(exc) if isinstance(exc, TaskError) else f"{type(exc).__name__}: {exc}"
        raise TaskError(
            f"task {name!r} ({_ORIGIN.get(name, _qualname(fn))}) failed with {shown}: {what}"
        ) from exc
    if not isinstance(result, Task | TaskSequence):
        raise TaskError(
            f"task {name!r} ({_qualname(fn)}) returned a {type(result).__name__}, not a Task or "
            f"TaskSequence; make the function return lazyrich.tasks.Task(X, Y)."
        )
    if isinstance(result, Task) and result.name == "task":
        result = result.replace(name=name)
    return result


def available() -> dict[str, inspect.Signature]:
    """Every registered task name (built-in and plug-in) with its signature, sorted by name."""
    _load_entry_points()
    return {name: _signature(_REGISTRY[name]) for name in sorted(_REGISTRY)}


def broken_entry_points() -> dict[str, str]:
    """Entry points that failed to load, with the reason (empty when all plug-ins are fine)."""
    _load_entry_points()
    return dict(_BROKEN)


def _hydra_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def task_defaults(name: str) -> dict[str, Any]:
    """The keyword parameters of task ``name`` with their defaults; required ones map to "???" (MISSING)."""
    sig = _signature(_lookup(name))
    out: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.POSITIONAL_ONLY,
        ):
            continue
        out[p.name] = MISSING if p.default is inspect.Parameter.empty else _hydra_value(p.default)
    return out


def describe_all() -> str:
    """A human-readable table of tasks: name, parameters with defaults, first docstring line, origin."""
    lines = []
    for name, sig in available().items():
        doc = (inspect.getdoc(_REGISTRY[name]) or "").strip().splitlines()
        origin = "" if _ORIGIN[name] == "built-in" else f"  [{_ORIGIN[name]}]"
        lines.append(f"{name}{origin}")
        lines.append(f"    {doc[0] if doc else '(no description)'}")
        lines.append(f"    parameters: {_param_list(sig)}")
    for name, msg in _BROKEN.items():
        lines.append(f"{name}  [BROKEN] {msg}")
    return "\n".join(lines)
