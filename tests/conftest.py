"""Shared test fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = Path(__file__).parent / "plugin_pkg"
PLUGIN_DIST = "lazyrich-example-plugin"


def install_example_plugin() -> str | None:
    """Install tests/plugin_pkg (editable, offline) into this interpreter; return None or why it failed."""
    try:
        metadata.distribution(PLUGIN_DIST)
        return None
    except metadata.PackageNotFoundError:
        pass
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-e",
        str(PLUGIN_DIR),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return f"pip could not install {PLUGIN_DIR} offline: {proc.stderr.strip()[-800:]}"
    return None


@pytest.fixture(scope="session", autouse=True)
def typed_schemas_in_hydra_store() -> None:
    """The typed schemas in Hydra's ConfigStore, as the CLI puts them there: the YAML options of conf/ (suite,
    logger, init, model, trainer) extend them, so a test may compose ``bench`` or ``config`` directly."""
    from lazyrich.config.compose import store_schemas

    store_schemas()


TEST_OVERRIDES = {"config": ["logger=none", "trainer.progress=false"], "bench": ["logger=none", "progress=false"]}
"""What every test-composed config changes: no W&B, no progress bars (a test asks for them explicitly)."""


@pytest.fixture
def compose():
    """``compose(name, overrides, quiet=True)``: the ``config`` (``lazyrich run``) or ``bench`` config the command
    line builds from ``overrides`` (:func:`lazyrich.config.compose.compose`), after :data:`TEST_OVERRIDES` unless
    ``quiet=False`` (the shipped defaults, untouched)."""
    from lazyrich.config.compose import compose as compose_config

    def composed(config_name: str = "config", overrides=(), *, quiet: bool = True):
        return compose_config(config_name, [*(TEST_OVERRIDES[config_name] if quiet else []), *overrides])

    return composed


@pytest.fixture(scope="session")
def example_plugin_installed() -> str:
    """Install the example plug-in package once per session (skip if pip cannot build it offline).

    Entry points are read when a process first looks a plug-in up, so use it from a fresh subprocess.
    Returns the entry-point name, ``example_plugin``.
    """
    reason = install_example_plugin()
    if reason is not None:
        pytest.skip(reason)
    return "example_plugin"


@contextmanager
def offline_wandb_in(root: Path) -> Iterator[None]:
    """Work in ``root`` with W&B offline (every other test keeps it disabled); undone on exit."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("WANDB_MODE", "offline")
        yield


def batch_of(cfg, n_in: int, n_out: int, align_to=None, device="cpu"):
    """(weights, meta) of the batch a run config builds for a task of widths ``n_in`` → ``n_out``: the config
    resolved as ``run_experiment`` resolves it, then :func:`lazyrich.experiment.batch.build_batch`."""
    import torch

    from lazyrich.config.run import resolve_run
    from lazyrich.experiment.batch import build_batch

    config = resolve_run({"task": {"name": "hierarchy"}, **dict(cfg)})
    return build_batch(config.init, config.model, config.trainer.lr, config.seed, n_in, n_out, align_to,
                       torch.device(device))


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The documentation site, built once per session with ``mkdocs build --strict`` (tests/test_docs.py checks
    its pages, tests/test_docs_site.py opens them in a browser)."""
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", WANDB_MODE="disabled")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-4000:]}"
    return out
