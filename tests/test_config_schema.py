"""Typed config schemas: every shipped config composes to the schema defaults, except a reviewed list of overrides;
the Python API fills and checks a mapping (or a schema object) against the same schemas."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lazyrich import batch, config_schema, experiment, predict, run_sink, tasks
from lazyrich.checks import ConfigError
from lazyrich.cli import conf_dir, register_configs

INTENDED: dict[str, str] = {
    "init=gaussian: init.kind": "the option IS the gaussian init",
    "init=gaussian: init.lam": "null: the gaussian init has no λ input; its λ is measured (lam_hat)",
    "init=gaussian: init.scale": "1.0 is the per-layer LeCun gain; 0.1 would start every layer near zero",
    "init=aligned: init.align": "the option IS the task-aligned init",
    "model=deep: model.depth": "the option IS the three-layer network",
    "model=relu: model.activation": "the option IS the relu comparison",
    "model=tanh: model.activation": "the option IS the tanh comparison",
    "trainer=sgd: trainer.batch_size": "the option IS minibatch SGD",
    "logger=none: logger.wandb.enabled": "the option IS no W&B mirror",
    "experiment=lambda_sweep: init.lam": "the preset's λ sweep, rich to lazy",
    "experiment=lambda_sweep: init.scale": "smaller init, so the rich end shows its plateau",
    "experiment=lambda_sweep: trainer.lr": "GD follows the flow at |λ| = 4",
    "experiment=lambda_sweep: trainer.t_max": "long enough for the λ = 0 sigmoid",
    "experiment=delayed_rich: init.lam": "the preset's λ values: lazy, balanced, rich-to-lazy",
    "experiment=delayed_rich: trainer.lr": "GD follows the flow at |λ| = 20",
    "experiment=delayed_rich: trainer.t_max": "long enough for the slow rich phase at λ = −20",
    "experiment=delayed_rich: trainer.spacing": "log: the lazy fit is early, the rich phase late",
}
"""Every value of a shipped config that differs from its schema default, with the reason it does."""

GROUPS = tuple(config_schema.SCHEMAS)


def _flat(node: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in node.items():
        if isinstance(value, Mapping):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _composed(overrides: list[str]) -> dict[str, Any]:
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=False)


def _differences(label: str, cfg: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{'label: key': (composed, schema default)} for every typed key whose value is not the default."""
    out = {}
    for group in GROUPS:
        default = dict(_flat(config_schema.defaults(group), f"{group}."))
        for key, value in _flat(cfg[group], f"{group}."):
            assert key in default, f"{label}: {key} is in a YAML file but not in the {group} schema"
            if value != default[key]:
                out[f"{label}: {key}"] = (value, default[key])
    return out


def _shipped() -> Iterator[tuple[str, list[str]]]:
    for group in GROUPS:
        for path in sorted((conf_dir() / group).glob("*.yaml")):
            yield f"{group}={path.stem}", [f"{group}={path.stem}"]
    for path in sorted((conf_dir() / "experiment").glob("*.yaml")):
        yield f"experiment={path.stem}", [f"experiment={path.stem}"]


def test_every_shipped_option_and_preset_composes_to_its_schema_defaults_or_a_reviewed_override():
    found: dict[str, tuple[Any, Any]] = {}
    labels = []
    for label, overrides in _shipped():
        labels.append(label)
        found.update(_differences(label, _composed(overrides)))
    unexplained = sorted(set(found) - set(INTENDED))
    assert not unexplained, f"values that differ from the schema without a reviewed reason: " \
                            f"{ {k: found[k] for k in unexplained} }"
    stale = sorted(set(INTENDED) - set(found))
    assert not stale, f"reviewed overrides that no shipped config makes any more: {stale}"
    assert {"init=balanced", "trainer=gd", "logger=wandb", "experiment=lambda_sweep"} <= set(labels)


def test_the_default_run_config_is_exactly_the_schema_defaults_in_every_typed_group():
    cfg = _composed([])
    assert _differences("default", cfg) == {}
    assert cfg["theory"] == dataclasses.asdict(config_schema.TheoryConfig())  # config.yaml selects theory: auto
    for group in GROUPS:
        assert set(dict(_flat(cfg[group], ""))) == set(dict(_flat(config_schema.defaults(group), ""))), group


@pytest.mark.parametrize("name", ["hierarchy", "random_regression", "continual_stream"])
def test_task_options_take_their_defaults_from_the_registry(name):
    cfg = _composed([f"task={name}"])
    assert cfg["task"] == {"name": name, "whiten": False, **tasks.task_defaults(name)}


