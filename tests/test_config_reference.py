"""The config reference is generated from the configs: every key, its composed default and a meaning."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest
import yaml

from lazyrich.config import run as config_schema
from lazyrich.config.compose import conf_dir, register_configs
from lazyrich.config.reference import config_reference, group_docs, meanings, read_yaml_notes, render_value

ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| (?P<default>.+?) \| (?P<meaning>.*) \|$")


def _sections(markdown: str) -> dict[str, list[dict[str, str]]]:
    """{'### heading': rows} of the generated Markdown."""
    out: dict[str, list[dict[str, str]]] = {}
    heading = ""
    for line in markdown.splitlines():
        if line.startswith("#"):
            heading = line
            out.setdefault(heading, [])
        elif (match := ROW.match(line)) is not None:
            out[heading].append(match.groupdict())
    return out


@pytest.fixture(scope="module")
def sections() -> dict[str, list[dict[str, str]]]:
    return _sections(config_reference(conf_dir()))


@pytest.mark.slow
def test_every_key_of_every_option_has_a_default_and_a_meaning(sections):
    for group in ("init", "model", "trainer", "logger", "suite"):
        options = sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))
        assert [h for h in sections if h.startswith(f"### `{group}=")] == [f"### `{group}={o}`" for o in options]
    rows = [row for rows in sections.values() for row in rows]
    assert len(rows) > 150
    missing = [row["key"] for row in rows if not row["meaning"].strip()]
    assert not missing, f"keys without a meaning (add a '# comment' in conf/ or an entry in MEANINGS): {missing}"


def test_defaults_are_the_schema_defaults_with_each_option_s_own_values(sections):
    """An independent read (the schema dataclasses plus PyYAML on the option's file, not Hydra) gives the same
    defaults as the reference; the meanings are the schema fields' own, unless the option's line says more."""
    for group, option in [("trainer", "gd"), ("init", "balanced"), ("init", "gaussian"), ("model", "linear")]:
        raw = yaml.safe_load((conf_dir() / group / f"{option}.yaml").read_text(encoding="utf-8"))
        raw.pop("defaults")
        expected = {**config_schema.defaults(group), **raw}
        rows = {r["key"]: r for r in sections[f"### `{group}={option}`"]}
        assert {k: r["default"] for k, r in rows.items()} == {f"{group}.{k}": render_value(v)
                                                               for k, v in expected.items()}
    trainer = {r["key"]: r for r in sections["### `trainer=gd`"]}
    assert trainer["trainer.n_matrix"]["meaning"] == meanings("trainer")["n_matrix"]
    gaussian = {r["key"]: r for r in sections["### `init=gaussian`"]}
    assert gaussian["init.scale"]["meaning"].startswith("the per-layer gain")  # the option's own comment
    reversal = {r["key"]: r for r in sections["### `suite=reversal`"]}
    assert reversal["suite.reversal.t_phase"]["default"] == "`20.0`"
    assert reversal["suite.reversal.task"]["default"] == "`{name: hierarchy}`"  # a flow mapping stays one value


@dataclasses.dataclass
class _WarmupTrainer(config_schema.TrainerConfig):
    warmup: int = dataclasses.field(default=7, metadata={"doc": "steps of linear learning-rate warm-up"})


def test_a_field_added_to_a_schema_appears_with_its_meaning(monkeypatch):
    monkeypatch.setitem(config_schema.SCHEMAS, "trainer", _WarmupTrainer)
    monkeypatch.setitem(config_schema.STORED, "trainer", _WarmupTrainer)
    register_configs()  # the schemas, and the task and theory groups the CLI adds to Hydra's store
    try:
        rows = {r.key: r for r in group_docs(conf_dir(), "config", "trainer", ["gd"], "trainer.")["gd"]}
    finally:
        monkeypatch.undo()
        register_configs()
    warmup = rows["trainer.warmup"]
    assert (warmup.default, warmup.meaning) == (7, "steps of linear learning-rate warm-up")


def test_a_key_added_to_an_untyped_yaml_file_appears_with_its_comment(tmp_path):
    register_configs()
    conf = Path(shutil.copytree(conf_dir(), tmp_path / "conf"))
    with (conf / "suite" / "reversal.yaml").open("a", encoding="utf-8") as fh:
        fh.write("warmup: 7     # steps of linear learning-rate warm-up\n")
    rows = {r.key: r for r in group_docs(conf, "bench", "suite", ["reversal"], "suite.")["reversal"]}
    warmup = rows["suite.warmup"]
    assert (warmup.default, warmup.meaning) == (7, "steps of linear learning-rate warm-up")


def test_task_options_come_from_the_registry(sections):
    from lazyrich import tasks

    rows = {r["key"]: r for r in sections["### `task=hierarchy`"]}
    defaults = tasks.task_defaults("hierarchy")
    assert {k for k in rows} == {"task.name", "task.whiten", *(f"task.{p}" for p in defaults)}
    assert rows["task.depth"]["default"] == render_value(defaults["depth"])
    assert rows["task.noise"]["meaning"].startswith("standard deviation")  # from the task's docstring


def test_yaml_notes_read_header_nested_comments_and_flow_mappings(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("# @package _global_\n# First line.\n# Second line.\ndefaults:\n  - a\n\nouter:\n"
                    "  inner: 1   # the inner value\n  flow: {a: 1}  # a flow mapping\nplain: 2\n", encoding="utf-8")
    notes = read_yaml_notes(path)
    assert notes.header == "First line. Second line."
    assert notes.comments == {"outer.inner": "the inner value", "outer.flow": "a flow mapping"}
    assert notes.flow == frozenset({"outer.flow"})
