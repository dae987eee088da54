"""Typed schemas of the run config groups ``init``, ``model``, ``trainer``, ``logger`` and ``theory``: one home
per default.

Each group is a dataclass whose field defaults are THE defaults of the project and whose field metadata holds
the key's meaning (the docs' config reference reads it) and its check. The CLI's YAML options pick values; the
Python API (:func:`lazyrich.experiment.run_experiment`) takes a plain mapping, which :func:`fill_run` completes
from these defaults and checks once, at the boundary: an unknown key or a bad value is refused in one line naming
the key. The suites' parameters have their schemas in :mod:`lazyrich.config.suites`, built the same way.

Task and theory parameters are not here: tasks and theories are open registries (plug-ins add them), so a
task's parameters default to its generator's signature and a theory's to its registered class.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lazyrich.config.checks import BOOL, MAPPING, SEEDS, TEXT, ConfigError, at_least, floats, one_of, seeds
from lazyrich.config.fields import defaults_of, fill_schema, instantiate, plain, spec
from lazyrich.init import VARIANCES

__all__ = ["DTYPES", "PLAIN_OPTIONS", "SCHEMAS", "STORED", "TOP_LEVEL", "WANDB_LAYOUTS", "InitConfig", "LoggerConfig",
           "ModelConfig", "RunConfig", "TheoryConfig", "TrainerConfig", "WandbConfig", "build_group", "defaults",
           "fill_group", "resolve_run"]


DTYPES = ("float64", "float32")
"""Trainer dtypes: float64, or float32 beside the float64 theory (lower precisions cannot be compared with it)."""


def _gains(key: str, value: Any) -> Any:
    return value if value is None else floats(key, value, positive=True)


@dataclass
class InitConfig:
    """Initial weights of every network of the batch (``init=balanced|aligned|gaussian``)."""

    kind: str = spec("balanced", "which init: `balanced` (λ-balanced) or `gaussian` (independent layers)",
                     one_of("balanced", "gaussian"))
    lam: Any = spec(0.0, "float or list (batch axis); λ > 0: output layer larger")
    scale: Any = spec(0.1, "size of the initial product W2W1 (float or list: batch axis)")
    align: bool = spec(False, "true: product = scale·Ũ_mṼ_mᵀ in the task's singular basis (Saxe 2014)")
    perturb: float = spec(0.0, "δ > 0 adds δ·N(0, 1) to every weight entry: an explicit seed for leaving a "
                               "λ = 0 saddle")
    lecun: bool = spec(True, "gaussian init only: scale each layer by 1/√fan_in (LeCun), so `scale` is the "
                             "per-layer gain")
    variance: str = spec("fan_in", "gaussian init with lecun=true: the width that divides each layer's variance "
                                   "scale²: `fan_in` (LeCun; W1ᵀW1 grows with N_h) or `hidden` (W1 by N_h, later "
                                   "layers by their fan-in: W1ᵀW1 ≈ scale²·I and W2W2ᵀ ≈ scale²·I at any width, "
                                   "the Grams theory `wide` reads)", one_of(*VARIANCES))
    gains: list[float] | None = spec(None, "gaussian init only: one multiplier of `scale` per layer (e.g. "
                                           "[0.63, 1.26]); null: 1 for every layer", _gains)


@dataclass
class ModelConfig:
    """The network ŷ = W_L ⋯ W_1 x, no biases (``model=linear|deep|relu|tanh``)."""

    depth: int = spec(2, "number of layers L ≥ 2", at_least(2))
    hidden: int | None = spec(None, "hidden width; null = min(n_in, n_out), the width the exact theory needs",
                               at_least(1, nullable=True))
    activation: str = spec("none", "none | relu | tanh (comparison runs; no theory)",
                           one_of("none", "linear", "relu", "tanh"))


@dataclass
class TrainerConfig:
    """Gradient descent on the batch; t = step·lr, every network logs on one t grid (``trainer=gd|sgd``)."""

    lr: Any = spec(0.01, "float or list (batch axis)")
    t_max: float = spec(10.0, "train until t = t_max")
    n_log: int = spec(101, "logged points on the t grid", at_least(2))
    spacing: str = spec("linear", "linear | log", one_of("linear", "log"))
    n_matrix: int = spec(21, "of which this many also keep W2W1, W1ᵀW1, W_LW_Lᵀ", at_least(1))
    batch_size: int | None = spec(None, "null = full batch; an int = minibatch SGD", at_least(1, nullable=True))
    check_every: int = spec(10, "divergence check period, in steps", at_least(1))
    batch_chunk: Any = spec("auto", "networks predicted and written at once (and trained, when a number); "
                                    "auto: sized from available memory, the trainer taking several chunks at once")
    matrix_seeds: int | None = spec(1, "the run folder keeps matrices for the first this-many seeds of each "
                                       "configuration (null: all)", at_least(1, nullable=True))
    progress: bool = spec(True, "tqdm progress bar during training")
    dtype: str = spec("float64", "float64 | float32: the trainer trains in this dtype; theories stay float64 "
                                 "(a float32 run warns)", one_of(*DTYPES))
    max_steps: int | None = spec(None, "refuse a run past this many GD steps per network per phase (null: "
                                       "10⁷); raise it on purpose", at_least(1, nullable=True))
    weight_decay: Any = spec(0.0, "γ ≥ 0, L2 in the loss: (γ/2)Σ_l‖W_l‖² is added, so a step is W_l ← W_l − "
                                  "lr·m_l(∇_l L + γW_l) (float or list: batch axis)")
    layer_lr: Any = spec(None, "per-layer step multipliers [m_1, …, m_L]: layer l steps by lr·m_l, t = step·lr; a "
                               "balanced init is then balanced in the rates' units (docs: theory §11) (null: all 1; "
                               "a list of such lists: batch axis)")
    output_scale: Any = spec(1.0, "output multiplier α: ŷ = α·W_L⋯W_1x; the init is built without it, so a larger α "
                                  "is lazier (float or list: batch axis)")


def _nullable_text(key: str, value: Any) -> Any:
    return value if value is None else TEXT(key, value)


def _tags(key: str, value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag for tag in value):
        raise ConfigError(f"{key}={value!r} must be a list of non-empty strings, e.g. {key}=[sweep1].")
    return value


WANDB_LAYOUTS = ("auto", "network", "configuration")
"""How runs map to W&B runs (``logger.wandb.layout``; :mod:`lazyrich.tracking.sink`)."""


@dataclass
class WandbConfig:
    """W&B mirror of the local tables (offline unless WANDB_MODE says otherwise)."""

    enabled: bool = spec(True, "mirror the run to W&B (false: local files only)", BOOL)
    mode: str | None = spec(None, "online | offline | disabled; null: WANDB_MODE, else offline (`lazyrich sync "
                                  "DIR` uploads later)", one_of(None, "online", "offline", "disabled"))
    project: str = spec("lazyrich", "W&B project", TEXT)
    entity: str | None = spec(None, "W&B entity (user or team); null: your default", _nullable_text)
    group: str | None = spec(None, "default: the sweep folder (outputs/run/<time>, multirun/run/<time>/<job>, "
                                   "…/<suite>)", _nullable_text)
    layout: str = spec("auto", "auto: one W&B run per network up to 64 networks in a run (or suite unit), one per "
                               "configuration beyond | network | configuration", one_of(*WANDB_LAYOUTS))
    tags: list[str] = spec([], "W&B tags added to every run", _tags)


@dataclass
class LoggerConfig:
    """Where a run is mirrored besides its folder (``logger=wandb|none``)."""

    wandb: WandbConfig = field(default_factory=WandbConfig, metadata={"doc": "W&B settings"})


@dataclass
class TheoryConfig:
    """The theory overlaid on the curves (``theory=<registered name>|auto|none``; plug-in theories included)."""

    name: str = spec("auto", "which theory predicts the curves: a registered theory, `auto` (the most exact that "
                             "applies) or `none`")


SCHEMAS: dict[str, type] = {"init": InitConfig, "model": ModelConfig, "trainer": TrainerConfig,
                            "logger": LoggerConfig, "theory": TheoryConfig}
"""Schema of each typed group, by group name."""

STORED: dict[str, type] = {group: SCHEMAS[group] for group in ("init", "model", "trainer", "logger")}
"""Groups whose YAML options extend their schema in Hydra's ConfigStore (``defaults: [/schema/<group>@_here_]``),
so that the YAML states only what an option changes; :func:`lazyrich.config.compose.store_schemas` puts them there
(and the suites')."""


def defaults(group: str) -> dict[str, Any]:
    """The schema defaults of ``group`` as a plain nested dict."""
    return defaults_of(SCHEMAS[group])


def fill_group(group: str, given: Mapping[str, Any] | Any | None) -> dict[str, Any]:
    """``given`` (a mapping, a schema instance or None) completed with the defaults of ``group``, as a plain
    dict; refuses an unknown key or a bad value with :class:`~lazyrich.config.checks.ConfigError` naming the key."""
    return fill_schema(SCHEMAS[group], given, group, f"{group} config")


def build_group(schema: type, given: Mapping[str, Any] | Any | None, name: str) -> Any:
    """The ``schema`` object of the group ``name`` from ``given`` (a mapping, a schema object or None), filled
    from the defaults and checked."""
    return instantiate(schema, fill_schema(schema, given, name, f"{name} config"))


@dataclass
class RunConfig:
    """A whole ``lazyrich run`` configuration, typed: the task, the groups above, the seeds and where it runs.

    :func:`resolve_run` builds it once, at the top of :func:`lazyrich.experiment.run_experiment`; below that every
    function reads these objects. After resolution the batch axes are lists: ``init.lam``, ``init.scale``,
    ``trainer.lr``, ``trainer.weight_decay``, ``trainer.output_scale`` (floats), ``trainer.layer_lr`` (None or
    lists of one float per layer) and ``seed`` (ints).
    """

    task: dict[str, Any] = spec({}, "the task: a registered task and its parameters ({name: …, whiten: …, "
                                    "phase: …, <param>: …})", MAPPING)
    init: InitConfig = field(default_factory=InitConfig, metadata={"doc": "initial weights"})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"doc": "the network"})
    trainer: TrainerConfig = field(default_factory=TrainerConfig, metadata={"doc": "gradient descent"})
    theory: TheoryConfig = field(default_factory=TheoryConfig, metadata={"doc": "the theory overlaid"})
    logger: LoggerConfig | None = spec(None, "the W&B mirror (null: local files only)")
    seed: Any = spec(0, "an int, or a list: the seed axis of the batch", SEEDS)
    device: str = spec("auto", "auto | cpu | cuda | cuda:N", TEXT)
    threads: int | None = spec(1, "torch threads; the nets are small, so 1 is fastest (null: torch's default, "
                                  "for wide nets)", at_least(1, nullable=True))
    name: str = spec("run", "name of the run: the first folder under outputs/ and multirun/", TEXT)
    shards: int = spec(1, "split the batch into this many contiguous slices, each trained by a process of its own "
                          "into shards/<k>/ of the one run folder: SLURM array tasks with hydra/launcher=slurm, "
                          "submitit processes with hydra/launcher=submitit_local, else one after another (docs: "
                          "SLURM); 1: one process", at_least(1))

    def record(self) -> dict[str, Any]:
        """This configuration as plain data (what a run folder's config.yaml and identity record, and W&B shows);
        :func:`resolve_run` of it gives this configuration back."""
        out = dataclasses.asdict(self)
        if out["logger"] is None:
            del out["logger"]
        if out["shards"] == 1:  # one process: recorded as before sharding existed (suite unit ids unchanged)
            del out["shards"]
        for key, plain_value in PLAIN_OPTIONS.items():  # a run without an option records as before it existed
            if out["trainer"][key] in (plain_value, [plain_value]):
                del out["trainer"][key]
        return out


