"""Configuration: the typed schemas that hold every default, the checks that refuse a bad value in one line,
and composition as the command line does it.

- :mod:`~lazyrich.config.checks`: value checks and :class:`ConfigError`;
- :mod:`~lazyrich.config.fields`: the schema machinery (a field's default, meaning and check; filling a partial
  mapping);
- :mod:`~lazyrich.config.run`: a run (:class:`RunConfig`: the task and the ``init``, ``model``, ``trainer``,
  ``theory`` and ``logger`` groups), resolved once by :func:`resolve_run`;
- :mod:`~lazyrich.config.suites`: the benchmark suites' parameters and a whole bench (:class:`BenchConfig`,
  :func:`resolve_bench`);
- :mod:`~lazyrich.config.compose`: Hydra composition from Python (:func:`compose`);
- :mod:`~lazyrich.config.reference`: the config reference the docs print.
"""

from lazyrich.config.checks import ConfigError
from lazyrich.config.compose import BATCH_KEYS, compose
from lazyrich.config.run import (
    InitConfig,
    LoggerConfig,
    ModelConfig,
    RunConfig,
    TheoryConfig,
    TrainerConfig,
    WandbConfig,
    resolve_run,
)
from lazyrich.config.suites import SUITE_SCHEMAS, BenchConfig, fill_suite, resolve_bench

__all__ = [
    "BATCH_KEYS",
    "SUITE_SCHEMAS",
    "BenchConfig",
    "ConfigError",
    "InitConfig",
    "LoggerConfig",
    "ModelConfig",
    "RunConfig",
    "TheoryConfig",
    "TrainerConfig",
    "WandbConfig",
    "compose",
    "fill_suite",
    "resolve_bench",
    "resolve_run",
]
