"""Typed schemas of the benchmark suites' parameters (``suite.<name>.*`` of ``lazyrich bench``): one home per default.

Every suite sweeps λ values and seeds, derives its step from ``eta`` and ``lr_max`` and keeps the matrices at
``n_matrix`` log points (:class:`SuiteParams`); all but ``finetune`` start from a fresh init of size
``init_scale`` (:class:`FreshInitSuite`); each suite's class adds the fields only it reads. The field defaults are
THE defaults of the suites (``conf/suite/*.yaml`` only select suites and override), the field metadata holds each
key's meaning (the docs' config reference reads it) and its check. :func:`fill_suite` completes a partial mapping
from these defaults and checks every value once, where ``lazyrich bench`` and :func:`lazyrich.suites.run_suite`
receive them, and :func:`build_suite` makes the schema object a suite's ``units`` reads; a bad value is refused in
one line naming the key, e.g. ``suite.reversal.eta='x' must be a positive number; the default is 0.05.``
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lazyrich.config.checks import (
    BOOL,
    FINITE,
    FLOATS,
    MAPPING,
    POSITIVE,
    SEEDS,
    TEXT,
    ConfigError,
    at_least,
    floats,
    one_of,
    seeds,
)
from lazyrich.config.fields import fill_schema, instantiate, plain, spec
from lazyrich.config.run import LoggerConfig, build_group
from lazyrich.train import DEFAULT_MAX_STEPS

__all__ = ["ARCH_SHAPES", "BENCH_TOP_LEVEL", "SUITE_SCHEMAS", "ArchitectureSuite", "BenchConfig", "ContinualSuite",
           "FinetunePretrain", "FinetuneRelation", "FinetuneSuite", "FreshInitSuite", "GeneralisationSuite",
           "ReversalSuite", "RotationSuite", "SuiteParams", "SuiteSelection", "TransferSuite", "WidthSuite",
           "arch_shape", "build_suite", "fill_suite", "resolve_bench"]

LAMS = [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0]
"""The λ values every suite sweeps by default: rich (λ = 0) to lazy (|λ| = 8), both signs."""

SPACINGS = ("linear", "log")
SIDES = ("input", "output", "both")


ARCH_SHAPES = ("funnel", "square", "inverted_funnel")
"""The shapes docs/theory.md §6 tells apart at large |λ|; as arch names they promise that shape."""


def arch_shape(n_in: int, n_out: int) -> str:
    """``funnel`` (Ni > No), ``square`` (Ni = No) or ``inverted_funnel`` (Ni < No): what decides, by docs/theory.md
    §6, whether a net stays lazy at large |λ| of each sign."""
    return "funnel" if n_in > n_out else "square" if n_in == n_out else "inverted_funnel"


_A_SHAPE = {"funnel": "a funnel", "square": "a square net", "inverted_funnel": "an inverted funnel"}


def _positive_floats(key: str, value: Any) -> list[float]:
    return floats(key, value, positive=True)


def _any_floats(key: str, value: Any) -> list[float]:
    """A list of finite numbers, possibly empty."""
    return [] if value in (None, []) else floats(key, value)


def _widths(key: str, value: Any) -> list[int]:
    """One width or a list, each an integer ≥ 1."""
    return [at_least(1)(key, item) for item in (value if isinstance(value, list | tuple) else [value])]


def _archs(key: str, value: Any) -> Any:
    """{name: {n_in, n_out}}, at least one net, with positive integer widths; a name from ARCH_SHAPES must have
    that shape (the verdict judges every net by its shape)."""
    MAPPING(key, value)
    if not value:
        raise ConfigError(f"{key} is empty; give at least one net, e.g. {key}={{square: {{n_in: 4, n_out: 4}}}}.")
    for name, widths in value.items():
        if not isinstance(widths, Mapping) or set(widths) != {"n_in", "n_out"}:
            raise ConfigError(f"{key}.{name}={widths!r} must be {{n_in: <int>, n_out: <int>}}; e.g. "
                              f"{key}.{name}={{n_in: 8, n_out: 4}}.")
        for side in ("n_in", "n_out"):
            at_least(1)(f"{key}.{name}.{side}", widths[side])
        shape = arch_shape(widths["n_in"], widths["n_out"])
        if name in ARCH_SHAPES and shape != name:
            given = f"{{n_in: {widths['n_in']}, n_out: {widths['n_out']}}}"
            raise ConfigError(f"{key}.{name}={given} is {_A_SHAPE[shape]}, not {_A_SHAPE[name]}; give {name} its "
                              f"shape (funnel: n_in > n_out, square: n_in = n_out, inverted_funnel: n_in < n_out) "
                              f"or these widths a name of their own, e.g. +{key}.my_net={given}.")
    return value


@dataclass
class SuiteSelection:
    """The top level of a ``suite=<option>`` choice: which suites run, and the λ values that replace theirs."""

    name: str = spec("", "name of the suite choice (the run folder's name part)")
    run: list[str] = spec([], "the suites this choice runs, in order (each in its own sub-folder)")
    lams: list[float] | None = spec(None, "a list here (suite.lams=-1,0,1) replaces the λ values of every suite "
                                          "in this run")


@dataclass
class SuiteParams:
    """What every suite reads: its λ sweep, its seeds, the init size, the step rule, the log grid, the theory."""

    lams: list[float] = spec(LAMS, "λ values of the sweep (one unit of work each; suite.lams replaces them in "
                                   "every suite)", FLOATS)
    seeds: list[int] = spec([0, 1], "seeds of each λ, trained as one batch (seed= on the command line replaces "
                                    "them)", SEEDS)
    task: dict[str, Any] = spec({}, "the task (a registered task and its parameters)", MAPPING)
    eta: float = spec(0.05, "lr = min(lr_max, eta / √(λ² + 4 s̃₁²)): GD follows the flow", POSITIVE)
    lr_max: float = spec(0.05, "upper bound of the learning rate (see eta)", POSITIVE)
    n_log: int = spec(101, "log points (per phase for multi-phase suites)", at_least(2))
    n_matrix: int = spec(5, "of the log points (per phase), this many also keep W2W1, W1ᵀW1, W2W2ᵀ (the continual "
                            "suite: and every task's loss); the measures read the first and the last", at_least(1))
    theory: str = spec("auto", "theory overlaid on the curves (`auto`: the most exact one that applies)", TEXT)


@dataclass
class FreshInitSuite(SuiteParams):
    """A suite whose networks start from a fresh λ-balanced init of one size (all but ``finetune``, which
    re-factorises a pretrained product)."""

    init_scale: float = spec(0.1, "size of the initial product W2W1", POSITIVE)


@dataclass
class ReversalSuite(FreshInitSuite):
    """Reversal learning: learn a task to convergence, then its reversal Σyx → −Σyx."""

    task: dict[str, Any] = spec({"name": "hierarchy"}, "any registered whitened task with its own parameters, e.g. "
                                "{name: random_regression, n_in: 6, n_out: 6}", MAPPING)
    n_log: int = spec(201, "log points per phase", at_least(2))
    align: bool = spec(True, "task-aligned init: at λ = 0 the reversal then starts exactly at B = 0", BOOL)
    t_phase: float = spec(20.0, "t per phase (learn, then reverse)", POSITIVE)
    spacing: str = spec("log", "per phase: dense early, where the reversal happens at large |λ|", one_of(*SPACINGS))
    success_threshold: float = spec(0.01, "success: the reversal's excess loss over its floor (metrics.loss_floor) "
                                          "falls to this × its value at the switch", POSITIVE)
    plateau_band: float = spec(0.1, "plateau: excess loss over the floor within this fraction of that of the zero map "
                                    "(the saddle)", POSITIVE)
    exact_balance_rtol: float = spec(1e-3, "λ-balance tolerance of the exact verdict: GD keeps λ-balance to "
                                           "O(lr·t), not to the 1e-8 the exact theory asks of an init", POSITIVE)


@dataclass
class ContinualSuite(FreshInitSuite):
    """Continual learning: K whitened tasks in sequence; loss matrix, forgetting and BWT against λ."""

    seeds: list[int] = spec([0, 1, 2, 3], "seeds of each λ, trained as one batch (seed= on the command line "
                                          "replaces them)", SEEDS)
    task: dict[str, Any] = spec({"name": "continual_stream"}, "the task stream: any registered task that returns a "
                                "TaskSequence, with its own parameters (continual_stream's defaults: K = 3 "
                                "independent tasks, 8 → 8, seed 0); each phase trains for t_phase unless the task "
                                "sets its own budget", MAPPING)
    t_phase: float = spec(20.0, "t per task", POSITIVE)
    converged_tol: float = spec(1e-6, "a phase converged when its task's loss is within this of L_min", POSITIVE)


@dataclass
class TransferSuite(FreshInitSuite):
    """Property generalisation on the hierarchy: a new feature on one item, a new item with one feature."""

    task: dict[str, Any] = spec({"name": "hierarchy", "depth": 3, "branching": 2, "encoding": "membership"},
                                "the hierarchy task on which property generalisation is measured", MAPPING)
    t_max: float = spec(30.0, "training time of the hierarchy before the new feature or item", POSITIVE)
    item: str = spec("leaf0", "the new feature is trained on this item", TEXT)
    feature: str = spec("n3", "the new item is trained to have this feature (a node two levels below the root)",
                        TEXT)


@dataclass
class RotationSuite(FreshInitSuite):
    """A random_regression source, then a copy with rotated singular vectors: time to learn the target."""

    task: dict[str, Any] = spec({"n_in": 6, "n_out": 6, "seed": 0}, "random_regression source task, rotated "
                                "into the target", MAPPING)
    angles: list[float] = spec([0.3927, 0.7854, 1.1781], "rotation angles of the target (π/8, π/4, 3π/8)", FLOATS)
    side: str = spec("input", "which singular basis of the target is rotated: `input`, `output` or `both`",
                     one_of(*SIDES))
    align: bool = spec(True, "task-aligned source init (no λ = 0 saddle in the source phase)", BOOL)
    t_phase: float = spec(20.0, "t per phase (source, then rotated target)", POSITIVE)
    spacing: str = spec("log", "per phase: dense early, where the target is learned", one_of(*SPACINGS))
    threshold: float = spec(1e-3, "learned: the target's excess loss over its floor (metrics.loss_floor) ≤ this × "
                                  "that of the zero map", POSITIVE)


@dataclass
class FinetuneRelation:
    """How the fine-tuning target is made from the source task."""

    angle: float = spec(0.5236, "rotation angle of the target's singular bases (π/6)", FINITE)
    side: str = spec("both", "which singular basis is rotated: `input`, `output` or `both`", one_of(*SIDES))


@dataclass
class FinetunePretrain:
    """The pretraining phase before fine-tuning."""

    lam: float = spec(0.0, "λ of the pretraining init", FINITE)
    init_scale: float = spec(0.1, "size of the pretraining init's product", POSITIVE)
    align: bool = spec(True, "task-aligned pretraining init", BOOL)
    t_max: float = spec(20.0, "pretraining time", POSITIVE)


@dataclass
class FinetuneSuite(SuiteParams):
    """Pretrain, re-factorise the product at λ_FT, fine-tune on a rotated task: speed and kernel change."""

    lams: list[float] = spec(LAMS, "λ_FT values of the sweep: the re-factorisation's λ (one unit of work each; "
                                   "suite.lams replaces them in every suite)", FLOATS)
    task: dict[str, Any] = spec({"n_in": 6, "n_out": 6, "seed": 0}, "random_regression source task", MAPPING)
    relation: FinetuneRelation = field(default_factory=FinetuneRelation, metadata={"doc": "the target: the "
                                       "source with its singular bases rotated"})
    pretrain: FinetunePretrain = field(default_factory=FinetunePretrain, metadata={"doc": "pretraining phase"})
    t_max: float = spec(10.0, "fine-tuning time", POSITIVE)
    spacing: str = spec("log", "dense early, where fast (large |λ_FT|) fine-tuning happens", one_of(*SPACINGS))
    n_log: int = spec(201, "log points of the fine-tuning phase", at_least(2))
    threshold: float = spec(0.01, "time until the excess loss over the target's floor (metrics.loss_floor) is this "
                                  "fraction of its value at the start of fine-tuning", POSITIVE)


@dataclass
class ArchitectureSuite(FreshInitSuite):
    """Funnel, square and inverted-funnel nets × λ: final kernel distance and the delayed-rich time course."""

    task: dict[str, Any] = spec({"seed": 0}, "random_regression parameters; its widths come from the arch",
                                MAPPING)
    archs: dict[str, Any] = spec({"funnel": {"n_in": 8, "n_out": 4}, "square": {"n_in": 4, "n_out": 4},
                                  "inverted_funnel": {"n_in": 4, "n_out": 8}},
                                 "the nets: {name: {n_in, n_out}}; Nh = min(Ni, No) = 4 for all three, so every "
                                 "λ is allowed. Add a net under a name of its own (+suite.architecture.archs.my_net="
                                 "{n_in: 3, n_out: 2}), judged by its shape; funnel, square and inverted_funnel must "
                                 "have theirs", _archs)
    t_max: float = spec(100.0, "long enough for the slow rich phase (rate ≈ s̃²/|λ|) of the funnel at λ = −8",
                        POSITIVE)
    spacing: str = spec("log", "`linear` or `log` spacing of the log points", one_of(*SPACINGS))
    n_log: int = spec(121, "log points", at_least(2))


@dataclass
class WidthSuite(SuiteParams):
    """Wide i.i.d. two-layer nets (W1 ~ N(0, c₁/N_h), W2 ~ N(0, c₂/N_h)) against theory wide, across N_h × (c₁ + c₂)."""

    lams: list[float] = spec([], "unused: an i.i.d. init has no λ input (theory wide reads λ = ±(c₁ + c₂) off the "
                                 "weights), so suite.lams leaves this suite as it is", _any_floats)
    task: dict[str, Any] = spec({"name": "random_regression", "n_in": 8, "n_out": 8, "seed": 1, "whiten": True},
                                "a whitened task (the issue's: random_regression 8→8, seed 1)", MAPPING)
    widths: list[int] = spec([64, 256, 1024, 4096], "hidden widths N_h (one unit each per c₁ + c₂)", _widths)
    c_sums: list[float] = spec([0.1, 1.0, 8.0], "c₁ + c₂ of the init, split evenly (c₁ = c₂): rich (small) to lazy "
                                                "(large)", _positive_floats)
    eta: float = spec(0.005, "lr = min(lr_max, eta / √((c₁ + c₂)² + 4 s̃₁²)): GD's gap to the flow (~eta/2 ≈ "
                             "3e-3 of the loss, ~2e-4 of the product) stays below the finite-width error", POSITIVE)
    t_max: float = spec(6.0, "training time (the issue's)", POSITIVE)
    n_log: int = spec(61, "log points", at_least(2))
    n_matrix: int = spec(31, "of the log points, this many keep W2W1 (the product error reads them)", at_least(2))


def _nonnegative_list(key: str, value: Any) -> list[float]:
    return floats(key, value, nonnegative=True)


def _nonnegative(key: str, value: Any) -> Any:
    floats(key, value, nonnegative=True)
    return value


@dataclass
class GeneralisationSuite(FreshInitSuite):
    """Held-out loss and grokking: a student–teacher task with fewer samples than inputs, one axis at a time
    around a base point (λ, init scale, weight decay, output multiplier α, P/Ni)."""

    lams: list[float] = spec([-2.0, 0.0, 2.0], "λ values of the λ axis (the other axes at their base values; "
                                               "suite.lams replaces them in every suite)", FLOATS)
    seeds: list[int] = spec([0, 1, 2], "seeds of each point, trained as one batch (seed= on the command line "
                                       "replaces them)", SEEDS)
    task: dict[str, Any] = spec({"name": "student_teacher", "n_in": 16, "n_out": 4, "n_hidden": 2,
                                 "whiten_inputs": False, "n_test": 256, "seed": 0},
                                "the task; n_samples comes from the ratio axis (P = ratio·n_in)", MAPPING)
    lam: float = spec(0.0, "base λ", FINITE)
    init_scale: float = spec(1.0, "base size of the initial product: lazy enough that its part outside the data's "
                                  "span shows in the test loss", POSITIVE)
    init_scales: list[float] = spec([0.1, 0.3, 1.0, 3.0], "the init-scale axis", _positive_floats)
    weight_decay: float = spec(0.05, "base weight decay γ (L2 in the loss)", _nonnegative)
    weight_decays: list[float] = spec([0.0, 0.05, 0.1, 0.2], "the weight-decay axis (γ ≥ 0)",
                                      _nonnegative_list)
    output_scale: float = spec(1.0, "base output multiplier α", POSITIVE)
    output_scales: list[float] = spec([0.5, 1.0, 2.0], "the α axis", _positive_floats)
    ratio: float = spec(0.5, "base P/Ni", POSITIVE)
    ratios: list[float] = spec([0.25, 0.5, 0.75, 1.5], "the P/Ni axis", _positive_floats)
    t_max: float = spec(100.0, "training time: past the slowest grokking of the default axes", POSITIVE)
    spacing: str = spec("log", "log spacing: training is fast, grokking late", one_of(*SPACINGS))
    n_log: int = spec(121, "log points", at_least(2))
    eta: float = spec(0.1, "lr = min(lr_max, eta / rate), rate the fastest rate estimated at init (the suite's "
                           "module docs)", POSITIVE)
    threshold: float = spec(0.1, "learned / generalised: the training / test loss within this fraction of the way "
                                  "from its floor to the zero map's loss", POSITIVE)


SUITE_SCHEMAS: dict[str, type[SuiteParams]] = {
    "reversal": ReversalSuite, "continual": ContinualSuite, "transfer": TransferSuite, "rotation": RotationSuite,
    "finetune": FinetuneSuite, "architecture": ArchitectureSuite, "width": WidthSuite,
    "generalisation": GeneralisationSuite,
}
"""Schema of each suite's parameters, by suite name (the keys of :data:`lazyrich.suites.SUITES`)."""