PLAIN_OPTIONS = {"weight_decay": 0.0, "output_scale": 1.0, "layer_lr": None}
"""The training options' plain values (GD on the loss as it is), left out of a run's record."""

TOP_LEVEL = ("seed", "device", "threads", "name", "shards")
"""The top-level keys of ``conf/config.yaml``, whose defaults come from :class:`RunConfig`."""


def _batch_axes(init: InitConfig, trainer: TrainerConfig, depth: int) -> None:
    """The batch axes as lists, each value checked: λ finite (NaN only for the gaussian init, whose λ is
    measured), scale ≥ 0, lr > 0, weight decay ≥ 0, output scale > 0, one positive rate per layer."""
    gaussian = init.kind == "gaussian"
    if gaussian and init.lam is None:
        init.lam = math.nan
    init.lam = floats("init.lam", init.lam, allow_nan=gaussian)
    if gaussian and len(init.lam) > 1:
        raise ConfigError("init.lam is not an input of the gaussian init (its λ is measured, column lam_hat); "
                          "sweep init.scale instead, or use init=balanced.")
    init.scale = floats("init.scale", init.scale, nonnegative=True)
    trainer.lr = floats("trainer.lr", trainer.lr, positive=True)
    trainer.t_max = floats("trainer.t_max", trainer.t_max, positive=True)[0]
    trainer.weight_decay = floats("trainer.weight_decay", trainer.weight_decay, nonnegative=True)
    trainer.output_scale = floats("trainer.output_scale", trainer.output_scale, positive=True)
    trainer.layer_lr = _layer_rates(trainer.layer_lr, depth)


