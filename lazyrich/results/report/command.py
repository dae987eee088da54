"""``lazyrich report``: one self-contained HTML page for a run, sweep, suite, bench or any folder of them, and
``--check``, which recomputes every value on such a page from the folder's verified files.

    lazyrich report DIR [--out FILE]              write FILE (default DIR/report.html)
    lazyrich report DIR --check [--report FILE]   recompute FILE's values (default DIR/report.html) from DIR

A check names every value whose page text or embedded record differs from what the folder gives now, every value
missing from the page or not recomputable, and every figure whose embedded bytes differ from its file; it exits
1 if there is any, else 0.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from lazyrich.results.report.build import SuiteView, build
from lazyrich.results.report.html import read, render
from lazyrich.results.report.model import jsonable, plain

__all__ = ["check", "main", "provenance", "write"]

REPORT = "report.html"


def provenance(folder: Path) -> dict[str, str]:
    """Who writes the page: versions, the git commit of the folder's or the working directory's checkout (best
    effort: never an error), host, CPU, and when."""
    versions = {}
    for name in ("lazyrich", "torch", "numpy", "pandas", "matplotlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        **versions,
        "python": platform.python_version(),
        "commit": _commit(folder) or _commit(Path.cwd(), "the working directory") or "no git checkout found",
        "host": platform.node() or "unknown",
        "system": platform.platform(),
        "cpu": f"{_cpu()} ({os.cpu_count()} logical CPUs)",
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _commit(folder: Path, where: str = "the folder") -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), "describe", "--always", "--dirty", "--abbrev=12"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{done.stdout.strip()} ({where}'s checkout)" if done.returncode == 0 and done.stdout.strip() else None


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def write(folder: str | Path, out: str | Path | None = None,
          suites: Mapping[str, SuiteView] | None = None) -> Path:
    """Build the report of ``folder`` and write it to ``out`` (default ``folder/report.html``); returns the path."""
    folder = Path(folder)
    report = build(folder, suites)
    report.provenance = provenance(folder)
    out = Path(out) if out is not None else folder / REPORT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report), encoding="utf-8")
    return out


def check(folder: str | Path, page: str | Path | None = None,
          suites: Mapping[str, SuiteView] | None = None) -> tuple[list[str], int]:
    """Every difference between the report page ``page`` (default ``folder/report.html``) and the report the
    folder gives now, one line each (none: it checks), and how many values were compared."""
    folder = Path(folder)
    path = Path(page) if page is not None else folder / REPORT
    if not path.is_file():
        raise FileNotFoundError(f"lazyrich report: no report at {path}; write one with `lazyrich report {folder}` "
                                f"or name it with --report FILE.")
    seen = read(path.read_text(encoding="utf-8"))
    expected = build(folder, suites).numbers()
    problems = []
    for ident, number in expected.items():
        if ident not in seen.shown:
            problems.append(f"{ident}: missing from the page ({number.source} gives {_short(number.text)})")
            continue
        if plain(seen.shown[ident]) != plain(number.text):
            problems.append(f"{ident}: the page shows {_short(seen.shown[ident])}, {number.source} gives "
                            f"{_short(number.text)}")
        record = seen.records.get(ident)
        if record is None or record.get("text") != number.text or record.get("value") != jsonable(number.value):
            problems.append(f"{ident}: the page's embedded record differs from {number.source}")
        if ident in seen.figures and seen.figures[ident] != number.value:
            problems.append(f"{ident}: the embedded figure is not the file ({number.source})")
    extra = sorted((seen.shown.keys() | seen.records.keys()) - expected.keys())
    problems += [f"{ident}: on the page, but the folder gives no such value" for ident in extra]
    return problems, len(expected)


def _short(text: str, width: int = 80) -> str:
    text = plain(text)
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def main(argv: Sequence[str] | None = None, suites: Mapping[str, SuiteView] | None = None) -> int:
    """Entry point of ``lazyrich report``; ``suites``: each suite's view (the CLI passes every registered suite's).
    Returns the exit status."""
    parser = argparse.ArgumentParser(prog="lazyrich report", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a run, sweep, suite or bench folder, or a folder of them")
    parser.add_argument("--out", default=None, help=f"where to write the page (default: FOLDER/{REPORT})")
    parser.add_argument("--check", action="store_true", help="recompute an existing page's values from FOLDER")
    parser.add_argument("--report", default=None, help=f"the page to check (default: FOLDER/{REPORT})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.check:
        problems, compared = check(args.folder, args.report, suites)
        for line in problems:
            print(f"DIFFERS {line}")
        target = args.report or Path(args.folder) / REPORT
        if problems:
            print(f"report check: {len(problems)} value(s) of {target} differ from {args.folder}.", file=sys.stderr)
            return 1
        print(f"report check: all {compared} values of {target} match {args.folder} "
              f"({time.perf_counter() - start:.1f} s).")
        return 0
    out = write(args.folder, args.out, suites)
    print(f"report: wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - start:.1f} s.")
    return 0
