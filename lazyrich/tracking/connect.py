"""Start W&B runs without ever blocking on the network: a bounded probe, a bounded init, and one switch to offline.

W&B is offline unless ``WANDB_MODE`` says otherwise. In online mode the first run of the process first probes the
server (:func:`wandb_base_url`: ``WANDB_BASE_URL``, else W&B's own setting) with one HTTP request of at most
:data:`PROBE_TIMEOUT` seconds, then calls ``wandb.init`` with ``init_timeout`` = :data:`INIT_TIMEOUT`. On the first
failure of either, the rest of the process logs offline (one warning says so and how to upload later), so a dead
or silent host costs one probe or one init timeout per process, never one per run, and the offline files hold
everything for ``lazyrich sync``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import warnings
from typing import Any

__all__ = ["INIT_TIMEOUT", "PROBE_TIMEOUT", "go_offline", "is_offline", "resolve_mode", "server_reachable",
           "start_run", "wandb_base_url"]

INIT_TIMEOUT = 15.0
"""Seconds ``wandb.init`` may wait for the server before the process switches to offline."""

PROBE_TIMEOUT = 10.0
"""Seconds the one HTTP request that checks the server may take."""

_STATE: dict[str, Any] = {"offline": False, "probed": False}


def is_offline() -> bool:
    """Whether this process has switched to offline logging after a W&B failure."""
    return bool(_STATE["offline"])


def go_offline(reason: str) -> None:
    """Log offline for the rest of the process; warns once (later calls are silent)."""
    if _STATE["offline"]:
        return
    _STATE["offline"] = True
    os.environ["WANDB_MODE"] = "offline"  # W&B's own setup (and child processes) then never contact the host
    try:  # W&B's usage telemetry would otherwise flush to the silent host at exit (≈ 10 s)
        from wandb.analytics.opentelemetry import opentelemetry_proxy

        opentelemetry_proxy.disable()
    except (ImportError, AttributeError):
        pass
    warnings.warn(f"W&B is unreachable ({reason}); this process logs offline from now on. The runs are complete on "
                  f"disk: upload them later with `lazyrich sync <output folder>`.", stacklevel=3)


def resolve_mode(mode: str | None = None) -> str:
    """The W&B mode to use: ``mode``, else ``WANDB_MODE``, else offline; online becomes offline after a failure."""
    chosen = (mode or os.environ.get("WANDB_MODE") or "offline").lower()
    if chosen in ("online", "run") and _STATE["offline"]:
        return "offline"
    return "online" if chosen == "run" else chosen


def wandb_base_url() -> str:
    """The W&B server that ``wandb.init`` and ``wandb sync`` would use: ``WANDB_BASE_URL``, else W&B's settings."""
    if os.environ.get("WANDB_BASE_URL"):
        return os.environ["WANDB_BASE_URL"]
    try:
        from wandb.sdk import wandb_setup

        return str(wandb_setup.singleton().settings.base_url)
    except Exception:  # noqa: BLE001 — an unexpected W&B version: its documented default
        return "https://api.wandb.ai"


def server_reachable(base_url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None if ``base_url`` answers an HTTP request within ``timeout`` seconds (any status), else why not."""
    try:
        with urllib.request.urlopen(urllib.request.Request(base_url.rstrip("/") + "/healthz"), timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # the server answered, even if with an error status
    except (urllib.error.URLError, OSError, ValueError) as err:
        return f"{base_url} did not answer within {timeout:g} s: {getattr(err, 'reason', err)}"


def _probe_once() -> None:
    if _STATE["probed"]:
        return
    _STATE["probed"] = True
    reason = server_reachable(wandb_base_url())
    if reason is not None:
        go_offline(reason)


def start_run(mode: str | None = None, *, light: bool = True, **init_kwargs: Any):
    """``wandb.init(**init_kwargs)`` in the resolved mode, bounded in time; falls back to offline once.

    ``light`` skips what costs per run but says nothing per network (the pip package list, ≈ 0.5 s a run, and
    the system-metrics sampler); sweep- and suite-level runs keep them. Returns the W&B run, or None when the
    mode is ``disabled``. Raises only if an offline init fails too. The run whose online init timed out is
    written offline as ``<id>-offline``: W&B's service keeps its id busy for the rest of the process.
    """
    import wandb

    mode = resolve_mode(mode)
    if mode == "disabled":
        return None
    if mode == "online":
        _probe_once()
        mode = resolve_mode(mode)
    settings = wandb.Settings(init_timeout=INIT_TIMEOUT, silent=True, console="off", x_save_requirements=not light,
                              x_disable_stats=light)
    try:
        return wandb.init(mode=mode, settings=settings, reinit="create_new", **init_kwargs)
    except Exception as err:  # noqa: BLE001 — any online failure: switch, then try once more offline
        if mode != "online":
            raise
        go_offline(f"wandb.init failed: {str(err).splitlines()[0]}")
    if init_kwargs.get("id"):  # W&B's service keeps the id of the run that timed out busy in this process
        init_kwargs = {**init_kwargs, "id": f"{init_kwargs['id']}-offline"}
    return wandb.init(mode="offline", settings=settings, reinit="create_new", **init_kwargs)
