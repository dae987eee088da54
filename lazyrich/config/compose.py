"""Composing a config as the command line does: where the Hydra configs live, the registries and typed schemas
put into Hydra's store, comma sweeps over batch axes turned into one batch, and a composed config checked once with
every error in one line. Python code (figures, the config reference, benchmarks) composes through :func:`compose`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lazyrich.config.run import STORED, TOP_LEVEL, RunConfig
from lazyrich.config.suites import BENCH_TOP_LEVEL, SUITE_SCHEMAS, BenchConfig, SuiteSelection

__all__ = ["BATCH_KEYS", "batch_overrides", "compose", "conf_dir", "first_of_sweeps", "register_configs",
           "one_line", "store_schemas", "validate"]

BATCH_KEYS = ("init.lam", "init.scale", "trainer.lr", "trainer.weight_decay", "trainer.output_scale",
              "trainer.layer_lr", "seed", "suite.lams")
"""Config keys whose lists become the batch axis of one training run (not separate processes); for
``lazyrich bench``, ``suite.lams`` is the λ sweep of one suite run."""


def store_schemas() -> None:
    """Put the typed schemas into Hydra's ConfigStore: ``schema/run`` and ``schema/bench`` (the top-level keys of
    ``conf/config.yaml`` and ``conf/bench.yaml``), ``schema/<group>`` for :data:`STORED`,
    ``schema/suite/<name>`` for every suite and ``schema/suite/selection`` for a suite choice's top level. The YAML
    files of those groups start from them; call this before composing ``config`` or ``bench`` (the CLI does)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="schema", name="run", node={k: getattr(RunConfig(), k) for k in TOP_LEVEL})
    store.store(group="schema", name="bench", node={k: getattr(BenchConfig(), k) for k in BENCH_TOP_LEVEL})
    for group, schema in STORED.items():
        store.store(group="schema", name=group, node=schema)
    for name, schema in SUITE_SCHEMAS.items():
        store.store(group="schema/suite", name=name, node=schema)
    # a plain mapping, not the typed class: a suite choice adds one key per suite it runs next to these
    store.store(group="schema/suite", name="selection", node=dataclasses.asdict(SuiteSelection()))


def conf_dir() -> Path:
    """The Hydra config folder: $LAZYRICH_CONF if set, else the copy shipped in the package (``lazyrich/conf``,
    wheel and sdist installs), else ``conf/`` of the source checkout (editable installs)."""
    env = os.environ.get("LAZYRICH_CONF")
    package = Path(__file__).resolve().parents[1]
    candidates = [Path(env)] if env else [package / "conf", package.parent / "conf"]
    for path in candidates:
        if (path / "config.yaml").is_file():
            return path
    where = f"LAZYRICH_CONF={env}" if env else " or ".join(str(c) for c in candidates)
    raise SystemExit(f"lazyrich: no config.yaml in {where}. Reinstall lazyrich (pip install lazyrich or "
                     f"pip install -e . in its checkout), or point LAZYRICH_CONF at a copy of its conf/ folder.")


def register_configs() -> None:
    """Put every registered task and theory into Hydra's config groups, so that ``task=name task.p=v`` and
    ``theory=name`` work for plug-ins without a YAML file, and the typed schemas of :mod:`lazyrich.config_schema`
    under ``schema/`` (the YAML options of init, model, trainer, logger and suite extend them). Called by the CLI,
    never at import."""
    from hydra.core.config_store import ConfigStore

    from lazyrich import tasks, theory
    store = ConfigStore.instance()
    store_schemas()  # the YAML options of the typed groups start from their schema (defaults: /schema/<group>)
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


def first_of_sweeps(overrides: Sequence[str]) -> list[str]:
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


def one_line(text: str) -> str:
    """``text`` on one line: its non-empty lines joined."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _broken_task(overrides: Sequence[str]) -> None:
    """Stop with the plug-in's own error when ``task=<name>`` names a plug-in that failed to load."""
    from lazyrich import tasks

    for text in overrides:
        key, _, value = text.partition("=")
        if key.lstrip("~+") == "task" and value:
            reason = tasks.broken_entry_points().get(value)
            if reason is not None:
                raise SystemExit(f"lazyrich: task {value!r} is unavailable: {one_line(reason)}")


