"""Figures from result tables: simulation solid, theory dotted, one colour per configuration.

Every function takes the long table of :func:`lazyrich.results.to_frame` (or :func:`lazyrich.results.load`),
draws on matplotlib axes and returns the figure; ``save`` writes a PNG. Matplotlib uses the Agg backend, so
figures render without a display (matplotlib falls back to Agg when there is none).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["curves", "save", "SIM_STYLE", "THEORY_STYLE"]

SIM_STYLE = {"linestyle": "-", "linewidth": 1.8}
THEORY_STYLE = {"linestyle": ":", "linewidth": 2.4}
LOG_METRICS = {"loss"}
LOG_FLOOR = 1e-12


def _mean_curve(part: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    grouped = part.groupby("t", sort=True)[column].mean()
    return grouped.index.to_numpy(), grouped.to_numpy()


def curves(frame: pd.DataFrame, metrics: Sequence[str] = ("loss", "kernel_distance"), hue: str = "lam",
           *, title: str | None = None, axes=None, log_t: bool = False):
    """One panel per metric against t; one colour per value of ``hue``; seeds averaged.

    Simulation (``sim/<metric>``) is solid; the theory (``theory/<metric>``), where present, is dotted on top in
    the same colour, so agreement reads as a dotted line lying on a solid one.
    """
    metrics = list(metrics)
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    values = sorted(frame[hue].dropna().unique()) if hue in frame else [None]
    cmap = plt.get_cmap("viridis")
    for i, value in enumerate(values):
        part = frame if value is None else frame[frame[hue] == value]
        colour = cmap(i / max(len(values) - 1, 1))
        label = None if value is None else f"{hue}={value:g}" if isinstance(value, int | float) else f"{hue}={value}"
        for ax, metric in zip(axes, metrics, strict=True):
            sim = f"sim/{metric}"
            if sim in part and part[sim].notna().any():
                t, y = _mean_curve(part, sim)
                ax.plot(t, y, color=colour, label=label, **SIM_STYLE)
            th = f"theory/{metric}"
            if th in part and part[th].notna().any():
                t, y = _mean_curve(part, th)
                ax.plot(t, y, color=colour, **THEORY_STYLE)
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set_xlabel("t = step · lr")
        ax.set_ylabel(metric.replace("_", " "))
        if metric in LOG_METRICS:
            ax.set_yscale("log")
            top = max((line.get_ydata().max() for line in ax.get_lines()), default=1.0)
            ax.set_ylim(bottom=max(ax.get_ylim()[0], LOG_FLOOR * top))  # below it is rounding, not learning
        if log_t:
            ax.set_xscale("symlog", linthresh=1e-2)
        ax.grid(alpha=0.3)
    if len(values) > 1 or values[0] is not None:
        axes[-1].legend(fontsize=7, frameon=False, title="solid: sim\ndotted: theory", title_fontsize=7,
                        loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG (creating folders) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
