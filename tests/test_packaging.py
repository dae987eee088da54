"""A regular (non-editable) install works from any folder: sdist → wheel → fresh venv → the ``lazyrich`` command.

Offline and fast: the build uses this interpreter's setuptools (no build isolation), and the fresh venv borrows
this venv's dependencies through one path line in a ``.pth`` file (a plain path: the ``.pth`` files of the
borrowed folder, such as the editable install of the checkout, are not run), then gets lazyrich and the example
plug-in installed from wheels with ``--no-deps --no-index``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = Path(__file__).parent / "plugin_pkg"
SOURCES = ["pyproject.toml", "setup.py", "README.md", "MANIFEST.in", "CHANGELOG.md", "CITATION.cff", "lazyrich", "conf"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 240) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    tail = f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}"
    return proc.stdout


def _build_sdist(dest: Path) -> Path:
    """Copy the sources a release needs (not tests/, not outputs) and build the sdist from the copy."""
    src = dest / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.exists():
            shutil.copy2(path, src / name)
    code = f"from setuptools import build_meta as b; print(b.build_sdist({str(dest / 'dist')!r}))"
    name = _run([sys.executable, "-c", code], cwd=src).strip().splitlines()[-1]
    return dest / "dist" / name


def _wheel(source: Path, dest: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(dest), str(source)], cwd=dest.parent)
    return next(dest.glob("*.whl"))


def _fresh_venv(where: Path) -> Path:
    """A venv without pip whose site-packages also sees this venv's packages (for the dependencies)."""
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=where)
    Path(purelib.strip(), "_borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Build sdist → wheel, install it and the example plug-in into a fresh venv; return (bin dir, env)."""
    tmp = tmp_path_factory.mktemp("pkg")
    sdist = _build_sdist(tmp)
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp / "unpacked", filter="data")
    wheels = tmp / "wheels"
    wheel = _wheel(next((tmp / "unpacked").iterdir()), wheels)
    plugin_src = shutil.copytree(PLUGIN_DIR, tmp / "plugin_src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    plugin = _wheel(plugin_src, tmp / "plugin_wheels")  # built from a copy: no build/ left in the checkout
    python = _fresh_venv(tmp / "venv")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
          str(wheel), str(plugin)], cwd=tmp)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LAZYRICH_CONF", "VIRTUAL_ENV")}
    env.update(WANDB_MODE="disabled", PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}")
    return python.parent, env


@pytest.mark.slow
def test_the_wheel_ships_the_configs_inside_the_package(installed):
    bin_dir, env = installed
    code = "import lazyrich, lazyrich.cli as c; print(lazyrich.__file__); print(c.conf_dir())"
    out = _run([str(bin_dir / "python"), "-c", code], cwd=bin_dir, env=env).splitlines()
    venv_root = bin_dir.parent.resolve()
    module, conf = Path(out[0]).resolve(), Path(out[1])
    assert venv_root in module.parents, f"lazyrich was imported from {module}, not from the fresh venv"
    assert conf == module.parent / "conf" and (conf / "suite" / "default.yaml").is_file()
    assert sorted(p.relative_to(conf) for p in conf.rglob("*.yaml")) == \
        sorted(p.relative_to(ROOT / "conf") for p in (ROOT / "conf").rglob("*.yaml"))


@pytest.mark.slow
def test_installed_cli_runs_from_a_folder_outside_the_checkout(installed, tmp_path):
    bin_dir, env = installed
    from lazyrich import __version__

    assert _run(["lazyrich", "--version"], cwd=tmp_path, env=env).strip() == f"lazyrich {__version__}"
    tasks = _run(["lazyrich", "tasks"], cwd=tmp_path, env=env)
    # The built-ins, and the wheel-installed plug-in: listing it loads its entry point and reads its signature.
    assert "hierarchy" in tasks and "example_plugin" in tasks and "parameters: n=4, scale=1.0" in tasks
    out = _run(["lazyrich", "run", "trainer.t_max=1", "trainer.n_log=5", "logger=none", "hydra.run.dir=run"],
               cwd=tmp_path, env=env)
    assert "loss" in out
    assert (tmp_path / "run" / "metrics.parquet").stat().st_size > 0
    _run(["lazyrich", "bench", "suite=default", "suite.lams=0,2", "suite.reversal.t_phase=2", "suite.reversal.n_log=11",
          "suite.architecture.t_max=2", "suite.architecture.n_log=11", "logger=none", "progress=false",
          "hydra.run.dir=bench"], cwd=tmp_path, env=env)
    assert {p.name for p in (tmp_path / "bench").iterdir()} >= {"reversal", "architecture", "summary.md"}


def test_citation_and_changelog_name_the_released_version():
    import yaml

    from lazyrich import __version__

    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert str(citation["version"]) == __version__
    paper = "From Lazy to Rich: Exact Learning Dynamics in Deep Linear Networks"
    assert citation["preferred-citation"]["title"] == paper
    assert f"## [{__version__}]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_lazyrich_conf_overrides_and_a_missing_folder_says_what_to_do(tmp_path, monkeypatch):
    from lazyrich.config.compose import conf_dir

    copy = shutil.copytree(ROOT / "conf", tmp_path / "my_conf")
    monkeypatch.setenv("LAZYRICH_CONF", str(copy))
    assert conf_dir() == copy
    monkeypatch.setenv("LAZYRICH_CONF", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as info:
        conf_dir()
    message = str(info.value)
    assert message.startswith("lazyrich: no config.yaml in LAZYRICH_CONF=") and "\n" not in message
    assert "point LAZYRICH_CONF at a copy of its conf/ folder" in message
