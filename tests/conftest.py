"""Shared test fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
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


def rel_err(got, ref, *, scale=None, batch_dims: int = 0, equal_nan: bool = False) -> float:
    """max |got − ref| / max |ref|: the error relative to the reference's own scale, the measure every numerical
    tolerance in the tests bounds (an absolute bound on O(10) values is a coin toss across CPUs, BLAS builds
    and thread counts; an elementwise relative one fails on entries that are rounding-level zeros).

    ``got`` and ``ref`` (tensors, arrays or numbers of one shape) are compared in float64. ``scale`` replaces
    max |ref| (e.g. the size of the terms a quantity is the difference of). ``batch_dims`` leading axes each get
    their own scale (one per network, so a large-λ net does not set the bar for an O(1) one); the worst is
    returned. Equal values (infinities included) count as no error. A NaN makes the result NaN, so
    ``rel_err(...) <= tol`` fails, unless ``equal_nan``: then NaNs must sit at the same places in both and are
    left out. A zero (or infinite) scale gives 0 when all values are equal, else inf (or NaN).
    """
    import torch

    def f64(x):
        return (x.detach().cpu() if torch.is_tensor(x) else torch.tensor(np.asarray(x, dtype=np.float64))).double()

    got, ref = f64(got), f64(ref)
    assert got.shape == ref.shape, f"shapes differ: {tuple(got.shape)} vs {tuple(ref.shape)}"
    if equal_nan:
        assert torch.equal(got.isnan(), ref.isnan()), "NaNs at different places"
        got, ref = got.nan_to_num(0.0), ref.nan_to_num(0.0)
    lead = tuple(got.shape[:batch_dims])
    gap = torch.where(got == ref, 0.0, (got - ref).abs()).reshape(*lead, -1).amax(-1)
    size = ref.abs().reshape(*lead, -1).amax(-1) if scale is None else f64(scale).expand(lead)
    gap, size = gap.reshape(-1), size.reshape(-1)
    err = torch.where(gap == 0, torch.zeros_like(gap), gap / size)  # 0/0 → 0; x/0 → inf; NaN stays NaN
    return float(err.amax()) if err.numel() else 0.0


def balance_terms(weights):
    """‖W_{l+1}ᵀW_{l+1}‖_F + ‖W_lW_lᵀ‖_F for each adjacent pair, (…, L−1): the size of the two terms whose
    difference D_l gives λ̂ and the balance deviation (:func:`lazyrich.init.balance`), so the scale their
    rounding is proportional to. Bound |λ̂ − λ| and the deviation against it (``rel_err(..., scale=...)``)."""
    import torch

    return torch.stack([torch.linalg.matrix_norm(hi.mT @ hi) + torch.linalg.matrix_norm(lo @ lo.mT)
                        for lo, hi in zip(weights[:-1], weights[1:], strict=True)], -1)

