"""``lazyrich atlas [key=value …]``: parse the words, run the atlas into its folder, draw its maps, print its
summary and mirror it as one W&B run (:mod:`lazyrich.atlas.tracking`; ``logger=none``: none). Bad input stops in
one line (a :class:`~lazyrich.config.checks.ConfigError` the command reports)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from lazyrich.atlas.runner import figures, run_atlas
from lazyrich.atlas.spec import AtlasConfig, parse_atlases
from lazyrich.atlas.summary import BREAK_LEVEL
from lazyrich.atlas.tracking import log_atlas, split_logger
from lazyrich.config.run import WandbConfig
from lazyrich.device import torch_threads
from lazyrich.plots.labels import percent

__all__ = ["USAGE", "main", "one", "summary_lines"]

USAGE = """lazyrich atlas [x=KEY y=KEY] [KEY=VALUES ...] [theories=[exact,lazy]] [preset=NAME] [out=FOLDER]
              [logger=wandb|none]

  x=, y=        the two run-config keys swept (default init.lam, init.scale); give their values like any key:
                init.lam=[-4,0,4], init.scale=logspace(-3,0,7), trainer.lr=linspace(0.001,0.01,5)
  KEY=VALUE     any run-config key (task.name=…, trainer.t_max=…, seed=[0,1,2]: seeds are averaged per cell)
  theories=     theories held to the simulation in every cell (the first is also the run's own)
  boundary=     the final kernel distance that separates lazy from rich (default: halfway across the theory)
  break_level=  the relative deviation from a theory that counts as breaking it (default 0.05)
  sharpness=    true: log S, the top Hessian eigenvalue of the loss at init, and lr·S/2
  preset=       default | breaks (breaks-activation, breaks-tanh, breaks-lr, breaks-decay, into sub-folders)
                or one of those four alone
  out=          the atlas folder (default outputs/atlas/<time>); the same command into it resumes it
  logger=       wandb (default): one W&B run per atlas (cells table, maps, summary), offline unless
                WANDB_MODE=online; logger.wandb.KEY=VALUE as for lazyrich run | none: no W&B run
"""


def _text(value: object) -> str:
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return str(value)


def summary_lines(summary: dict) -> list[str]:
    """The atlas summary as a few lines of text: agreement per theory, the boundary, where theories break."""
    lines = [f"{summary['cells']} cells, {summary['networks']} networks"]
    for theory, a in summary["agreement"].items():
        if a["cells_in_domain"]:
            lines.append(f"theory {theory}: {a['cells_agree']}/{a['cells_in_domain']} in-domain cells agree "
                         f"(max |Δ kernel distance| {a['max_gap_kernel_final']:.2g}, max time gap "
                         f"{a['max_gap_time']:.2g})")
        else:
            lines.append(f"theory {theory}: no cell inside its domain")
    b = summary.get("boundary")
    if b and b["level"] is not None:
        lines.append(f"lazy/rich boundary (kernel distance {b['level']:.3g}): simulation vs {b['theory']}: "
                     f"{b['differ']} cell(s) differ, offset {b['offset']:g} cell(s)")
    for column, (low, high) in summary.get("ranges", {}).items():
        lines.append(f"{column}: {low:.3g} … {high:.3g} over the cells")
    level = percent(summary.get("break_level", BREAK_LEVEL))
    for theory, axes in summary["breaks"].items():
        for axis, found in axes.items():
            other = next((a for a in axes if a != axis), "")
            hits = [f"{_text(v)} ({other}={_text(k)})" for k, v in found.items() if v is not None]
            if hits:
                lines.append(f"{theory} deviates > {level} along {axis} from: " + ", ".join(hits))
    return lines


def main(argv: Sequence[str]) -> int:
    """Run ``lazyrich atlas`` with the words ``argv`` (every atlas of a preset group, each in a sub-folder);
    returns the exit status."""
    if any(word in ("-h", "--help", "help") for word in argv):
        print(USAGE)
        return 0
    argv, wandb = split_logger(argv)  # the W&B choice is the command's: never in the atlas's record
    configs = parse_atlases(argv)
    out = Path(configs[0].extra.get("out") or f"outputs/atlas/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    for config in configs:
        config.extra.pop("out", None)
        one(config, out if len(configs) == 1 else out / config.preset, wandb)
    return 0


def one(config: AtlasConfig, out: Path, wandb: WandbConfig | None = None) -> None:
    """Run one atlas into ``out`` (its maps drawn before it is sealed), print its summary and, with ``wandb``,
    mirror the sealed folder as one W&B run."""
    started = time.perf_counter()
    with torch_threads(config.base.get("threads", 1)):
        cells = run_atlas(config, out)
    maps = figures(out)
    summary = cells.attrs["atlas"]["summary"]
    print("\n".join(summary_lines(summary)))
    print(f"atlas {config.preset}: {out} ({len(maps)} figures, {time.perf_counter() - started:.1f} s)")
    mirrored = log_atlas(out, wandb)
    if mirrored:
        later = f" (offline: `lazyrich sync {out}` uploads it)" if "offline-run-" in Path(mirrored).name else ""
        print(f"W&B: the atlas's run is in {mirrored}{later}")