def _layer_rates(value: Any, depth: int) -> list[list[float]] | None:
    """``trainer.layer_lr`` as None (all 1) or a list of settings, each one positive multiplier per layer."""
    if value is None:
        return None
    settings = value if isinstance(value, list | tuple) and value and isinstance(value[0], list | tuple) else [value]
    out = []
    for setting in settings:
        rates = floats("trainer.layer_lr", setting, positive=True)
        if len(rates) != depth:
            ones = ",".join(["1"] * depth)
            raise ConfigError(f"trainer.layer_lr={list(setting)} has {len(rates)} value(s) for model.depth={depth} "
                              f"layers; give one multiplier per layer, e.g. trainer.layer_lr=[{ones}].")
        out.append(rates)
    return out


def resolve_run(cfg: Mapping[str, Any] | Any) -> RunConfig:
    """The :class:`RunConfig` of ``cfg`` (a mapping, a Hydra DictConfig or a RunConfig): every group filled from
    its schema's defaults and checked, the batch axes as checked lists. Unknown keys and bad values are refused
    in one line naming the key (:class:`~lazyrich.config.checks.ConfigError`)."""
    given = dict(plain(cfg) if not isinstance(cfg, RunConfig) else cfg.record())
    given.pop("hydra", None)
    valid = [f.name for f in dataclasses.fields(RunConfig)]
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ConfigError(f"{unknown[0]} is not a key of the run config; valid keys: {', '.join(sorted(valid))}.")
    if not isinstance(given.get("task"), Mapping) or not given["task"].get("name"):
        raise ConfigError("task is missing: give a registered task, e.g. {'task': {'name': 'hierarchy'}} "
                          "(`lazyrich tasks` lists them).")
    top = fill_schema(RunConfig, {k: given[k] for k in (*TOP_LEVEL, "task") if k in given}, "run", "run config")
    logger = given.get("logger")
    config = RunConfig(
        task=dict(top["task"]),
        init=build_group(InitConfig, given.get("init"), "init"),
        model=build_group(ModelConfig, given.get("model"), "model"),
        trainer=build_group(TrainerConfig, given.get("trainer"), "trainer"),
        theory=build_group(TheoryConfig, given.get("theory"), "theory"),
        logger=None if logger is None else build_group(LoggerConfig, logger, "logger"),
        seed=seeds("seed", top["seed"]),
        device=top["device"],
        threads=top["threads"],
        name=top["name"],
        shards=top["shards"],
    )
    _batch_axes(config.init, config.trainer, config.model.depth)
    if config.init.gains is not None and len(config.init.gains) != config.model.depth:
        raise ConfigError(f"init.gains has {len(config.init.gains)} values for model.depth={config.model.depth} "
                          f"layers; give one per layer, or null.")
    return config
