"""MkDocs hooks (mkdocs.yml: ``hooks``): what the docs generate at build time, so it cannot drift.

- The marker ``<!-- lazyrich:config-reference -->`` becomes the config reference, composed from ``conf/`` by
  :func:`lazyrich.config.reference.config_reference`.
- The notebooks in ``notebooks/`` are added to the site as downloadable files under ``notebooks/``.
- The marker ``<!-- lazyrich:figure-gallery -->`` becomes a gallery of every figure in ``docs/img/``, each
  captioned as the page that shows it captions it, with a link to that page (nothing when there is no figure).
- Every figure in a page links to its full-size file, so a wide multi-panel figure can be opened at full size.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

MARKER = "<!-- lazyrich:config-reference -->"
GALLERY = "<!-- lazyrich:figure-gallery -->"
ROOT = Path(__file__).resolve().parents[1]
DOCS = Path(__file__).resolve().parent
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+\.(?:png|svg|jpe?g|gif|webp))\)")
# An <img> in the rendered page, and whether a link already holds it.
IMG_TAG = re.compile(r"(?P<open><a\b[^>]*>\s*)?(?P<img><img\b[^>]*>)")
SRC = re.compile(r'\bsrc="(?P<src>[^"]+)"')


def on_files(files: Files, config) -> Files:
    """Add every ``notebooks/*.ipynb`` of the checkout to the site."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files.append(File.generated(config, f"notebooks/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the config-reference and figure-gallery markers by what they stand for."""
    if GALLERY in markdown:
        markdown = markdown.replace(GALLERY, figure_gallery(page.file.src_uri))
    if MARKER not in markdown:
        return markdown
    from lazyrich.config.compose import conf_dir
    from lazyrich.config.reference import config_reference

    return markdown.replace(MARKER, config_reference(conf_dir()))


def on_page_content(content: str, page, config, files) -> str:
    """Wrap every image that no link holds in a link to the image itself (click to open it full size)."""

    def wrap(match: re.Match) -> str:
        src = SRC.search(match["img"])
        if match["open"] or not src or src["src"].startswith("data:"):
            return match[0]
        return f'<a class="figure-link" href="{src["src"]}" title="Open the full-size figure">{match["img"]}</a>'

    return IMG_TAG.sub(wrap, content)


def figure_gallery(page_uri: str) -> str:
    """A "Figure gallery" section (Markdown, md_in_html) of ``docs/img/*`` for the page ``page_uri`` (a
    docs-relative path), or "" when there is no figure.

    Each figure is captioned with the alt text of the page that shows it, and links to that page.
    """
    shown: dict[str, tuple[str, str]] = {}  # docs-relative image -> (alt text, docs-relative page)
    for md in sorted(DOCS.rglob("*.md")):
        uri = md.relative_to(DOCS).as_posix()
        for match in IMAGE.finditer(md.read_text(encoding="utf-8")):
            image = posixpath.normpath(posixpath.join(posixpath.dirname(uri), match["src"]))
            shown.setdefault(image, (match["alt"], uri))
    images = sorted(p.relative_to(DOCS).as_posix() for p in (DOCS / "img").glob("*")
                    if p.suffix.lower() in {".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp"})
    if not images:
        return ""
    here = posixpath.dirname(page_uri)
    figures = []
    for image in images:
        alt, where = shown.get(image, (Path(image).stem.replace("_", " "), None))
        caption = alt if where is None else f"{alt} ([{_page_title(where)}]({posixpath.relpath(where, here or '.')}))"
        figures.append(f'<figure markdown="1">\n\n![{alt}]({posixpath.relpath(image, here or ".")})\n\n'
                       f'<figcaption markdown="1">{caption}</figcaption>\n</figure>\n')
    return ("## Figure gallery\n\nThe figures of the benchmark suites, as the suite pages show them (click one to open "
            "it full size).\n\n" + '<div class="figure-gallery" markdown="1">\n\n' + "\n".join(figures) + "\n</div>\n")


def _page_title(uri: str) -> str:
    """The first heading of a docs page, else its file name."""
    for line in (DOCS / uri).read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return Path(uri).stem
