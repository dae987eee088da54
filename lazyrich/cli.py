"""The ``lazyrich`` command: thin. It parses, composes the Hydra config and calls one library function.

    lazyrich run   [hydra overrides]    train a batch (λ × scale × lr × seed) with theory overlay
    lazyrich bench suite=<name> [...]   run a benchmark suite (suite=all for every suite)
    lazyrich atlas [x=KEY y=KEY ...]    two-axis sweep with theory in every cell; maps (preset=breaks: where it fails)
    lazyrich tasks                      list registered tasks (built-in and plug-in) with their parameters
    lazyrich theories                   list registered theories
    lazyrich compare DIR [DIR ...]      side-by-side tables and overlay plots of finished runs, sweeps or atlases
    lazyrich report DIR [--check]       one self-contained HTML report of a folder (--check: recompute its values)
    lazyrich sync DIR [--dry-run]       upload every offline W&B run below DIR (wandb sync, recursively)
    lazyrich dashboard DIR [--push]     write (or save to W&B) a W&B saved view per run or suite folder
    lazyrich --version                  print the installed version
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lazyrich.config.compose import batch_overrides, conf_dir, one_line, register_configs, validate

USAGE = __doc__.split("\n", 2)[2]


def one_line_exit(err: BaseException) -> SystemExit:
    """The SystemExit (status 1) that reports ``err`` in one line, naming its type."""
    return SystemExit(f"lazyrich: {one_line(str(err)) or type(err).__name__} "
                      f"[{type(err).__name__}; LAZYRICH_DEBUG=1 shows the traceback]")


def interrupted() -> SystemExit:
    """The one line (exit status 130, as a shell reports SIGINT) that a Ctrl-C ends a command with, on a line of
    its own (after a progress bar's)."""
    print("\nlazyrich: interrupted (Ctrl-C). What is unfinished has no DONE and is never read; re-run the same "
          "command into the same folder (hydra.run.dir=…) to finish (a bench keeps its finished units).",
          file=sys.stderr)
    return SystemExit(130)


def _hydra_entry(config_name: str, job: Callable, overrides: Sequence[str], prog: str) -> None:
    import hydra

    from lazyrich.store import watchdog

    os.environ.setdefault("WANDB_MODE", "offline")
    watchdog.mark_main()
    register_configs()
    overrides = batch_overrides(overrides)
    preflight(config_name, validate(config_name, overrides))  # the one composition before Hydra's own
    sys.argv = [prog, *overrides]
    hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(job)()


def _probe_writable(folder: Path) -> None:
    """Raise OSError unless ``folder`` can be created and written, without leaving anything behind."""
    import tempfile

    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(existing))
    os.rmdir(tempfile.mkdtemp(prefix=".lazyrich-write-test-", dir=folder if folder.is_dir() else existing))


def preflight(config_name: str, cfg: Any) -> None:
    """Before Hydra writes anything, for a single run (``cfg``, composed with its ``hydra`` node): the config
    resolves (every value checked), and the output folder is writable, free (no live writer) and holds no other
    configuration. Each failure is one line saying what to do. A ``-m`` sweep's jobs check their own folders."""
    from omegaconf import OmegaConf, open_dict

    from lazyrich.config.run import resolve_run
    from lazyrich.config.suites import resolve_bench
    from lazyrich.store import identity, locking

    if "hydra" not in cfg:
        return
    folder = Path(str(OmegaConf.select(cfg, "hydra.run.dir")))
    job = cfg.copy()
    with open_dict(job):
        del job["hydra"]  # Hydra's own node: resolvable only inside a Hydra job
    record = (resolve_bench(job) if config_name == "bench" else resolve_run(job)).record()
    try:
        _probe_writable(folder)
    except OSError as err:
        raise SystemExit(f"lazyrich: cannot write to the output folder {folder} ({err.strerror or err}); choose "
                         f"a writable one with hydra.run.dir=<folder>.") from None
    owner = locking.holder(folder)
    if owner is not None and not locking.is_stale(owner):
        raise SystemExit(f"lazyrich: {locking.describe(owner, folder)}")
    try:
        if config_name == "bench":
            identity.check(folder, record, identity.BENCH_IGNORED)
        else:
            identity.check_run(folder, record)
    except identity.FolderConflict as err:
        raise SystemExit(f"lazyrich: {err}") from None
    _hold(folder)


def _hold(folder: Path) -> None:
    """Take the folder's lock for the rest of the process: Hydra writes ``.hydra/`` into it before the run takes
    the lock again, so a second command into the same folder must be refused before that."""
    import atexit

    from lazyrich.store import locking

    lock = locking.FolderLock(folder)
    try:
        lock.acquire()
    except locking.FolderLocked as err:
        raise SystemExit(f"lazyrich: {err}") from None
    atexit.register(lock.release)


