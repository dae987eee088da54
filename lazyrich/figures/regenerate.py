"""Regenerate figures from the command line and print a table of figure, time and max error."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lazyrich.figures.common import TOLERANCE, FigureResult

__all__ = ["FIGURES", "main", "run_figures"]


def _registry() -> dict[str, Callable[..., FigureResult]]:
    from lazyrich.figures import applications, dynamics, kernel, representations

    return {
        "fig1": dynamics.fig_1,
        "fig2": dynamics.fig_2,
        "fig3": dynamics.fig_3,
        "fig4": representations.fig_4,
        "fig5": kernel.fig_5,
        "fig6": applications.fig_6,
        "fig7": kernel.fig_7,
    }


FIGURES: tuple[str, ...] = ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7")
"""Figure names in order: fig1–fig5 as in the paper, fig6 the applications, fig7 the (λ, scale) heat map."""


def _normalise(name: str) -> str:
    key = name.strip().lower().replace("_", "").replace("fig", "")
    if f"fig{key}" not in FIGURES:
        raise SystemExit(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}.")
    return f"fig{key}"


def run_figures(
    out_dir: str | Path, *, small: bool = False, only: Sequence[str] | None = None, echo: bool = True
) -> list[tuple[str, float, FigureResult]]:
    """Run the chosen figures (all by default) into ``out_dir``: (name, seconds, result) each."""
    registry = _registry()
    names = FIGURES if not only else [_normalise(n) for n in only]
    rows = []
    for name in names:
        start = time.perf_counter()
        result = registry[name](Path(out_dir), small=small)
        rows.append((name, time.perf_counter() - start, result))
        if echo:
            print(
                f"{name}: {rows[-1][1]:.1f} s, max error {result.max_error:.3g} -> {result.path}", flush=True
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 0 when every figure's theory and simulation agree, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m lazyrich.figures", description=__doc__)
    parser.add_argument("--out", default="figures", help="folder for the PNGs (default: figures)")
    parser.add_argument("--small", action="store_true", help="reduced sizes (seconds per figure)")
    parser.add_argument("--only", default="", help="comma-separated figures, e.g. fig2,fig5")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    only = [n for n in args.only.split(",") if n.strip()]
    start = time.perf_counter()
    rows = run_figures(args.out, small=args.small, only=only)
    print(f"\n{'figure':<8}{'time [s]':>10}{'max error':>12}  verdict (tolerance {TOLERANCE:.0%})")
    for name, seconds, result in rows:
        verdict = "agree" if result.max_error <= TOLERANCE else "DISAGREE"
        print(f"{name:<8}{seconds:>10.1f}{result.max_error:>12.3g}  {verdict}")
    print(f"{'total':<8}{time.perf_counter() - start:>10.1f}")
    return 0 if all(r.max_error <= TOLERANCE for _, _, r in rows) else 1
