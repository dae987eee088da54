"""MkDocs hook (mkdocs.yml: ``hooks``): a search index that works when the site is opened from disk.

The theme's own search loads ``search_index.json`` with ``fetch`` into a web worker, and a browser refuses both
for a page opened over ``file://``. This hook instead writes the index as a script, ``search/index.js``, which
sets ``window.lazyrichSearchIndex``; a plain ``<script>`` tag may load a file from disk, and
``docs/javascripts/search.js`` (the search box) loads it on first use and searches it in the page.

The index has one entry per section: every heading with an id starts one, so a long page (the theory, the API
reference) is found section by section. Formulas, scripts and the headings' permalink signs are left out.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
SKIPPED = {"math", "script", "style", "svg"}
INDEX = "search/index.js"

_sections: list[dict[str, str]] = []


class _Sections(HTMLParser):
    """Split a page's HTML into (anchor, heading, text) sections."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[list] = [["", [], []]]
        self.heading: str | None = None
        self.skipping: str | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        if self.skipping:
            return
        attrs = dict(attrs)
        if tag in SKIPPED or (tag == "a" and "headerlink" in (attrs.get("class") or "")):
            self.skipping = tag
        elif tag in HEADINGS and attrs.get("id"):
            self.sections.append(["" if tag == "h1" else attrs["id"], [], []])  # the page's title: its top
            self.heading = tag

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping:
                self.skipping = None
        elif tag == self.heading:
            self.heading = None

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.sections[-1][1 if self.heading else 2].append(data)


def _squash(parts: list[str]) -> str:
    return re.sub(r"\s+", " ", "".join(parts)).strip()


def page_sections(content: str, url: str, title: str) -> list[dict[str, str]]:
    """The index entries of one page: page title, section title, link from the site root, text."""
    parser = _Sections()
    parser.feed(content)
    parser.close()
    entries = []
    for anchor, heading, text in parser.sections:
        heading, text = _squash(heading), _squash(text)
        if not (heading or text):
            continue
        entries.append({"p": title, "t": heading or title, "u": f"{url}#{anchor}" if anchor else url, "x": text})
    return entries


def on_pre_build(config) -> None:
    _sections.clear()


def on_page_content(content: str, page, config, files) -> str:
    _sections.extend(page_sections(content, page.url, page.title or page.file.name))
    return content


def on_post_build(config) -> None:
    """Write ``search/index.js`` into the site."""
    path = Path(config.site_dir) / INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(_sections, ensure_ascii=False, separators=(",", ":"))
    path.write_text(f"window.lazyrichSearchIndex = {data};\n", encoding="utf-8")