def _key_hint(config_name: str, checked: Sequence[str], bad: str, full_key: str | None = None) -> str:
    """' <key> is not a config key. Valid keys under <parent>: …' for a typo'd key override; for a new entry of an
    open mapping (a task's parameters, the architecture suite's nets), the same override with the + that adds it;
    else ''. ``full_key``: the key the error names, when it lies inside the mapping the override gives."""
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    key = bad.split("=")[0].lstrip("~+")
    unknown = full_key if full_key and full_key.startswith(key + ".") else key
    parent, _, leaf = unknown.rpartition(".")
    try:
        base = compose(config_name, overrides=[o for o in checked if o != bad])
    except (HydraException, OmegaConfBaseException):
        return ""
    node = OmegaConf.select(base, parent) if parent else base
    if not OmegaConf.is_dict(node):
        return ""
    valid = sorted(str(k) for k in node.keys())
    holder = OmegaConf.select(base, parent.rpartition(".")[0]) if "." in parent else base
    if parent and OmegaConf.get_type(node) is dict and dataclasses.is_dataclass(OmegaConf.get_type(holder)):
        return (f" '{parent}' holds {', '.join(valid) or 'nothing'}; to add '{leaf}' to it, prefix the override "
                f"with +: +{bad.lstrip('~+')}")
    close = difflib.get_close_matches(leaf, valid, n=1)
    return (f" '{unknown}' is not a config key. Valid keys under '{parent or '<root>'}': {', '.join(valid)}."
            + (f" Did you mean '{parent + '.' if parent else ''}{close[0]}'?" if close else ""))


def compose(config_name: str = "config", overrides: Sequence[str] = ()) -> Any:
    """The config ``lazyrich run`` (``config``) or ``lazyrich bench`` (``bench``) builds from ``overrides``, for
    use from Python: the registries and typed schemas are put in Hydra's store (:func:`register_configs`) and
    the shipped ``conf/`` is read (:func:`conf_dir`). Returns an OmegaConf DictConfig; ``run_experiment`` and
    ``run_suites`` take it as it is."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides))


def validate(config_name: str, overrides: Sequence[str]) -> Any:
    """Compose the config once, as the command will run it, and turn a typo into one line that lists the valid
    choices (exit status 1). Returns the composed config: for a single run with its ``hydra`` node (where it will
    write); for a ``-m`` sweep, that of the sweep's first job, without it."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    sweep = any(o in ("-m", "--multirun") for o in overrides)
    checked = first_of_sweeps(overrides) if sweep else [o for o in overrides if not o.startswith("-")]
    _broken_task(checked)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        try:
            return compose(config_name, overrides=checked, return_hydra_config=not sweep)
        except (HydraException, OmegaConfBaseException) as err:
            raise SystemExit(f"lazyrich: {_one_line_error(err, config_name, checked)}") from None


def _one_line_error(err: Exception, config_name: str, checked: Sequence[str]) -> str:
    """A composition error in one line: the bad key and, for a typo, the valid keys around it."""
    message = str(err)
    cause = err.__cause__ or err
    keys = [o for o in checked if f"'{o.split('=')[0].lstrip('~+')}'" in message]
    bad = max(keys, key=lambda o: len(o.split("=")[0]), default=None)
    hint = ""
    if bad is not None and ("not in struct" in str(cause) or "Key '" in str(cause)):
        hint = _key_hint(config_name, checked, bad, getattr(cause, "full_key", None))
    shown = message.splitlines()[0] if hint else one_line(message)  # drop Hydra's '+key' advice
    if cause is not err and not hint and message.startswith("Error merging override"):
        schema = "suites" if message.startswith("Error merging override suite.") else "run"
        shown += f": {str(cause).splitlines()[0]} (the type of this key: lazyrich.config.{schema})"
    return shown + hint
