"""Typed config schemas: every shipped config (run options, presets, suite choices) composes to the schema defaults,
except a reviewed list of overrides; the Python API fills and checks a mapping (or a schema object) against the same
schemas, and a bad value is refused in one line naming its key."""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lazyrich import experiment, tasks
from lazyrich.config import run as config_schema
from lazyrich.config import suites as suite_schema
from lazyrich.config.checks import ConfigError
from lazyrich.config.compose import conf_dir, register_configs, validate
from lazyrich.config.fields import defaults_of
from lazyrich.config.reference import meanings
from lazyrich.config.run import build_group, resolve_run
from lazyrich.config.suites import resolve_bench
from lazyrich.experiment import batch, predict
from lazyrich.experiment import sink as run_sink
from lazyrich.suites import SUITES, run_suites

INTENDED: dict[str, str] = {
    "init=gaussian: init.kind": "the option IS the gaussian init",
    "init=gaussian: init.lam": "null: the gaussian init has no λ input; its λ is measured (lam_hat)",
    "init=gaussian: init.scale": "1.0 is the per-layer LeCun gain; 0.1 would start every layer near zero",
    "init=gaussian_hidden: init.kind": "the option IS a gaussian init",
    "init=gaussian_hidden: init.lam": "null, as init=gaussian: its λ is measured (lam_hat)",
    "init=gaussian_hidden: init.scale": "1.0: W1ᵀW1 ≈ W2W2ᵀ ≈ I, c₁ = c₂ = 1 of theory wide (0.1 would be rich)",
    "init=gaussian_hidden: init.variance": "the option IS the hidden-width variance convention",
    "init=aligned: init.align": "the option IS the task-aligned init",
    "model=deep: model.depth": "the option IS the three-layer network",
    "model=relu: model.activation": "the option IS the relu comparison",
    "model=tanh: model.activation": "the option IS the tanh comparison",
    "trainer=sgd: trainer.batch_size": "the option IS minibatch SGD",
    "logger=none: logger.wandb.enabled": "the option IS no W&B mirror",
    "init=rich_to_lazy: init.lam": "the default run a newcomer makes: rich (λ = 0) to lazy (λ = 8)",
    "init=rich_to_lazy: init.scale": "a small init, so the rich end shows its steps",
    "init=rich_to_lazy: init.align": "task-aligned: no network starts at the λ = 0 saddle",
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
    for group in GROUPS:  # each option on the plain init (the default init=rich_to_lazy is an option itself)
        for path in sorted((conf_dir() / group).glob("*.yaml")):
            yield f"{group}={path.stem}", [f"{group}={path.stem}", *([] if group == "init" else ["init=balanced"])]
    for path in sorted((conf_dir() / "experiment").glob("*.yaml")):
        yield f"experiment={path.stem}", [f"experiment={path.stem}"]


@pytest.mark.slow
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


def test_the_default_run_config_is_the_schema_defaults_but_for_the_teaching_init():
    cfg = _composed([])  # `lazyrich run` alone: every typed group at its schema defaults but init=rich_to_lazy
    assert set(_differences("init=rich_to_lazy", cfg)) == {k for k in INTENDED if k.startswith("init=rich_to_lazy:")}
    assert _differences("default", _composed(["init=balanced"])) == {}
    assert cfg["theory"] == dataclasses.asdict(config_schema.TheoryConfig())  # config.yaml selects theory: auto
    for group in GROUPS:
        assert set(dict(_flat(cfg[group], ""))) == set(dict(_flat(config_schema.defaults(group), ""))), group


@pytest.mark.parametrize("name", ["hierarchy", "random_regression", "continual_stream"])
def test_task_options_take_their_defaults_from_the_registry(name):
    cfg = _composed([f"task={name}"])
    assert cfg["task"] == {"name": name, "whiten": False, **tasks.task_defaults(name)}


def test_the_python_api_resolves_a_partial_mapping_into_schema_objects():
    config = resolve_run({"task": {"name": "hierarchy"}, "init": {"lam": [1.0, 2.0]}})
    assert config.init.lam == [1.0, 2.0]
    assert config.init.scale == [config_schema.InitConfig().scale] == [0.1]  # a batch axis: always a list
    assert config.trainer.n_matrix == config_schema.TrainerConfig().n_matrix == 21
    assert config.model == config_schema.ModelConfig()
    assert config.task == {"name": "hierarchy"} and config.logger is None and config.seed == [0]
    assert config.theory == config_schema.TheoryConfig() == config_schema.TheoryConfig("auto")
    again = resolve_run({"task": {"name": "hierarchy"}, "theory": config_schema.TheoryConfig("exact")})
    assert again.theory.name == "exact"
    assert resolve_run(again.record()) == again == resolve_run(again)  # the record resolves back to itself
    with pytest.raises(ConfigError, match="tsk is not a key of the run config"):
        resolve_run({"tsk": {"name": "hierarchy"}})
    with pytest.raises(ConfigError, match="task is missing"):
        resolve_run({"init": {"lam": 1.0}})


@pytest.mark.slow
def test_the_python_api_takes_schema_objects_and_runs_them(tmp_path):
    trainer = config_schema.TrainerConfig(lr=0.05, t_max=0.5, n_log=6, n_matrix=3, progress=False)
    cfg = {"task": {"name": "hierarchy"}, "init": config_schema.InitConfig(lam=[0.0, 1.0]),
           "trainer": trainer, "theory": {"name": "exact"}}
    result = experiment.run_experiment(cfg)
    assert list(result.meta["scale"]) == [0.1, 0.1] and list(result.meta["lam"]) == [0.0, 1.0]
    assert result.trajectories[0].t.shape == (2, 6)


@pytest.mark.parametrize(("group", "given", "named"), [
    ("trainer", {"lrr": 0.1}, "trainer.lrr is not a key of the trainer config"),
    ("trainer", {"spacing": "cubic"}, "trainer.spacing='cubic' is not one of linear, log"),
    ("trainer", {"n_log": 1}, "trainer.n_log=1 must be an integer ≥ 2"),
    ("model", {"depth": 1}, "model.depth=1 must be an integer ≥ 2"),
    ("model", {"hidden": 2.5}, "model.hidden=2.5 must be an integer"),
    ("init", {"kind": "orthogonal"}, "init.kind='orthogonal' is not one of balanced, gaussian"),
    ("init", {"variance": "fan_out"}, "init.variance='fan_out' is not one of fan_in, hidden"),
    ("init", {"gains": [1.0, -2.0]}, "init.gains=-2.0 must be positive"),
    ("logger", {"wandb": {"projekt": "x"}}, "logger.wandb.projekt is not a key of the logger config"),
])
def test_a_bad_key_or_value_is_refused_in_one_line_naming_the_key(group, given, named):
    with pytest.raises(ConfigError) as err:
        build_group(config_schema.SCHEMAS[group], given, group)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_gains_are_one_per_layer():
    with pytest.raises(ConfigError, match=r"init.gains has 3 values for model.depth=2 layers; give one per layer"):
        resolve_run({"task": {"name": "hierarchy"}, "init": {"kind": "gaussian", "gains": [1.0, 2.0, 3.0]}})


def test_every_schema_field_has_a_meaning():
    for group in GROUPS:
        docs = meanings(group, f"{group}.")
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
            yield from ((path.name, key, v) for key, v in _flat(raw, f"{group}."))
    for path in sorted((conf_dir() / "experiment").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for group in config_schema.STORED:
            yield from ((path.name, key, v) for key, v in _flat(raw.get(group) or {}, f"{group}."))


def test_no_yaml_file_restates_a_schema_default():
    written = list(_raw_typed_values())
    assert ("gaussian.yaml", "init.scale", 1.0) in written and ("none.yaml", "logger.wandb.enabled", False) in written
    assert len(written) >= 10
    restated = [(name, key) for name, key, value in written
                if value == dict(_flat(config_schema.defaults(key.split(".")[0]), f"{key.split('.')[0]}."))[key]]
    assert restated == []


SUITE_INTENDED: dict[str, str] = {
    "suite=default: suite.reversal.lams": "the main job is small: three λ values, rich and both lazy signs",
    "suite=default: suite.reversal.seeds": "one seed keeps `make run` under a minute",
    "suite=default: suite.reversal.t_phase": "15 is enough to reverse at |λ| = 2, the largest λ of this job",
    "suite=default: suite.architecture.lams": "the two ends (λ = ±8) and the balanced net",
    "suite=default: suite.architecture.seeds": "one seed keeps `make run` under a minute",
    "suite=default: suite.architecture.t_max": "60 shows the funnel's delayed-rich phase at λ = −8",
    "suite=default: suite.architecture.n_log": "fewer log points for the shorter run",
}
"""Every value of a shipped suite choice that differs from its suite schema's default, with the reason it does.
``name`` and ``run`` are what a choice is (checked separately), not defaults it overrides."""


def _bench(overrides: list[str]) -> dict[str, Any]:
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return OmegaConf.to_container(compose("bench", overrides=overrides), resolve=False)


def _suite_differences(option: str, suite: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{'suite=option: suite.<key>': (composed, schema default)} over the choice's top level and every suite it
    runs; every composed key must be a schema key."""
    expected = dict(_flat({k: v for k, v in defaults_of(suite_schema.SuiteSelection).items()
                           if k not in ("name", "run")}, "suite."))
    for name in suite["run"]:
        expected.update(_flat(defaults_of(suite_schema.SUITE_SCHEMAS[name]), f"suite.{name}."))
    found = dict(_flat({k: v for k, v in suite.items() if k not in ("name", "run")}, "suite."))
    assert set(found) == set(expected), f"suite={option}: keys {set(found) ^ set(expected)} differ from the schemas"
    return {f"suite={option}: {key}": (value, expected[key]) for key, value in found.items() if value != expected[key]}


def test_every_shipped_suite_choice_composes_to_its_schema_defaults_or_a_reviewed_override():
    found: dict[str, tuple[Any, Any]] = {}
    options = sorted(p.stem for p in (conf_dir() / "suite").glob("*.yaml"))
    for option in options:
        suite = _bench([f"suite={option}"])["suite"]
        assert suite["name"] == option and set(suite["run"]) <= set(SUITES)
        found.update(_suite_differences(option, suite))
    unexplained = sorted(set(found) - set(SUITE_INTENDED))
    assert not unexplained, f"suite values that differ from the schema without a reviewed reason: " \
                            f"{ {k: found[k] for k in unexplained} }"
    stale = sorted(set(SUITE_INTENDED) - set(found))
    assert not stale, f"reviewed suite overrides that no shipped choice makes any more: {stale}"
    assert set(SUITES) | {"all", "default"} == set(options)


def test_no_suite_yaml_restates_a_schema_default():
    import yaml

    written = []
    for path in sorted((conf_dir() / "suite").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        selection = defaults_of(suite_schema.SuiteSelection)
        written += [(path.name, f"suite.{k}", v, selection[k]) for k, v in raw.items() if k in selection]
        for name, schema in suite_schema.SUITE_SCHEMAS.items():
            default = dict(_flat(defaults_of(schema), ""))
            written += [(path.name, f"suite.{name}.{k}", v, default.get(k)) for k, v in _flat(raw.get(name) or {}, "")]
    assert ("default.yaml", "suite.reversal.t_phase", 15.0, 20.0) in written
    restated = [(name, key) for name, key, value, default in written if value == default]
    assert restated == []


def test_each_suite_schema_matches_a_suite_and_its_defaults_pass_their_own_checks():
    assert list(suite_schema.SUITE_SCHEMAS) == list(SUITES)
    docs = meanings("suite", "suite.")
    assert all(len(text) > 5 for text in docs.values()), [k for k, text in docs.items() if len(text) <= 5]
    assert {"suite.name", "suite.run", "suite.lams", "suite.finetune.pretrain.t_max"} <= set(docs)
    for name, schema in suite_schema.SUITE_SCHEMAS.items():
        defaults = defaults_of(schema)
        assert suite_schema.fill_suite(name, defaults) == defaults == suite_schema.fill_suite(name, None)
        for f in dataclasses.fields(schema):  # every field has a meaning (a nested schema: each of its fields)
            assert f"suite.{name}.{f.name}" in docs or any(k.startswith(f"suite.{name}.{f.name}.") for k in docs)


def test_the_python_api_fills_a_partial_suite_mapping_or_a_schema_object():
    filled = suite_schema.fill_suite("finetune", {"lams": [1], "pretrain": {"t_max": 5.0}})
    assert filled["lams"] == [1.0] and isinstance(filled["lams"][0], float)
    assert filled["pretrain"] == {**defaults_of(suite_schema.FinetunePretrain), "t_max": 5.0}
    assert filled["threshold"] == suite_schema.FinetuneSuite().threshold == 0.01
    task = {"name": "random_regression", "n_in": 6, "n_out": 6}
    assert suite_schema.fill_suite("reversal", {"task": task})["task"] == task  # an open mapping is one value
    archs = suite_schema.fill_suite("architecture", {"archs": {"square": {"n_in": 4, "n_out": 4}}})["archs"]
    assert archs == {"square": {"n_in": 4, "n_out": 4}}  # so a net left out (~suite.architecture.archs.x) stays out
    from_object = suite_schema.fill_suite("reversal", suite_schema.ReversalSuite(t_phase=3.0, seeds=[4]))
    assert (from_object["t_phase"], from_object["seeds"], from_object["n_log"]) == (3.0, [4], 201)


def test_suite_params_apply_the_run_wide_lams_and_seed_then_fill_the_schema():
    cfg = {"suite": {"run": ["rotation"], "lams": [2], "rotation": {"threshold": 0.5}}, "seed": 7}
    params = resolve_bench(cfg).params["rotation"]
    assert params == suite_schema.RotationSuite(lams=[2.0], seeds=[7], threshold=0.5)  # the schema object
    composed = _bench(["suite=architecture", "~suite.architecture.archs.square"])
    assert set(resolve_bench(composed).params["architecture"].archs) == {"funnel", "inverted_funnel"}


@pytest.mark.parametrize(("name", "given", "named"), [
    ("reversal", {"eta": "x"}, "suite.reversal.eta='x' must be a positive number"),
    ("reversal", {"eta": -1.0}, "suite.reversal.eta=-1.0 must be a positive number"),
    ("reversal", {"etaa": 0.1}, "suite.reversal.etaa is not a key of the reversal suite; valid keys: align,"),
    ("reversal", {"n_log": 1}, "suite.reversal.n_log=1 must be an integer ≥ 2"),
    ("reversal", {"align": "yes"}, "suite.reversal.align='yes' must be true or false"),
    ("continual", {"seeds": []}, "suite.continual.seeds is an empty list"),
    ("continual", {"seeds": [0.5]}, "suite.continual.seeds=0.5 is not an integer seed"),
    ("transfer", {"lams": ["a"]}, "suite.transfer.lams='a' is not a number"),
    ("transfer", {"item": ""}, "suite.transfer.item='' must be a non-empty string"),
    ("rotation", {"side": "left"}, "suite.rotation.side='left' is not one of input, output, both"),
    ("rotation", {"spacing": "cubic"}, "suite.rotation.spacing='cubic' is not one of linear, log"),
    ("finetune", {"pretrain": {"t_max": 0}}, "suite.finetune.pretrain.t_max=0 must be a positive number"),
    ("finetune", {"pretrain": {"lr": 0.1}}, "suite.finetune.pretrain.lr is not a key of the finetune suite"),
    ("finetune", {"relation": {"angle": float("nan")}}, "suite.finetune.relation.angle=nan must be a finite number"),
    ("architecture", {"task": 3}, "suite.architecture.task=3 must be a mapping"),
    ("architecture", {"archs": {"wide": {"n_in": 0, "n_out": 2}}},
     "suite.architecture.archs.wide.n_in=0 must be an integer ≥ 1"),
    ("architecture", {"archs": {"wide": {"n_in": 2}}}, "suite.architecture.archs.wide={'n_in': 2} must be"),
])
def test_a_bad_suite_key_or_value_is_refused_in_one_line_naming_the_key(name, given, named):
    with pytest.raises(ConfigError) as err:
        suite_schema.fill_suite(name, given)
    assert named in str(err.value) and "\n" not in str(err.value)
    default = defaults_of(suite_schema.SUITE_SCHEMAS[name]).get(next(iter(given)))
    if default is not None and not isinstance(default, dict):  # a bad value: refused with the default to go back to
        assert str(err.value).endswith(f"; the default is {json.dumps(default)}.") or "is not a key" in str(err.value)


@pytest.mark.parametrize(("given", "named"), [
    ({"wandb": {"layout": "per-run"}}, "logger.wandb.layout='per-run' is not one of auto, network, configuration"),
    ({"wandb": {"mode": "sometimes"}}, "logger.wandb.mode='sometimes' is not one of null, online, offline, disabled"),
    ({"wandb": {"tags": "a,b"}}, "logger.wandb.tags='a,b' must be a list of non-empty strings"),
    ({"wandb": {"enabled": "no"}}, "logger.wandb.enabled='no' must be true or false"),
])
def test_a_bad_logger_value_is_refused_in_one_line_naming_the_key(given, named):
    with pytest.raises(ConfigError) as err:
        build_group(config_schema.LoggerConfig, given, "logger")
    assert named in str(err.value) and "\n" not in str(err.value)


def test_the_logger_mode_reaches_the_wandb_target():
    from lazyrich.tracking.sink import Target

    logger = build_group(config_schema.LoggerConfig, {"wandb": {"mode": "disabled", "tags": ["x"]}}, "logger")
    target = Target.from_logger(logger.wandb, group="g", job_type="run", config={}, unit="u", run_dir=Path("."))
    assert (target.mode, target.tags, target.project) == ("disabled", ["x"], config_schema.WandbConfig().project)
    default = Target.from_logger(config_schema.WandbConfig(), group="g", job_type="run", config={},
                                 unit="u", run_dir=Path("."))
    assert default.mode is None  # null: WANDB_MODE decides, else offline


def test_bench_refuses_a_bad_suite_value_before_any_unit_runs(tmp_path):
    cfg = _bench(["suite=default", "logger=none", "suite.architecture.lr_max=-0.1"])
    with pytest.raises(ConfigError, match=r"suite\.architecture\.lr_max=-0\.1 must be a positive number"):
        run_suites(OmegaConf.create(cfg), tmp_path / "out")
    assert not (tmp_path / "out" / "reversal").exists()  # the valid suite before it did not start either
    with pytest.raises(SystemExit) as err:  # a value of the wrong type is refused when the CLI composes
        validate("bench", ["suite=reversal", "suite.reversal.eta=x"])
    assert "suite.reversal.eta" in str(err.value) and "lazyrich.config.suites" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_compose_from_python_registers_the_schemas_itself():
    """A fresh interpreter composes run and bench configs through lazyrich.config.compose, no Hydra set-up needed."""
    import subprocess
    import sys

    from lazyrich.config.suites import ReversalSuite

    code = ("from lazyrich.config import compose; b = compose('bench', ['suite=reversal']); "
            "c = compose('config', ['init.lam=[-1,1]']); print(b.suite.reversal.n_log, list(c.init.lam), c.trainer.lr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    n_log, *rest = out.stdout.split()
    assert int(n_log) == ReversalSuite().n_log
    assert " ".join(rest) == f"[-1, 1] {config_schema.TrainerConfig().lr}"
