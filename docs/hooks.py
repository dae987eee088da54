"""MkDocs hooks (mkdocs.yml: ``hooks``): what the docs generate at build time, so it cannot drift.

- The marker ``<!-- lazyrich:config-reference -->`` becomes the config reference, composed from ``conf/`` by
  :func:`lazyrich.config.reference.config_reference`.
- The notebooks in ``notebooks/`` are added to the site as downloadable files under ``notebooks/``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

MARKER = "<!-- lazyrich:config-reference -->"
ROOT = Path(__file__).resolve().parents[1]


def on_files(files: Files, config) -> Files:
    """Add every ``notebooks/*.ipynb`` of the checkout to the site."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        files.append(File.generated(config, f"notebooks/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the config-reference marker by the reference generated from the configs."""
    if MARKER not in markdown:
        return markdown
    from lazyrich.config.compose import conf_dir
    from lazyrich.config.reference import config_reference

    return markdown.replace(MARKER, config_reference(conf_dir()))
