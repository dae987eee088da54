"""The ``lazyrich`` command: thin. It parses, composes the Hydra config and calls one library function.

    lazyrich run   [hydra overrides]    train a batch (λ × scale × lr × seed) with theory overlay
    lazyrich bench suite=<name> [...]   run a benchmark suite (suite=all for every suite)
    lazyrich tasks                      list registered tasks (built-in and plug-in) with their parameters
    lazyrich theories                   list registered theories
    lazyrich compare DIR [DIR ...]      side-by-side tables and overlay plots of finished runs or sweeps
    lazyrich sync DIR [--dry-run]       upload every offline W&B run below DIR (wandb sync, recursively)
    lazyrich dashboard DIR [--push]     write (or save to W&B) a W&B saved view per run or suite folder
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lazyrich.experiment import BATCH_KEYS

USAGE = __doc__.split("\n", 2)[2]


def conf_dir() -> Path:
    """The Hydra config folder: $LAZYRICH_CONF, else conf/ beside the package (source checkout)."""
    env = os.environ.get("LAZYRICH_CONF")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "conf"
    if not (path / "config.yaml").is_file():
        raise SystemExit(f"lazyrich: no config.yaml in {path}. Install lazyrich from its source checkout "
                         f"(pip install -e .) or point LAZYRICH_CONF at a copy of its conf/ folder.")
    return path


def register_configs() -> None:
    """Put every registered task and theory into Hydra's config groups, so that ``task=name task.p=v`` and
    ``theory=name`` work for plug-ins without a YAML file. Called by the CLI, never at import."""
    from hydra.core.config_store import ConfigStore

    from lazyrich import tasks, theory

    store = ConfigStore.instance()
    for name in tasks.available():
        store.store(group="task", name=name, node={"name": name, "whiten": False, **tasks.task_defaults(name)})
    for name in [*theory.available_theories(), "auto", "none"]:
        store.store(group="theory", name=name, node={"name": name})


def batch_overrides(overrides: Sequence[str]) -> list[str]:
    """Turn comma sweeps over the batch axes (``init.lam=-5,0,5``) into lists (``init.lam=[-5,0,5]``), so they
    train as one batch in one process; every other override is passed to Hydra unchanged."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = []
    for text in overrides:
        if text.startswith("-") or "=" not in text:
            out.append(text)
            continue
        override = parser.parse_override(text)
        if override.key_or_group in BATCH_KEYS and override.is_sweep_override():
            values = list(override.sweep_string_iterator())
            out.append(f"{override.key_or_group}=[{','.join(values)}]")
        else:
            out.append(text)
    return out


def _first_of_sweeps(overrides: Sequence[str]) -> list[str]:
    """Each multirun sweep replaced by its first value: enough to check keys and group names before launching."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = []
    for text in overrides:
        if text.startswith("-") or "=" not in text or text.split("=")[0].lstrip("~+").startswith("hydra"):
            continue
        override = parser.parse_override(text)
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            text = f"{override.get_key_element()}={first}"
        out.append(text)
    return out


def validate(config_name: str, overrides: Sequence[str]) -> None:
    """Compose the config once and turn a typo into an error that lists the valid choices (exit status 2)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    checked = _first_of_sweeps(overrides)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        try:
            compose(config_name, overrides=checked)
            return
        except (HydraException, OmegaConfBaseException) as err:
            message = str(err)
            cause = err.__cause__ or err
            bad = next((o for o in checked if o.split("=")[0].lstrip("~+") in message), None)
            hint = ""
            if bad is not None and ("not in struct" in str(cause) or "Key '" in str(cause)):
                key = bad.split("=")[0].lstrip("~+")
                parent, _, leaf = key.rpartition(".")
                base = compose(config_name, overrides=[o for o in checked if o != bad])
                node = OmegaConf.select(base, parent) if parent else base
                if OmegaConf.is_dict(node):
                    valid = sorted(str(k) for k in node.keys())
                    close = difflib.get_close_matches(leaf, valid, n=1)
                    hint = (f"\n'{key}' is not a config key. Valid keys under '{parent or '<root>'}': "
                            f"{', '.join(valid)}." + (f" Did you mean '{parent + '.' if parent else ''}"
                                                      f"{close[0]}'?" if close else ""))
            raise SystemExit(f"lazyrich: {message}{hint}") from None


def _hydra_entry(config_name: str, job: Callable, overrides: Sequence[str], prog: str) -> None:
    import hydra

    os.environ.setdefault("WANDB_MODE", "offline")
    register_configs()
    overrides = batch_overrides(overrides)
    validate(config_name, overrides)
    sys.argv = [prog, *overrides]
    hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(job)()


def _one_thread_if_multirun() -> None:
    import torch
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.get().mode == RunMode.MULTIRUN:
        torch.set_num_threads(1)  # joblib runs one job per core: more threads per job only fight each other


def _run_job(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from lazyrich.device import torch_threads
    from lazyrich.experiment import run_experiment
    from lazyrich.report import print_run

    _one_thread_if_multirun()
    with torch_threads(cfg.get("threads")):
        result = run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir))
    print_run(result)


def _bench_job(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from lazyrich.suites import run_suites

    _one_thread_if_multirun()
    run_suites(cfg, Path(HydraConfig.get().runtime.output_dir))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``lazyrich`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command == "run":
        _hydra_entry("config", _run_job, rest, "lazyrich run")
    elif command == "bench":
        _hydra_entry("bench", _bench_job, rest, "lazyrich bench")
    elif command == "tasks":
        from lazyrich.tasks import describe_all

        print(describe_all())
    elif command == "theories":
        from lazyrich.theory import describe_theories

        print(describe_theories())
    elif command == "compare":
        from lazyrich.compare import main as compare_main

        compare_main(rest)
    elif command == "sync":
        from lazyrich.wandb_sync import main as sync_main

        sys.exit(sync_main(rest))
    elif command == "dashboard":
        from lazyrich.dashboard import main as dashboard_main

        sys.exit(dashboard_main(rest))
    else:
        commands = ["run", "bench", "tasks", "theories", "compare", "sync", "dashboard"]
        close = difflib.get_close_matches(command, commands, n=1)
        raise SystemExit(f"lazyrich: unknown command {command!r}" + (f"; did you mean {close[0]!r}?" if close
                                                                     else "") + f"\n{USAGE}")


if __name__ == "__main__":
    main()