def _one_thread_if_multirun() -> None:
    import torch
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.get().mode == RunMode.MULTIRUN:
        torch.set_num_threads(1)  # joblib runs one job per core: more threads per job only fight each other


def _job(body: Callable) -> Callable:
    """A Hydra job that stops with its parent (:mod:`lazyrich.store.watchdog`) and reports any error in one line
    (exit status 1); ``LAZYRICH_DEBUG=1`` lets the traceback through."""

    def job(cfg) -> None:
        from lazyrich.store import watchdog

        watchdog.start()
        try:
            body(cfg)
        except KeyboardInterrupt:
            if os.environ.get("LAZYRICH_DEBUG") == "1":
                raise
            raise interrupted() from None
        except Exception as err:  # noqa: BLE001 — every failure becomes one line naming it
            if os.environ.get("LAZYRICH_DEBUG") == "1":
                raise
            raise one_line_exit(err) from None

    job.__name__ = job.__qualname__ = body.__name__
    job.__module__ = body.__module__
    return job


def _launch():
    """Where a command's pieces (a run's shards, a bench's units) run: the launcher Hydra composed, for a single
    run; in a ``-m`` sweep the launcher runs the jobs, and each job's pieces run in it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from lazyrich.experiment.cluster import Launch

    hydra = HydraConfig.get()
    if hydra.mode == RunMode.MULTIRUN:
        return Launch()
    return Launch.of(OmegaConf.to_container(hydra.launcher, resolve=True))


@_job
def _run_job(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from lazyrich.config.run import resolve_run
    from lazyrich.device import torch_threads
    from lazyrich.experiment import run_shards
    from lazyrich.experiment.console import print_run

    _one_thread_if_multirun()
    config = resolve_run(cfg)
    with torch_threads(config.threads):
        result = run_shards(config, Path(HydraConfig.get().runtime.output_dir), _launch())
    print_run(result)


@_job
def _bench_job(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from lazyrich.suites import run_suites

    _one_thread_if_multirun()
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    tables = run_suites(cfg, out_dir, _launch())
    failed = [f"{name}: unit {row.unit} ({row.error})" for name, table in tables.items() if "status" in table
              for row in table[table["status"] == "failed"].itertuples()]
    if failed:
        raise SystemExit(f"lazyrich bench: {len(failed)} unit(s) failed, the others finished; tracebacks in "
                         f"runs/<unit>/FAILED under {out_dir}; re-run the same command to retry them. "
                         + " | ".join(failed))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``lazyrich`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    if argv[0] in ("-V", "--version"):
        from lazyrich import __version__

        print(f"lazyrich {__version__}")
        return
    try:
        _dispatch(argv[0], argv[1:])
    except KeyboardInterrupt:
        if os.environ.get("LAZYRICH_DEBUG") == "1":
            raise
        raise interrupted() from None
    except Exception as err:  # noqa: BLE001 — one line, unless debugging
        if os.environ.get("LAZYRICH_DEBUG") == "1":
            raise
        raise one_line_exit(err) from None


def _dispatch(command: str, rest: list[str]) -> None:
    if command == "run":
        _hydra_entry("config", _run_job, rest, "lazyrich run")
    elif command == "bench":
        _hydra_entry("bench", _bench_job, rest, "lazyrich bench")
    elif command == "atlas":
        from lazyrich.atlas.command import main as atlas_main

        sys.exit(atlas_main(rest))
    elif command == "tasks":
        from lazyrich.tasks import describe_all

        print(describe_all())
    elif command == "theories":
        from lazyrich.theory import describe_theories

        print(describe_theories())
    elif command == "compare":
        from lazyrich.atlas.compare import main as compare_atlases
        from lazyrich.results.compare import main as compare_main
        from lazyrich.suites import SUITES

        if not compare_atlases(rest):
            compare_main(rest, {name: suite.columns for name, suite in SUITES.items()})
    elif command == "report":
        from lazyrich.results.report import main as report_main
        from lazyrich.suites import report_views

        sys.exit(report_main(rest, report_views()))
    elif command == "sync":
        from lazyrich.tracking.sync import main as sync_main

        sys.exit(sync_main(rest))
    elif command == "dashboard":
        from lazyrich.tracking.dashboard import main as dashboard_main

        sys.exit(dashboard_main(rest))
    else:
        commands = ["run", "bench", "atlas", "tasks", "theories", "compare", "report", "sync", "dashboard"]
        close = difflib.get_close_matches(command, commands, n=1)
        raise SystemExit(f"lazyrich: unknown command {command!r}" + (f"; did you mean {close[0]!r}?" if close
                                                                     else "") + f"\n{USAGE}")


if __name__ == "__main__":
    main()
