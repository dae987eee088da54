"""The package's rooms and the one direction data flows between them, checked by scanning every import.

A room is a top-level module or folder of ``lazyrich/``. Each room has a rank; a module may import from its own
room and from rooms of lower rank only, and no chain of imports may come back to where it started. The scan reads
every ``import`` statement, also those inside functions (a lazy import is still a dependency), so an upward
import or a circle anywhere fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import lazyrich

PACKAGE = Path(lazyrich.__file__).resolve().parent

RANKS: dict[str, int] = {
    "device": 0,                       # where tensors live
    "init": 1, "metrics": 2, "tasks": 1, "plots": 1,  # the core: tensors in, tensors out
    "train": 3, "theory": 4,           # the trainer, and the theory beside it
    "config": 5,                       # schemas, checks, composition (lists tasks and theories)
    "store": 6,                        # the run folder on disk and its guards
    "results": 7,                      # curves, measures, tables, verified reads
    "tracking": 8,                     # the W&B mirror of results
    "experiment": 9,                   # config → objects → train/predict → sink
    "suites": 10,                      # declared sweeps over experiments
    "atlas": 10,                       # two-axis sweeps of runs with every theory in every cell
    "figures": 11,                     # views of suite folders
    "": 12,                            # lazyrich/__init__.py, the face of the Python API
    "cli": 13,                         # the command line (prints the face's version)
}
"""Rank of every room, lowest first (a room imports only from lower ranks or itself)."""

MAX_ROOMS = 18  # 17 until the atlas (issue 21) became a room of its own


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module a dotted import names (``lazyrich.results.load`` → ``lazyrich.results``)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(source: str, module: str) -> Iterator[str]:
    """Every lazyrich module that ``source`` (the text of ``module``) imports, at any depth of the file."""
    package = module if MODULES.get(module, Path()).name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (_resolve(a.name) for a in node.names if a.name.split(".")[0] == "lazyrich")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            if base.split(".")[0] == "lazyrich":
                yield from (_resolve(f"{base}.{a.name}") for a in node.names)


def room(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def graph() -> dict[str, set[str]]:
    return {m: set(imports(p.read_text(encoding="utf-8"), m)) - {m} for m, p in MODULES.items()}


def upward(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} → {b}" for a, targets in edges.items() for b in targets
                  if room(a) != room(b) and RANKS[room(b)] >= RANKS[room(a)])


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_room_has_a_rank_and_there_are_few_rooms():
    rooms = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
             if p.name != "__pycache__" and (p.is_dir() or p.suffix == ".py") and p.name != "__init__.py"}
    assert rooms <= set(RANKS), f"rank the new room(s) {sorted(rooms - set(RANKS))} in RANKS"
    entries = [p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"]
    assert len(entries) <= MAX_ROOMS, sorted(entries)


def test_no_room_imports_from_a_higher_one():
    assert upward(graph()) == []


def test_there_is_no_import_circle():
    assert circles(graph()) == []


@pytest.mark.parametrize("source, expected", [
    ("from lazyrich.suites import SUITES", ["lazyrich.suites"]),
    ("def f():\n    from lazyrich.experiment.run import run_experiment", ["lazyrich.experiment.run"]),
    ("from lazyrich import results", ["lazyrich.results"]),
    ("import lazyrich.cli", ["lazyrich.cli"]),
    ("from .sink import RunSink", ["lazyrich.experiment.sink"]),
])
def test_the_scan_sees_every_spelling_of_an_import(source, expected):
    assert list(imports(source, "lazyrich.experiment.run")) == expected


def test_an_upward_import_or_a_circle_fails():
    edges = graph()
    lazy_upward = imports("def f():\n    from lazyrich.suites import SUITES\n", "lazyrich.results.compare")
    assert upward({**edges, "lazyrich.results.compare": set(lazy_upward)}) == [
        "lazyrich.results.compare → lazyrich.suites"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