def test_the_python_api_fills_a_partial_mapping_from_the_schema():
    filled = config_schema.fill_run({"task": {"name": "hierarchy"}, "init": {"lam": [1.0, 2.0]}})
    assert filled["init"]["lam"] == [1.0, 2.0]
    assert filled["init"]["scale"] == config_schema.InitConfig().scale == 0.1
    assert filled["trainer"]["n_matrix"] == config_schema.TrainerConfig().n_matrix == 21
    assert filled["model"] == config_schema.defaults("model")
    assert filled["task"] == {"name": "hierarchy"}
    assert filled["theory"] == {"name": config_schema.TheoryConfig().name} == {"name": "auto"}
    assert config_schema.fill_run({"theory": config_schema.TheoryConfig("exact")})["theory"] == {"name": "exact"}


def test_the_python_api_takes_schema_objects_and_runs_them(tmp_path):
    trainer = config_schema.TrainerConfig(lr=0.05, t_max=0.5, n_log=6, n_matrix=3, progress=False)
    cfg = {"task": {"name": "hierarchy"}, "init": config_schema.InitConfig(lam=[0.0, 1.0]),
           "trainer": trainer, "theory": {"name": "exact"}}
    result = experiment.run_experiment(cfg, None, log_wandb=False, plot=False)
    assert list(result.meta["scale"]) == [0.1, 0.1] and list(result.meta["lam"]) == [0.0, 1.0]
    assert result.trajectories[0].t.shape == (2, 6)


@pytest.mark.parametrize(("group", "given", "named"), [
    ("trainer", {"lrr": 0.1}, "trainer.lrr is not a key of the trainer config"),
    ("trainer", {"spacing": "cubic"}, "trainer.spacing='cubic' is not one of linear, log"),
    ("trainer", {"n_log": 1}, "trainer.n_log=1 must be an integer ≥ 2"),
    ("model", {"depth": 1}, "model.depth=1 must be an integer ≥ 2"),
    ("model", {"hidden": 2.5}, "model.hidden=2.5 must be an integer"),
    ("init", {"kind": "orthogonal"}, "init.kind='orthogonal' is not one of balanced, gaussian"),
    ("logger", {"wandb": {"projekt": "x"}}, "logger.wandb.projekt is not a key of the logger config"),
])
def test_a_bad_key_or_value_is_refused_in_one_line_naming_the_key(group, given, named):
    with pytest.raises(ConfigError) as err:
        config_schema.fill_group(group, given)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_every_schema_field_has_a_meaning():
    for group in GROUPS:
        docs = config_schema.meanings(group, f"{group}.")
        assert set(docs) == set(dict(_flat(config_schema.defaults(group), f"{group}."))), group
        assert all(len(text) > 5 for text in docs.values()), group


def _default_gets(source: str, keys: set[str]) -> list[str]:
    """``x.get("key", default)`` calls on a schema key in ``source``: a default repeated outside the schema."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and len(node.args) == 2 and isinstance(node.args[0], ast.Constant) and node.args[0].value in keys):
            found.append(ast.unparse(node))
    return found


def test_the_experiment_does_not_repeat_schema_defaults():
    keys = {f.name for schema in (config_schema.InitConfig, config_schema.ModelConfig, config_schema.TrainerConfig)
            for f in dataclasses.fields(schema)}
    assert _default_gets('d.get("n_log", 101)\nd.get("name")', keys) == ["d.get('n_log', 101)"]
    for module in (experiment, batch, predict, run_sink):  # the experiment and the modules split from it
        assert _default_gets(Path(module.__file__).read_text(encoding="utf-8"), keys) == [], module.__name__


def _raw_typed_values() -> Iterator[tuple[str, str, Any]]:
    """(file, dotted key, value) for every typed-group value a shipped YAML file writes itself (PyYAML)."""
    import yaml

    for group in config_schema.STORED:
        for path in sorted((conf_dir() / group).glob("*.yaml")):
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            raw.pop("defaults", None)
            yield from ((path.name, f"{group}.{k}", v) for k, v in raw.items())
    for path in sorted((conf_dir() / "experiment").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for group in config_schema.STORED:
            yield from ((path.name, key, v) for key, v in _flat(raw.get(group) or {}, f"{group}."))


def test_no_yaml_file_restates_a_schema_default():
    written = list(_raw_typed_values())
    assert ("gaussian.yaml", "init.scale", 1.0) in written and len(written) >= 10
    restated = [(name, key) for name, key, value in written
                if value == dict(_flat(config_schema.defaults(key.split(".")[0]), f"{key.split('.')[0]}."))[key]]
    assert restated == []