def fill_suite(name: str, given: Mapping[str, Any] | SuiteParams | None) -> dict[str, Any]:
    """``given`` (a mapping, a schema instance or None) completed with the defaults of suite ``name``, as a plain
    dict, every value checked; refuses an unknown key or a bad value with a ConfigError naming ``suite.<name>.<key>``.
    ``lams`` and ``seeds`` come back as lists of floats and ints."""
    if name not in SUITE_SCHEMAS:
        raise ConfigError(f"suite {name!r} has no schema; known suites: {', '.join(SUITE_SCHEMAS)}.")
    return fill_schema(SUITE_SCHEMAS[name], given, f"suite.{name}", f"{name} suite")


def build_suite(name: str, given: Mapping[str, Any] | SuiteParams | None) -> SuiteParams:
    """The schema object of suite ``name`` (an instance of its class in :data:`SUITE_SCHEMAS`) from ``given``,
    filled and checked by :func:`fill_suite`."""
    return instantiate(SUITE_SCHEMAS[name], fill_suite(name, given))


@dataclass
class BenchConfig:
    """A whole ``lazyrich bench`` configuration, typed: the suite choice, each chosen suite's parameters (its schema
    object, filled and checked, ``suite.lams`` and ``seed`` applied), the W&B mirror and how the suites run.

    :func:`resolve_bench` builds it once, at the top of :func:`lazyrich.suites.run_suites`.
    """

    suite: SuiteSelection = field(default_factory=SuiteSelection, metadata={"doc": "the suite choice"})
    params: dict[str, SuiteParams] = spec({}, "each chosen suite's parameters (its schema object), by suite name")
    logger: LoggerConfig | None = spec(None, "the W&B mirror (null: local files only)")
    seed: Any = spec(None, "an int or a list (seed=0,1,2): replaces the seeds of every suite run")
    device: str = spec("auto", "auto | cpu | cuda | cuda:N", TEXT)
    threads: int | None = spec(1, "torch threads per process: the matrices are tiny, so more threads only fight",
                               at_least(1, nullable=True))
    progress: bool = spec(True, "tqdm bar over the units of each suite", BOOL)
    max_steps: int = spec(DEFAULT_MAX_STEPS, "refuse a unit past this many GD steps per network per phase (t / lr); "
                                             "raise it on purpose", at_least(1))
    name: str = spec("bench", "name of the run: the first folder under outputs/ and multirun/", TEXT)

    def record(self) -> dict[str, Any]:
        """This configuration as plain data (what a bench folder's identity records)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("suite", "params")}
        out["suite"] = {**dataclasses.asdict(self.suite),
                        **{name: dataclasses.asdict(params) for name, params in self.params.items()}}
        out["logger"] = None if self.logger is None else dataclasses.asdict(self.logger)
        return out


BENCH_TOP_LEVEL = ("seed", "device", "threads", "progress", "max_steps", "name")
"""The top-level keys of ``conf/bench.yaml``, whose defaults come from :class:`BenchConfig`."""


def resolve_bench(cfg: Mapping[str, Any] | Any) -> BenchConfig:
    """The :class:`BenchConfig` of ``cfg`` (a mapping or a Hydra DictConfig): every chosen suite's parameters
    filled from its schema, checked and built into its schema object (:func:`build_suite`), with ``suite.lams``
    and ``seed`` replacing every suite's λ values and seeds when set. Every value is checked here, before any
    suite runs."""
    given = dict(plain(cfg))
    given.pop("hydra", None)
    suite_cfg = dict(given.pop("suite", None) or {})
    selection = {k: suite_cfg.pop(k) for k in ("name", "run", "lams") if k in suite_cfg}
    selection = instantiate(SuiteSelection, fill_schema(SuiteSelection, selection, "suite", "suite choice"))
    if isinstance(selection.run, str):
        selection.run = [selection.run]
    unknown = [n for n in selection.run if n not in SUITE_SCHEMAS]
    if unknown:
        raise ConfigError(f"unknown suite(s) {unknown}; choose from {sorted(SUITE_SCHEMAS)} (or suite=all).")
    logger = given.pop("logger", None)
    top = fill_schema(BenchConfig, {k: given.pop(k) for k in BENCH_TOP_LEVEL if k in given}, "bench",
                      "bench config")
    if given:
        raise ConfigError(f"{sorted(given)[0]} is not a key of the bench config; valid keys: "
                          f"{', '.join(sorted([*BENCH_TOP_LEVEL, 'logger', 'suite']))}.")
    seeds_ = None if top["seed"] is None else seeds("seed", top["seed"])
    lams = None if selection.lams is None else floats("suite.lams", selection.lams)
    params = {}
    for name in selection.run:
        if name not in suite_cfg:
            raise ConfigError(f"suite {name!r} has no parameters under suite.{name}; compose it with suite={name} "
                              f"(conf/suite/{name}.yaml).")
        given_params = dict(suite_cfg[name] or {})
        if lams is not None:
            given_params["lams"] = lams
        if seeds_ is not None:
            given_params["seeds"] = seeds_
        params[name] = build_suite(name, given_params)
    return BenchConfig(suite=selection, params=params,
                       logger=None if logger is None else build_group(LoggerConfig, logger, "logger"),
                       seed=seeds_, **{k: top[k] for k in BENCH_TOP_LEVEL if k != "seed"})
