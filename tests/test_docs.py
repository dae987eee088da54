"""The documentation site builds with --strict, and the examples on its pages run as written.

The ``site`` fixture (tests/conftest.py) builds the site once per test session; tests/test_docs_site.py opens
the same build in a browser.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.slow  # each test reads the whole built site (≈ 15 s to build)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def _env() -> dict[str, str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", WANDB_MODE="disabled")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


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


def _docs_module(name: str):
    """A build-time module of docs/ (a hook or the griffe extension), imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_roles_link_what_resolves_and_degrade_to_code():
    griffe = pytest.importorskip("griffe", reason="the docs extra is not installed: pip install -e '.[docs]'")
    roles = _docs_module("sphinx_roles")
    files = {"__init__.py": "from pkg.mod import f\n", "mod.py": "def f(): ...\nclass C:\n    def m(self): ...\n"}
    with griffe.temporary_visited_package("pkg", files) as pkg:
        rewrite = roles.SphinxRoles().rewrite
        method = pkg["mod"]["C"]["m"]
        assert rewrite(":func:`f`", method, {"pkg"}) == '<autoref identifier="pkg.mod.f" optional>`f`</autoref>'
        assert rewrite(":meth:`~pkg.mod.C.m`", method, {"pkg"}) == (
            '<autoref identifier="pkg.mod.C.m" optional>`m`</autoref>')
        assert rewrite(":mod:`the module <pkg.mod>`", method, {"pkg"}) == (
            '<autoref identifier="pkg.mod" optional>`the module`</autoref>')
        assert rewrite(":class:`gone.Thing` and :data:`~nowhere`", method, {"pkg"}) == "`gone.Thing` and `nowhere`"
        fenced = "```python\nx = ':func:`f`'\n```\n"
        assert rewrite(fenced, method, {"pkg"}) == fenced


def test_a_formula_that_does_not_convert_fails_the_build_naming_page_and_tex():
    pytest.importorskip("math_core", reason="the docs extra is not installed: pip install -e '.[docs]'")
    from mkdocs.exceptions import PluginError

    mathml = _docs_module("mathml")
    html, count = mathml.tex_to_mathml('<span class="arithmatex">\\(\\operatorname{tr} x\\)</span>'
                                       '<div class="arithmatex">\\[\\begin{aligned} a &amp;= b \\end{aligned}\\]</div>')
    assert count == 2 and html.count("<math") == 2 and "arithmatex" not in html
    with pytest.raises(PluginError, match=r"theory\.md: the inline formula « \\nosuchcommand x »"):
        mathml.tex_to_mathml('<span class="arithmatex">\\(\\nosuchcommand x\\)</span>', "theory.md")
    page = SimpleNamespace(file=SimpleNamespace(src_uri="theory.md"))  # TeX that arithmatex did not take for math
    with pytest.raises(PluginError, match=r"theory\.md: « \$\\lvert x\\rvert \$ » is TeX that was not read"):
        mathml.on_page_content("<p>larger $\\lvert x\\rvert $ and <code>$\\fine$</code></p>", page, None, None)
