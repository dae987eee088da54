"""The CLI's config reference as Markdown, generated from the configs themselves so that it cannot drift.

Every config group (``conf/<group>/*.yaml`` plus the groups the CLI fills from the registries: ``task`` and
``theory``) is composed with Hydra, option by option, and every key is listed with its default and a meaning.
Defaults are what Hydra composes: for the typed groups (init, model, trainer, logger, suite) the field defaults
of :mod:`lazyrich.config.run` and :mod:`lazyrich.config.suites`, which their YAML options extend. Meanings come
from the schema fields' metadata, then from the trailing ``# comment`` of a key's line in the YAML files (what an
option changes, and the untyped top level), then from :data:`MEANINGS`. The docs build calls
:func:`config_reference` (see ``docs/hooks.py``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lazyrich.config.fields import meanings_of
from lazyrich.config.run import SCHEMAS, RunConfig
from lazyrich.config.suites import SUITE_SCHEMAS, BenchConfig, SuiteSelection

__all__ = ["MEANINGS", "KeyDoc", "YamlNotes", "composed_options", "config_reference", "mapping_keys", "meanings",
           "meanings_of_group",
           "read_yaml_notes", "render_value"]

MEANINGS: dict[str, str] = {
    "task.name": "registered task (built-in or plug-in); `lazyrich tasks` lists them",
    "task.whiten": "whiten the inputs after building the task: `true` (ZCA) or `pca`; the exact theory needs Σxx = c·I",
    "init/gaussian:align": "unused by this init",
    "hydra.launcher.timeout_min": "SLURM time limit per job, in minutes",
    "hydra.launcher.cpus_per_task": "CPUs per SLURM task",
    "hydra.launcher.mem_gb": "memory per SLURM job, in GB",
    "hydra.launcher.tasks_per_node": "SLURM tasks per node",
    "hydra.launcher.nodes": "SLURM nodes per job",
    "hydra.launcher.partition": "SLURM partition (set it for your cluster)",
}
"""Meanings of keys that neither a schema field nor a YAML comment describes: ``group.key`` (any option of the
group), or ``group/option:key`` (one option only; checked first)."""

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w]*)\s*:(?P<rest>.*)$")


@dataclass(frozen=True)
class KeyDoc:
    """One row of the reference: dotted ``key``, its composed ``default`` and its ``meaning``."""

    key: str
    default: Any
    meaning: str


@dataclass(frozen=True)
class YamlNotes:
    """What a YAML file says besides its values: header comment, per-key comments, flow-style mappings."""

    header: str
    comments: dict[str, str]
    flow: frozenset[str]


def read_yaml_notes(path: Path) -> YamlNotes:
    """Parse ``path`` line by line: the comment block at its top, the trailing comment of each (dotted) key, and
    the keys written as flow mappings (``key: {a: 1}``), which the reference shows as one value."""
    header: list[str] = []
    comments: dict[str, str] = {}
    flow: set[str] = set()
    stack: list[tuple[int, str]] = []
    in_header = True
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if in_header and not stripped.startswith("# @package"):
                header.append(stripped.lstrip("#").strip())
            continue
        in_header = in_header and not stripped
        match = _KEY.match(line)
        if match is None:
            continue
        indent = len(match["indent"])
        stack = [(i, k) for i, k in stack if i < indent]
        dotted = ".".join([k for _, k in stack] + [match["key"]])
        stack.append((indent, match["key"]))
        value, _, comment = match["rest"].partition(" #")
        if comment.strip():
            comments[dotted] = comment.strip().lstrip("#").strip()
        if value.strip().startswith("{"):
            flow.add(dotted)
    return YamlNotes(" ".join(header), comments, frozenset(flow))


def _schema(group: str) -> type:
    if group == "suite":
        return SuiteSelection
    return SCHEMAS[group]


def meanings(group: str, prefix: str = "") -> dict[str, str]:
    """{dotted key: meaning} of every field of ``group``'s schema (nested schemas flattened). For ``suite``: the
    keys of a suite choice's top level and ``<name>.<key>`` of every suite."""
    out = meanings_of(_schema(group), prefix)
    if group == "suite":
        for name, schema in SUITE_SCHEMAS.items():
            out.update(meanings_of(schema, f"{prefix}{name}."))
    return out


def mapping_keys(group: str, prefix: str = "") -> frozenset[str]:
    """The dotted keys of ``group`` whose value is an open mapping (a task and its parameters, …): one value in
    the reference, not one row per entry."""
    schemas = {"": _schema(group)}
    if group == "suite":
        schemas.update({f"{name}.": schema for name, schema in SUITE_SCHEMAS.items()})
    return frozenset(f"{prefix}{head}{f.name}" for head, schema in schemas.items() for f in dataclasses.fields(schema)
                     if isinstance(getattr(schema(), f.name), dict))



