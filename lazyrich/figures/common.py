"""What every figure shares: the result record, the agreement sentence, run helpers.

Error convention: a panel's error is :func:`lazyrich.results.max_rel_error` (the project's one agreement
measure) over everything it plots: max |simulation − theory| divided by the largest |theory| (its scale).
A figure's ``max_error`` is the largest panel error, and
the figure "agrees" when that is at most ``TOLERANCE``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lazyrich import plots
from lazyrich.config.run import RunConfig, resolve_run
from lazyrich.experiment import ExperimentResult, build_batch, build_task, run_experiment
from lazyrich.results import AGREEMENT_RTOL
from lazyrich.suites.common import run_config

__all__ = [
    "THEORY",
    "Drawing",
    "TOLERANCE",
    "FigureResult",
    "config",
    "figure",
    "figure_result",
    "lam_axis",
    "non_saddle",
    "np64",
    "save_png",
    "run",
    "sim_and_theory",
    "statement",
]

TOLERANCE = AGREEMENT_RTOL
"""Agreement threshold (5% of a quantity's scale), ``lazyrich.results.AGREEMENT_RTOL``: GD at the learning
rates used here follows the flow to ~1%, so 5% separates discretisation error from a wrong theory."""

THEORY = "exact"
"""The theory a figure compares with unless it names another: the exact solution (the schema's ``auto`` would
quietly take another theory where the exact one does not apply; a figure shows the one it names, or fails)."""


@dataclass
class FigureResult:
    """One regenerated figure: where its PNG is, its measured max theory-vs-simulation error (relative to the
    plotted scale), the one-sentence statement, and the error of each panel."""

    path: Path
    max_error: float
    statement: str
    errors: dict[str, float] = field(default_factory=dict)


Drawing = Callable[[Path, bool], tuple[Any, dict[str, float]]]
"""What draws a figure: (out_dir, small) → (the matplotlib figure, {panel: its error})."""


def figure(what: str, title: str | None = None, **layout: Any) -> Callable[[Drawing], Callable[..., FigureResult]]:
    """Declare a figure: what it shows (its statement's first half), its ``title`` above the panels (None: none)
    and ``layout`` (``fig.tight_layout`` options), around the function that draws it (:data:`Drawing`). The
    declared ``fig_N(out_dir, small=False)`` draws with one intra-op torch thread (restored afterwards), then
    starts every linear y axis of a line plot at zero (:func:`lazyrich.plots.from_zero`), titles, lays out and
    saves ``figN.png`` and ``figN.pdf`` (:func:`save_png`) and returns its :class:`FigureResult`.

    One thread: every net here is at most 8 × 8; on two shared cores, splitting such matmuls over threads made
    training 20–50× slower (thread hand-offs cost more than the arithmetic).
    """

    def declare(draw: Drawing) -> Callable[..., FigureResult]:
        @functools.wraps(draw, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
        def regenerate(out_dir: str | Path, small: bool = False) -> FigureResult:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                fig, errors = draw(Path(out_dir), small)
            finally:
                torch.set_num_threads(threads)
            for ax in fig.axes:
                if ax.get_lines() and not ax.get_images():  # an image's y limits are its pixel rows
                    plots.from_zero(ax)
            if title is not None:
                fig.suptitle(title)
            fig.tight_layout(**layout)
            return figure_result(save_png(fig, out_dir, draw.__name__.replace("_", ""), small), errors, what)

        return regenerate

    return declare


def np64(x: Tensor | np.ndarray | float) -> np.ndarray:
    """A float64 numpy copy of a tensor or array."""
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=float)


SMALL_DPI = 80
"""Resolution of the PNGs of ``--small`` (a quick check, where rendering is most of the time); the full figures
are written at :data:`lazyrich.plots.DPI` (200)."""


def save_png(fig, out_dir: str | Path, name: str, small: bool) -> Path:
    """Write ``out_dir/name.png`` (200 dpi, or :data:`SMALL_DPI` at reduced size) and ``name.pdf`` beside it."""
    return plots.save(fig, Path(out_dir) / f"{name}.png", dpi=SMALL_DPI if small else plots.DPI)


def statement(what: str, error: float, tol: float = TOLERANCE) -> str:
    """The one sentence: ``what`` the figure shows and whether theory and simulation agree, from ``error``."""
    if math.isfinite(error) and error <= tol:
        verdict = f"theory (dotted) and simulation (solid) agree to within {tol:.0%} of each plotted scale"
    else:
        verdict = f"theory (dotted) and simulation (solid) disagree by more than {tol:.0%} of a plotted scale"
    return f"{what}; {verdict}."


def figure_result(path: Path, errors: dict[str, float], what: str) -> FigureResult:
    """The record of a figure saved at ``path``: its error is the largest of the panel ``errors``, and its
    sentence says ``what`` it shows and whether theory and simulation agree."""
    err = max(errors.values())
    return FigureResult(path, err, statement(what, err), errors)


def config(task: Mapping[str, Any], *, theory: str = THEORY, **fields: Any) -> RunConfig:
    """A figure's run of ``task``: the schema defaults except ``fields`` (fields of the run config by name:
    ``lam``, ``scale``, ``lr``, ``t_max``, ``n_log``, ``seed``, …, see :func:`lazyrich.suites.common.run_config`),
    compared with ``theory``, without a progress bar, and with every matrix kept at every log point (the nets
    here are small)."""
    run = run_config(task, theory=theory, progress=False, **fields)
    return dataclasses.replace(run, trainer=dataclasses.replace(run.trainer, n_matrix=run.trainer.n_log))


def run(cfg: RunConfig) -> ExperimentResult:
    """run_experiment without a run folder, W&B or plots, and with a theory that must have applied."""
    result = run_experiment(cfg)
    if any(p is None for p in result.predictions) and cfg.theory.name != "none":
        raise RuntimeError("the theory did not apply: " + "; ".join(result.theory_notes))
    return result


def non_saddle(cfg: RunConfig, tries: int = 20) -> RunConfig:
    """``cfg`` with the first seed ≥ its own whose every network converges to the global minimum, not a saddle.

    Random zero-balanced square nets go to a saddle about half the time (docs/theory.md §4); a figure meant to show
    the rich solution picks a seed that does not. The exact theory's B tells which without training.
    """
    from lazyrich import theory as th

    config = resolve_run(cfg)
    task = build_task(config.task)
    first = next(iter(task)).task if hasattr(task, "phases") else task
    start = config.seed[0]
    for seed in range(start, start + tries):
        weights, _ = build_batch(config.init, config.model, config.trainer.lr, [seed], first.n_in, first.n_out,
                                 first.sigma_yx, torch.device("cpu"))
        pred = th.get_theory("exact").predict(first, weights, torch.zeros(1, dtype=torch.float64))
        if not bool(pred.converges_to_saddle.any()):
            return dataclasses.replace(cfg, seed=seed)
    raise RuntimeError(f"no seed in [{start}, {start + tries}) avoids the saddle; widen the search.")


def lam_axis(ax, lams: Sequence[float], xlabel: str = "λ", **options: Any) -> None:
    """An x axis of λ values: symlog (linear within |λ| ≤ 1, so 0 and both signs show), ticked at ``lams``,
    labelled ``xlabel``; ``options`` go to ``ax.set`` (ylabel, title, yscale, …)."""
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xticks(lams, [f"{v:g}" for v in lams])
    ax.set(xlabel=xlabel, **options)


def upper_pairs(n: int) -> list[tuple[int, int]]:
    """The (i, j) with i ≤ j of an n × n symmetric matrix: its distinct entries."""
    return [(i, j) for i in range(n) for j in range(i, n)]


def sim_and_theory(result: ExperimentResult, name: str, phase: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, simulated, predicted) of the curve or matrix ``name`` of every network in one phase, read through
    :meth:`~lazyrich.experiment.ExperimentResult.curves` (one shape for both): a curve gives t (B, T) and values
    (B, T); a matrix gives its log times (B, Tm) and values (B, Tm, …), the theory's at the same points."""
    simulation, theory = (c[phase] for c in result.curves())
    if theory is None:
        raise RuntimeError(f"no theory predicted phase {phase}: " + "; ".join(result.theory_notes))
    t = simulation.matrix_t if name in simulation.matrices else simulation.t
    return np64(t), np64(simulation[name]), np64(theory[name])
