"""Configuration: the typed schemas that hold every default, the checks that refuse a bad value in one line,
and composition as the command line does it.

- :mod:`~lazyrich.config.checks`: value checks and :class:`ConfigError`;
- :mod:`~lazyrich.config.fields`: the schema machinery (a field's default, meaning and check; filling a partial
  mapping);
- :mod:`~lazyrich.config.run`: the ``init``, ``model``, ``trainer``, ``logger`` and ``theory`` groups of a run;
- :mod:`~lazyrich.config.suites`: the parameters of every benchmark suite;
- :mod:`~lazyrich.config.compose`: Hydra composition from Python (:func:`compose`);
- :mod:`~lazyrich.config.reference`: the config reference the docs print.
"""

from lazyrich.config.checks import ConfigError
from lazyrich.config.compose import BATCH_KEYS, compose
from lazyrich.config.fields import plain
from lazyrich.config.run import (
    InitConfig,
    LoggerConfig,
    ModelConfig,
    TheoryConfig,
    TrainerConfig,
    WandbConfig,
    fill_group,
    fill_run,
)
from lazyrich.config.suites import SUITE_SCHEMAS, fill_suite

__all__ = [
    "BATCH_KEYS",
    "SUITE_SCHEMAS",
    "ConfigError",
    "InitConfig",
    "LoggerConfig",
    "ModelConfig",
    "TheoryConfig",
    "TrainerConfig",
    "WandbConfig",
    "compose",
    "fill_group",
    "fill_run",
    "fill_suite",
    "plain",
]
