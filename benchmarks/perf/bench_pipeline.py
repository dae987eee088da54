"""The whole pipeline on a big sweep: ``lazyrich run`` against the trainer alone, its memory and its output.

Workload (issue 10): 64 λ in [−4, 4] × 64 seeds = 4096 two-layer nets on the 8-item hierarchy, ``init=balanced``
and the run defaults (lr 0.01, t_max 10: 1000 GD steps, 101 log points, matrices at 21, theory auto → exact),
``logger=none``. Rows, each a ratio or a figure measured side by side in this process:

- run_experiment wall ÷ ``train`` alone on the same batch, medians of 3 interleaved repeats unless ``--repeats``
  says otherwise (target ≤ 1.5, issue 21; 2.35–2.46 before chunks were predicted and written on a spare core); the
  notes add the ``lazyrich run`` command's wall, interpreter start-up and imports included;
- peak RSS of the ``lazyrich run`` command (target ≤ 1 GiB) and the bytes it wrote (target ≤ 100 MB);
- the theory's prediction of the 4096 nets × 101 points, in the pipeline's chunks, ÷ ``train`` alone (≤ 1);
- the ``deep_aligned`` theory of 22 depth-4 task-aligned nets (λ in [−2, 2], the run defaults otherwise) ÷
  ``train`` alone on them (≤ 1: no theory slower than the training it predicts);
- B = 65 536 (256 λ × 256 seeds, ``trainer.t_max=2 trainer.n_log=21``) through ``lazyrich run``: peak RSS
  (≤ 2 GiB) and its cost per network-step ÷ the 4096 command's (≤ 1.3).

Run standalone: ``python -m benchmarks.perf.bench_pipeline [--quick] [--no-big]`` (``--quick`` leaves out the
B = 65 536 command).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.perf.common import Row, median, parser, repeat_time, row, run_measured

NAME = "pipeline"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sweep:
    n_lam: int = 64
    n_seeds: int = 64
    t_max: float = 10.0
    n_log: int = 101

    @property
    def batch(self) -> int:
        return self.n_lam * self.n_seeds

    @property
    def steps(self) -> int:
        """GD steps per network at the default learning rate (the schema's ``trainer.lr``; the sweep leaves it)."""
        from lazyrich.config.run import TrainerConfig

        return round(self.t_max / TrainerConfig().lr)

    def overrides(self) -> list[str]:
        lams = ",".join(f"{x:.6g}" for x in np.linspace(-4.0, 4.0, self.n_lam))
        seeds = ",".join(str(s) for s in range(self.n_seeds))
        return [f"init.lam={lams}", f"seed={seeds}", f"trainer.t_max={self.t_max}", f"trainer.n_log={self.n_log}",
                "init=balanced", "logger=none", "trainer.progress=false"]


FULL, BIG = Sweep(), Sweep(n_lam=256, n_seeds=256, t_max=2.0, n_log=21)
QUICK = Sweep(n_lam=8, n_seeds=8, t_max=1.0, n_log=11)


def config(sweep: Sweep):
    """The resolved config of ``lazyrich run`` with the sweep's overrides (a RunConfig)."""
    from lazyrich.config.compose import batch_overrides, compose
    from lazyrich.config.run import resolve_run

    return resolve_run(compose("config", batch_overrides(sweep.overrides())))


def command(sweep: Sweep, out: Path) -> dict[str, float]:
    """Run ``lazyrich run`` in a child process: its wall time (s), peak RSS (MiB) and bytes written (MB)."""
    cmd = [sys.executable, "-m", "lazyrich.cli", "run", *sweep.overrides(), f"hydra.run.dir={out}"]
    path = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    done = run_measured(cmd, env={**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": path}, cwd=out.parent)
    if done["status"] != 0:
        raise RuntimeError(f"lazyrich run failed:\n{done['stderr']}")
    written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"seconds": done["seconds"], "peak_mib": done["peak_mib"], "written_mb": written / 1e6}


def in_process(sweep: Sweep, repeats: int) -> dict[str, float]:
    """Trainer alone, theory alone (in the pipeline's chunks) and run_experiment, timed side by side."""

    from lazyrich.device import torch_threads
    from lazyrich.experiment import predict_theory, run_experiment
    from lazyrich.experiment.chunking import run_chunk
    from lazyrich.experiment.run import make_plan
    from lazyrich.train import train

    cfg = config(sweep)
    plan = make_plan(cfg)
    task, weights, meta, tr = plan.task, plan.weights, plan.meta, cfg.trainer

    def trainer():
        return train(task, weights, meta["lr"].to_numpy(), t_max=tr.t_max, n_log=tr.n_log, n_matrix=tr.n_matrix,
                     progress=False)

    size = run_chunk(tr, len(meta), n_in=task.n_in, n_out=task.n_out)  # the chunks `lazyrich run` writes in
    with torch_threads(cfg.threads):
        t_grid = trainer().t  # also the warm-up

    def theory():
        for s in range(0, len(meta), size):
            predict_theory("exact", task, [w[s:s + size] for w in weights], t_grid[s:s + size])

    def pipeline():
        with tempfile.TemporaryDirectory() as tmp:
            run_experiment(cfg, Path(tmp) / "run")

    times: dict[str, list[float]] = {"train": [], "theory": [], "run": []}
    with torch_threads(cfg.threads):  # as `lazyrich run` does (1 by default)
        for _ in range(repeats):  # interleaved, so that a change of machine load hits all three alike
            for name, fn in (("train", trainer), ("theory", theory), ("run", pipeline)):
                times[name] += repeat_time(fn, 1)[0]
    return {**{k: median(v) for k, v in times.items()}, "chunk": size}


def deep_theory(n_lam: int, repeats: int, quick: bool = False) -> dict[str, float]:
    """``deep_aligned``'s prediction of ``n_lam`` depth-4 aligned nets and ``train`` alone on them (median s);
    ``quick``: to t = 1 (100 steps) instead of the run default."""
    from lazyrich.config.compose import batch_overrides, compose
    from lazyrich.config.run import resolve_run
    from lazyrich.device import torch_threads
    from lazyrich.experiment import predict_theory
    from lazyrich.experiment.run import make_plan

    lams = ",".join(f"{x:.6g}" for x in np.linspace(-2.0, 2.0, n_lam))
    cfg = resolve_run(compose("config", batch_overrides([f"init.lam={lams}", "init=aligned", "model=deep",
                                                         "model.depth=4", "logger=none", "trainer.progress=false",
                                                         *(["trainer.t_max=1"] if quick else [])])))
    plan = make_plan(cfg)
    assert plan.theories[0] == "deep_aligned", plan.theories
    with torch_threads(cfg.threads):
        t_grid = plan.training.train(plan.task, plan.weights, plan.meta, None).t  # also the warm-up
        predict_theory("deep_aligned", plan.task, plan.weights, t_grid)
        times: dict[str, list[float]] = {"train": [], "theory": []}
        for _ in range(max(3, repeats)):
            times["train"] += repeat_time(lambda: plan.training.train(plan.task, plan.weights, plan.meta, None), 1)[0]
            times["theory"] += repeat_time(lambda: predict_theory("deep_aligned", plan.task, plan.weights, t_grid),
                                           1)[0]
    return {k: median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--no-big", action="store_true", help="skip the B = 65 536 command")
    args = p.parse_args(argv)
    sweep, big = (QUICK if args.quick else FULL), BIG
    with_big = not args.no_big and not args.quick  # a smoke test needs no second command
    with tempfile.TemporaryDirectory() as tmp:
        cli = command(sweep, Path(tmp) / "run")
    if with_big:
        with tempfile.TemporaryDirectory() as tmp:
            b = command(big, Path(tmp) / "run")
    m = in_process(sweep, args.repeats or (1 if args.quick else 3))  # the machine moves the trainer by ±30%
    what = f"B={sweep.batch} ({sweep.n_lam} λ × {sweep.n_seeds} seeds), {sweep.steps} steps, {sweep.n_log} log points"
    rows = [
        row(NAME, f"run_experiment ÷ train alone, {what}", baseline=m["train"], lazyrich=m["run"],
            cost=m["run"] / m["train"], max_cost=1.5, quick=args.quick,
            notes=f"chunks of {m['chunk']}; `lazyrich run` took {cli['seconds']:.1f} s "
                  f"(÷ train alone {cli['seconds'] / m['train']:.2f}) with start-up and imports"),
        row(NAME, f"peak RSS of `lazyrich run`, {what}", baseline=None, lazyrich=cli["peak_mib"], unit="MiB",
            max_value=1024.0, quick=args.quick, with_ratio=False),
        row(NAME, f"bytes written by `lazyrich run`, {what}", baseline=None, lazyrich=cli["written_mb"],
            unit="MB", max_value=100.0, quick=args.quick, with_ratio=False),
        row(NAME, f"theory (exact) ÷ train alone, {what}", baseline=m["train"], lazyrich=m["theory"],
            cost=m["theory"] / m["train"], max_cost=1.0, quick=args.quick,
            notes=f"prediction in chunks of {m['chunk']}"),
    ]
    deep = deep_theory(6 if args.quick else 22, args.repeats or 1, args.quick)
    rows.append(row(NAME, f"theory (deep_aligned) ÷ train alone, {6 if args.quick else 22} depth-4 aligned nets",
                    baseline=deep["train"], lazyrich=deep["theory"], cost=deep["theory"] / deep["train"],
                    max_cost=1.0, quick=args.quick, notes="median of 3; the run defaults (1000 steps, 101 log points)"))
    if with_big:
        per_step = (b["seconds"] / (big.batch * big.steps)) / (cli["seconds"] / (sweep.batch * sweep.steps))
        name = f"B={big.batch} ({big.n_lam} λ × {big.n_seeds} seeds), {big.steps} steps, {big.n_log} log points"
        rows += [
            row(NAME, f"peak RSS of `lazyrich run`, {name}", baseline=None, lazyrich=b["peak_mib"], unit="MiB",
                max_value=2048.0, quick=args.quick, with_ratio=False,
                notes=f"completed in {b['seconds']:.1f} s, wrote {b['written_mb']:.0f} MB"),
            row(NAME, f"cost per network-step, {name} ÷ B={sweep.batch}", baseline=None, lazyrich=None,
                cost=per_step, max_cost=1.3, quick=args.quick,
                notes=f"{1e6 * b['seconds'] / (big.batch * big.steps):.2f} µs vs "
                      f"{1e6 * cli['seconds'] / (sweep.batch * sweep.steps):.2f} µs per network-step, "
                      "`lazyrich run` walls"),
        ]
    return rows


if __name__ == "__main__":
    for r in main():
        print(r)