def meanings_of_group(conf: Path, group: str) -> tuple[dict[str, YamlNotes], dict[str, str], frozenset[str]]:
    """For config group ``group``: the notes of each option's file, the meanings of its keys (the schema's
    field meanings for a typed group, then the comments of all its files, the first file in name order winning),
    and every flow-style key."""
    notes = {p.stem: read_yaml_notes(p) for p in sorted((conf / group).glob("*.yaml"))}
    typed = group in SCHEMAS or group == "suite"
    merged: dict[str, str] = meanings(group) if typed else {}
    flow: set[str] = set(mapping_keys(group)) if typed else set()
    for note in notes.values():
        for key, text in note.comments.items():
            merged.setdefault(key, text)
        flow |= note.flow
    return notes, merged, frozenset(flow)


def _flatten(node: Mapping[str, Any], flow: frozenset[str], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and dotted not in flow:
            yield from _flatten(value, flow, dotted + ".")
        else:
            yield dotted, value


def _meaning(group: str, option: str, key: str, own: YamlNotes | None, merged: dict[str, str]) -> str:
    """Own comment, then MEANINGS (option, then group), then the group's other files, then the nearest parent."""
    parts = key.split(".")
    for depth in range(len(parts), 0, -1):
        sub = ".".join(parts[:depth])
        anywhere = MEANINGS.get(f"{group}.*.{'.'.join(parts[1:depth])}") if depth > 1 else None
        for text in (own.comments.get(sub) if own else None, MEANINGS.get(f"{group}/{option}:{sub}"),
                     MEANINGS.get(f"{group}.{sub}"), merged.get(sub), anywhere):
            if text:
                return text if depth == len(parts) else f"({sub}) {text}"
    return ""


def composed_options(conf: Path, primary: str, group: str, options: list[str]) -> dict[str, dict[str, Any]]:
    """Each option of ``group`` composed into the primary config ``primary`` (``config`` or ``bench``), as
    plain containers: {option: the group's node}. Requires the CLI's registries to be in Hydra's store."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    out: dict[str, dict[str, Any]] = {}
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for option in options:
            cfg = compose(primary, overrides=[f"{group}={option}"])
            out[option] = OmegaConf.to_container(OmegaConf.select(cfg, group.replace("/", ".")), resolve=False)
    return out


def render_value(value: Any) -> str:
    """A default as it would be typed on the command line, in backticks."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k}: {render_value(v).strip('`')}" for k, v in value.items()) + "}"
    elif isinstance(value, list):
        text = "[" + ", ".join(render_value(v).strip("`") for v in value) + "]"
    else:
        text = str(value)
    return f"`{text}`"


