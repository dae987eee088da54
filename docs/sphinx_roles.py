"""Griffe extension (mkdocs.yml: the mkdocstrings python handler's ``extensions``): the Sphinx roles in the
package's docstrings become cross-references of the API reference when the site is built.

The docstrings name other objects the Sphinx way, ``:func:`plan_steps```, ``:class:`~lazyrich.train.Trajectory```,
``:mod:`lazyrich.theory```, which Markdown would show as text. Each role is rewritten, in the docstring griffe
loaded (the source files are not touched), into an *optional* mkdocs-autorefs reference:

- the target is looked up the way Python would see the name from where the docstring is: a dotted path that
  starts with a loaded package is taken as it is, a bare or partly dotted name is resolved in the scope of the
  documented object (its members, its module's imports, its parents);
- it is shown as inline code: the target as written, or its last part after ``~`` (as Sphinx does), or the
  explicit title of ``:role:`title <target>```;
- it links to the target's entry when the API reference renders that object (under its public or canonical
  path), and stays plain inline code otherwise. An optional reference that finds no page is not a warning, so a
  role whose target moved or is not documented never breaks ``mkdocs build --strict``; a name that cannot be
  resolved at all becomes plain inline code.
"""

from __future__ import annotations

import html
import re
from typing import Any

from griffe import Extension, NameResolutionError, Object

ROLE = re.compile(r":(?:py:)?(?P<role>func|class|mod|data|meth|attr|exc|obj|const|type):`(?P<body>[^`]+)`")
TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$", re.S)
FENCE = re.compile(r"^\s*(```|~~~)")


def _code(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds."""
    ticks = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


class SphinxRoles(Extension):
    """Rewrite ``:role:`target``` in every docstring of a loaded package into an optional cross-reference."""

    def __init__(self) -> None:
        super().__init__()
        self.rewritten = 0
        self.unresolved: list[tuple[str, str]] = []

    def on_package(self, *, pkg: Object, loader: Any, **kwargs: Any) -> None:
        roots = set(loader.modules_collection.members)
        for obj in _walk(pkg):
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = self.rewrite(obj.docstring.value, obj, roots)

    def rewrite(self, text: str, obj: Object, roots: set[str]) -> str:
        """``text`` (a docstring of ``obj``) with its roles rewritten; fenced code is left as it is."""
        out, fenced = [], False
        for line in text.splitlines(keepends=True):
            if FENCE.match(line):
                fenced = not fenced
            if fenced or line.lstrip().startswith(">>>"):
                out.append(line)
            else:
                out.append(ROLE.sub(lambda m: self._reference(m["body"], obj, roots), line))
        return "".join(out)

    def _reference(self, body: str, obj: Object, roots: set[str]) -> str:
        self.rewritten += 1
        titled = TITLED.match(body.strip())
        title, target = (titled["title"], titled["target"]) if titled else (None, body.strip())
        short = target.startswith("~")
        target = target.lstrip("~.")
        shown = title or (target.rsplit(".", 1)[-1] if short else target)
        identifier = _resolve(target, obj, roots)
        if identifier is None:
            self.unresolved.append((obj.path, target))
            return _code(shown)
        return f'<autoref identifier="{html.escape(identifier)}" optional>{_code(shown)}</autoref>'


def _resolve(target: str, obj: Object, roots: set[str]) -> str | None:
    """The full dotted path ``target`` names when read from ``obj``'s docstring, or None."""
    first, dot, rest = target.partition(".")
    if first in roots:
        return target
    try:
        return obj.resolve(first) + dot + rest
    except NameResolutionError:
        return None
    except Exception:  # an alias griffe cannot follow on the way: treat the name as unresolved
        return None


def _walk(obj: Object):
    """``obj`` and every object it defines (aliases are documented where they are defined)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)
