"""The atlas at scale: a 65 536-network ``lazyrich atlas`` in one command against the trainer alone.

Workload (issue 21): 256 λ in [−4, 4] × 16 init scales in [10⁻², 10] × 16 seeds = 65 536 two-layer nets on the
8-item hierarchy (the atlas's default task and init), lr 0.01 to t = 2 (200 GD steps), 21 log points, theory
exact in every cell. Rows, measured side by side in this process (threads 1, as the command runs):

- cost per network-step of the ``lazyrich atlas`` command (a child process: start-up, imports, training, the
  theory, writing and reading back the run folder, the cell table and the maps) ÷ ``train`` alone on the same
  batch, in the chunks the run trains in (target ≤ 1.3);
- the same ÷ ``train`` alone on the whole batch at once (information: one batch is what the trainer would do given
  the memory; here it needs about 3 GiB);
- peak RSS of the command (target ≤ 2 GiB);
- the same two rows for a second workload at the default atlas's step, lr 0.002 (1000 steps to t = 2), where the
  command's fixed costs (start-up, the maps) weigh less (``--no-long`` skips it);
- with ``--default-atlas``, the same two rows for the default atlas's own settings (lr 0.002 to t = 10: 5000
  steps, 101 log points, theories exact and lazy): about 8 minutes here, so not part of ``make bench``.

Run standalone: ``python -m benchmarks.perf.bench_atlas [--quick] [--no-single] [--default-atlas]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.perf.common import Row, parser, row, run_measured

NAME = "atlas"
ROOT = Path(__file__).resolve().parents[2]
FULL = {"lams": 256, "scales": 16, "seeds": 16}
QUICK = {"lams": 16, "scales": 4, "seeds": 4}
SETTINGS = ["trainer.lr=0.01", "trainer.t_max=2", "trainer.n_log=21", "theories=[exact]"]
LONG = ["trainer.lr=0.002", "trainer.t_max=2", "trainer.n_log=21", "theories=[exact]"]
"""The second workload: the default atlas's step (lr 0.002), so 1000 GD steps to t = 2."""
DEFAULT: list[str] = []
"""The third (``--default-atlas``): the default atlas's settings, only the grid made larger."""


def words(size: dict[str, int], settings: list[str] = SETTINGS) -> list[str]:
    """The ``lazyrich atlas`` words of a workload."""
    seeds = ",".join(str(s) for s in range(size["seeds"]))
    return [f"init.lam=linspace(-4,4,{size['lams']})", f"init.scale=logspace(-2,1,{size['scales']})",
            f"seed=[{seeds}]", *settings]


def command(size: dict[str, int], out: Path, settings: list[str] = SETTINGS) -> dict[str, float]:
    """Run ``lazyrich atlas`` in a child process: its wall time (s) and peak RSS (MiB)."""
    cmd = [sys.executable, "-m", "lazyrich.cli", "atlas", *words(size, settings), f"out={out}", "logger=none"]
    env = {**os.environ, "WANDB_MODE": "disabled",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = run_measured(cmd, env=env, cwd=out.parent)
    if done["status"] != 0:
        raise RuntimeError(f"lazyrich atlas failed:\n{done['stderr']}")
    return {"seconds": done["seconds"], "peak_mib": done["peak_mib"]}


def trainer_alone(size: dict[str, int], single: bool, settings: list[str] = SETTINGS) -> dict[str, float]:
    """Wall time (s) of ``train`` alone on the atlas's batch, in the run's chunks (and at once if ``single``);
    the batch size, its GD steps and the chunk size."""
    from lazyrich.atlas.spec import parse_atlas, units_of
    from lazyrich.config.run import resolve_run
    from lazyrich.device import torch_threads
    from lazyrich.experiment.chunking import run_chunk
    from lazyrich.experiment.run import make_plan
    from lazyrich.train import train

    _, _, run = next(units_of(parse_atlas(words(size, settings))))
    config = resolve_run(run)
    plan, tr = make_plan(config), config.trainer
    lr = plan.meta["lr"].to_numpy()
    chunk = run_chunk(tr, len(lr), n_in=plan.first_task.n_in, n_out=plan.first_task.n_out)

    def part(rows: slice) -> None:
        train(plan.task, [w[rows] for w in plan.weights], lr[rows], t_max=tr.t_max, n_log=tr.n_log,
              n_matrix=tr.n_matrix, progress=False)

    out = {"batch": len(lr), "steps": round(tr.t_max / lr[0]), "chunk": chunk}
    with torch_threads(1):
        part(slice(0, min(chunk, len(lr))))  # warm-up
        start = time.perf_counter()
        for s in range(0, len(lr), chunk):
            part(slice(s, s + chunk))
        out["chunked"] = time.perf_counter() - start
        if single:
            start = time.perf_counter()
            part(slice(0, len(lr)))
            out["single"] = time.perf_counter() - start
    return out


def _rows(size: dict[str, int], cli: dict[str, float], base: dict[str, float], quick: bool) -> list[Row]:
    what = (f"B={base['batch']} ({size['lams']} λ × {size['scales']} scales × {size['seeds']} seeds), "
            f"{base['steps']} steps")
    per_step = 1e6 / (base["batch"] * base["steps"])
    rows = [row(NAME, f"`lazyrich atlas` ÷ train alone in the run's chunks, per network-step, {what}",
                baseline=base["chunked"], lazyrich=cli["seconds"], cost=cli["seconds"] / base["chunked"],
                max_cost=1.3, quick=quick,
                notes=f"{cli['seconds'] * per_step:.2f} vs {base['chunked'] * per_step:.2f} µs per network-step; "
                      f"chunks of {base['chunk']}; the command's wall includes start-up and imports"),
            row(NAME, f"peak RSS of `lazyrich atlas`, {what}", baseline=None, lazyrich=cli["peak_mib"], unit="MiB",
                max_value=2048.0, quick=quick, with_ratio=False, notes=f"completed in {cli['seconds']:.1f} s")]
    if "single" in base:
        rows.append(row(NAME, f"`lazyrich atlas` ÷ train alone on the whole batch at once, {what}",
                        baseline=base["single"], lazyrich=cli["seconds"], cost=cli["seconds"] / base["single"],
                        quick=quick, notes=f"{base['single'] * per_step:.2f} µs per network-step at once"))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--no-single", action="store_true", help="skip the trainer on the whole batch at once (≈ 3 GiB)")
    p.add_argument("--no-long", action="store_true", help="skip the second workload (lr 0.002: 1000 steps)")
    p.add_argument("--default-atlas", action="store_true",
                   help="add the default atlas's settings (5000 steps, 101 log points; about 8 minutes)")
    args = p.parse_args(argv)
    size = QUICK if args.quick else FULL
    workloads = (SETTINGS,) if args.quick or args.no_long else (SETTINGS, LONG)
    workloads += (DEFAULT,) if args.default_atlas else ()
    commands = []
    for settings in workloads:
        with tempfile.TemporaryDirectory() as tmp:
            commands.append(command(size, Path(tmp) / "atlas", settings))
    rows = []
    for settings, cli in zip(workloads, commands, strict=True):
        base = trainer_alone(size, single=not args.no_single and settings is SETTINGS, settings=settings)
        rows += _rows(size, cli, base, args.quick)
    return rows


if __name__ == "__main__":
    for r in main():
        print(r)