def _table(rows: list[KeyDoc]) -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{r.key}` | {render_value(r.default)} | {r.meaning.replace('|', '∣')} |" for r in rows]
    return "\n".join(lines)


def group_docs(conf: Path, primary: str, group: str, options: list[str], prefix: str,
               extra: Mapping[str, dict[str, str]] | None = None) -> dict[str, list[KeyDoc]]:
    """{option: rows} for every option of ``group``; row keys are written as on the command line (``prefix``).
    ``extra``: {option: {key: meaning}} for keys no YAML file describes (the parameters of a task function)."""
    notes, merged, flow = meanings_of_group(conf, group)
    docs: dict[str, list[KeyDoc]] = {}
    for option, node in composed_options(conf, primary, group, options).items():
        own = notes.get(option)
        more = {**merged, **(extra or {}).get(option, {})}
        docs[option] = [KeyDoc(prefix + key, value, _meaning(group, option, key, own, more))
                        for key, value in _flatten(node, flow)]
    return docs


def task_notes(name: str) -> tuple[str, dict[str, str]]:
    """A registered task's summary (first docstring line) and the meanings of its parameters: a docstring
    line ``param: text`` (or ``param symbol: text``), else a pointer to the summary."""
    import inspect

    from lazyrich.tasks.registry import _lookup

    doc = inspect.getdoc(_lookup(name)) or ""
    summary = doc.splitlines()[0] if doc else ""
    found = dict(re.findall(r"^\s*(\w+)(?:\s+\S+)?:\s+(\S.*)$", doc, flags=re.M))
    params = inspect.signature(_lookup(name)).parameters
    return summary, {p: found.get(p, f"parameter `{p}` of `{name}` (see the summary above)") for p in params}


def _top_level(conf: Path, primary: str, groups: list[str]) -> list[KeyDoc]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = OmegaConf.to_container(compose(primary), resolve=False)
    notes = read_yaml_notes(conf / f"{primary}.yaml")
    schema = meanings_of(RunConfig if primary == "config" else BenchConfig)
    return [KeyDoc(k, v, notes.comments.get(k) or schema.get(k) or MEANINGS.get(k, "")) for k, v in cfg.items()
            if k not in groups and not isinstance(v, Mapping)]


def _group_section(conf: Path, primary: str, group: str, options: list[str], prefix: str,
                   headers: Mapping[str, str] | None = None, extra: Mapping[str, dict[str, str]] | None = None) -> str:
    notes, _, _ = meanings_of_group(conf, group)
    lines = [f"## `{group}/`", ""]
    for option, rows in group_docs(conf, primary, group, options, prefix, extra).items():
        header = notes[option].header if option in notes else (headers or {}).get(option, "")
        lines += [f"### `{group}={option}`", "", header, "", _table(rows), ""]
    return "\n".join(lines)


def _raw_section(title: str, intro: str, paths: list[Path], conf: Path, key_prefix: str = "") -> str:
    """Files that override or configure other things (experiment presets, launchers), listed from the raw YAML."""
    import yaml

    lines = [f"## {title}", "", intro, ""]
    for path in paths:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        overrides = [next(iter(d.items())) for d in raw.pop("defaults", []) if isinstance(d, dict)]
        rows = [KeyDoc(g.split("/")[-1], v, f"option of the config group `{g.split('/')[-1]}`") for g, v in overrides]
        own = read_yaml_notes(path)
        for key, value in _flatten(raw, own.flow):
            rows.append(KeyDoc(key_prefix + key, value, _global_meaning(conf, key_prefix + key, own.comments.get(key))))
        group = path.parent.relative_to(conf).as_posix()
        lines += [f"### `{group}={path.stem}`", "", own.header, "", _table(rows), ""]
    return "\n".join(lines)


def _global_meaning(conf: Path, dotted: str, comment: str | None) -> str:
    """Meaning of a key written from the root (``init.lam``): its own comment, MEANINGS, else its group's."""
    if comment:
        return comment
    if dotted in MEANINGS:
        return MEANINGS[dotted]
    group, _, rest = dotted.partition(".")
    if not rest:
        return read_yaml_notes(conf / "config.yaml").comments.get(group) or meanings_of(RunConfig).get(group, "")
    if group == "task":
        return f"parameter `{rest}` of the preset's task (see `task/`)"
    merged = meanings_of_group(conf, group)[1] if (conf / group).is_dir() else {}
    return merged.get(rest, MEANINGS.get(f"{group}.{rest}", ""))


def config_reference(conf: Path) -> str:
    """The whole reference as Markdown: top-level keys of ``lazyrich run`` and ``lazyrich bench``, then every
    option of every group with its keys, defaults and meanings, then the experiment presets."""
    from lazyrich import tasks, theory
    from lazyrich.config.compose import register_configs

    register_configs()
    files = {g: sorted(p.stem for p in (conf / g).glob("*.yaml")) for g in ("init", "model", "trainer", "logger")}
    run_groups = ["task", "init", "model", "trainer", "theory", "logger", "experiment"]
    parts = ["## `lazyrich run`: top-level keys", "", _table(_top_level(conf, "config", run_groups)), "",
             "## `lazyrich bench`: top-level keys", "", _table(_top_level(conf, "bench", ["suite", "logger"])), ""]
    from lazyrich.tasks.registry import _ORIGIN

    names = sorted(n for n in tasks.available() if _ORIGIN.get(n) == "built-in")  # plug-ins document themselves
    notes = {name: task_notes(name) for name in names}
    parts.append(_group_section(conf, "config", "task", names, "task.", {n: v[0] for n, v in notes.items()},
                                {n: v[1] for n, v in notes.items()}))
    for group in ("init", "model", "trainer"):
        parts.append(_group_section(conf, "config", group, files[group], f"{group}."))
    parts.append(_group_section(conf, "config", "theory", [*sorted(theory.available_theories()), "auto", "none"],
                                "theory."))
    parts.append(_group_section(conf, "config", "logger", files["logger"], "logger."))
    suites = sorted(p.stem for p in (conf / "suite").glob("*.yaml"))
    parts.append(_group_section(conf, "bench", "suite", suites, "suite."))
    parts.append(_raw_section("`experiment/` (presets)", "Presets only override other groups' keys: "
                              "`lazyrich run experiment=<name>`.", sorted((conf / "experiment").glob("*.yaml")), conf))
    parts.append(_raw_section("`hydra/launcher/`", "Launchers for `-m` sweeps: the default is Hydra's joblib "
                              "launcher (one job per core); `hydra/launcher=slurm` submits SLURM jobs.",
                              sorted((conf / "hydra" / "launcher").glob("*.yaml")), conf, "hydra.launcher."))
    return "\n".join(parts)
