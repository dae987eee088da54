"""MkDocs hook (mkdocs.yml: ``hooks``): every formula becomes MathML when the site is built, so a page shows its
mathematics with no script and no network.

``pymdownx.arithmatex`` (generic mode) finds the TeX in the Markdown, ``$…$`` inline and ``$$…$$`` on its own
lines, and keeps it away from the Markdown parser; it leaves ``<span class="arithmatex">\\(…\\)</span>`` and
``<div class="arithmatex">\\[…\\]</div>``. This hook converts each of them with ``math_core`` (MathML Core, which
current browsers render natively). A formula that does not convert stops the build with the page and the TeX, and
so does TeX between dollars that arithmatex did not take for a formula, so no page ships raw TeX.
"""

from __future__ import annotations

import html
import re

from mkdocs.exceptions import PluginError

# What arithmatex leaves in a page: the TeX, HTML-escaped, between \( \) or \[ \].
INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
DISPLAY = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)
# TeX between dollars that arithmatex did not take for a formula (``$x $``: a space before the closing dollar),
# looked for in the page's text outside code and MathML.
STRAY = re.compile(r"\$[^$<>\n]*\\[A-Za-z]+[^$<>\n]*\$")
NOT_TEXT = re.compile(r"<(pre|code|math)\b.*?</\1>", re.S)

_converter = None


def _convert(tex: str, *, display: bool, where: str) -> str:
    global _converter
    try:
        from math_core import LatexError, LatexToMathML
    except ImportError as exc:  # the docs extra declares it
        raise PluginError("docs/mathml.py needs math-core: pip install -e '.[docs]'") from exc
    if _converter is None:
        _converter = LatexToMathML(fancy_error=False)
    try:
        return _converter.convert_with_local_state(tex, displaystyle=display)
    except LatexError as exc:
        kind = "display" if display else "inline"
        raise PluginError(f"{where}: the {kind} formula « {tex} » does not convert to MathML: {exc}") from None


def tex_to_mathml(content: str, where: str = "<page>") -> tuple[str, int]:
    """``content`` with every arithmatex formula replaced by MathML, and how many there were."""
    count = 0

    def display(match: re.Match) -> str:
        nonlocal count
        count += 1
        tex = html.unescape(match[1]).strip()
        return f'<div class="math-display">{_convert(tex, display=True, where=where)}</div>'

    def inline(match: re.Match) -> str:
        nonlocal count
        count += 1
        return _convert(html.unescape(match[1]).strip(), display=False, where=where)

    content = DISPLAY.sub(display, content)
    content = INLINE.sub(inline, content)
    return content, count


def on_page_content(content: str, page, config, files) -> str:
    """Convert the page's formulas; fail the build on one that does not convert or that arithmatex left behind."""
    where = page.file.src_uri
    content, _ = tex_to_mathml(content, where)
    if 'class="arithmatex"' in content:
        left = re.search(r'class="arithmatex">(.{0,120})', content, re.S)
        raise PluginError(f"{where}: a formula was left as TeX (not in the form this hook converts): "
                          f"« {html.unescape(left[1]) if left else ''} »")
    stray = STRAY.search(NOT_TEXT.sub("", content))
    if stray:
        raise PluginError(f"{where}: « {html.unescape(stray[0])} » is TeX that was not read as a formula "
                          "(no space may follow the opening $ or precede the closing one)")
    return content
