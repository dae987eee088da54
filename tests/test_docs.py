"""The documentation site builds with --strict, and the examples on its pages run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def _env() -> dict[str, str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", WANDB_MODE="disabled")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-4000:]}"
    return out


def test_every_page_in_the_nav_is_built(site):
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    pages = re.findall(r"[\w/-]+\.md", str(nav))
    assert len(pages) >= 14
    for page in pages:
        built = site / page.replace(".md", ".html")
        assert built.is_file(), f"{page} was not built"


def test_generated_sections_are_in_the_site(site):
    cli = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    assert "lazyrich:config-reference" not in cli
    for key in ("trainer.lr", "init.lam", "suite.reversal.t_phase", "task.depth", "hydra.launcher.partition"):
        assert key in cli, f"{key} missing from the config reference"
    api = (site / "reference" / "api.html").read_text(encoding="utf-8")
    for name in ("lazyrich.train.train", "lazyrich.theory.qqt", "lazyrich.metrics.kernel_distance"):
        assert f'id="{name}"' in api, f"{name} missing from the API reference"
    theory = (site / "theory.html").read_text(encoding="utf-8")
    assert theory.count("<math") > 20 and "arithmatex" not in theory  # equations are MathML, made at build time
    assert ":func:`" not in api and ":class:`" not in api  # the docstrings' Sphinx roles became references
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in (site / "notebooks").glob("*.ipynb")) == notebooks
    page = (site / "notebooks.html").read_text(encoding="utf-8")
    unlinked = [name for name in notebooks if f'href="notebooks/{name}"' not in page]
    assert not unlinked, f"not linked from the Notebooks page: {unlinked}"
    perf = (site / "performance.html").read_text(encoding="utf-8")
    assert "<th>ratio</th>" in perf and "torch.func" in perf  # the README's benchmark table, included


def test_every_suite_page_shows_a_figure_that_exists():
    for suite in ("reversal", "continual", "transfer", "rotation", "finetune", "architecture"):
        text = (DOCS / "suites" / f"{suite}.md").read_text(encoding="utf-8")
        figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
        assert figures, f"docs/suites/{suite}.md has no figure"
        for fig in figures:
            assert (DOCS / "suites" / fig).resolve().stat().st_size > 1000


def test_the_plugin_page_examples_run(tmp_path):
    """Every Python block of docs/plugins.md, in order, in a fresh interpreter (its registrations stay there)."""
    blocks = _python_blocks(DOCS / "plugins.md")
    assert len(blocks) >= 4
    script = tmp_path / "plugins_page.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
