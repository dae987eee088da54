"""conf/bench.yaml and conf/suite/*: suites compose, list stable units; SLURM composes (no launch)."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from lazyrich.config.compose import batch_overrides, conf_dir
from lazyrich.config.suites import resolve_bench
from lazyrich.suites import SUITES

SUITE_OPTIONS = sorted(p.stem for p in (Path(conf_dir()) / "suite").glob("*.yaml"))


def test_every_suite_has_a_config_and_all_and_default_exist():
    assert set(SUITES) | {"all", "default"} == set(SUITE_OPTIONS)


@pytest.mark.parametrize("option", SUITE_OPTIONS)
@pytest.mark.slow
def test_each_suite_option_composes_and_lists_its_units(option):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("bench", overrides=[f"suite={option}"])
    names = list(cfg.suite.run)
    assert names and set(names) <= set(SUITES)
    for name in names:
        params = resolve_bench(cfg).params[name]
        units = SUITES[name].units(params, "cpu")
        assert units and len({u.id for u in units}) == len(units)
        assert [u.id for u in SUITES[name].units(params, "cpu")] == [u.id for u in units]  # stable ids
        if option not in ("default",):
            assert len(params.lams) >= 9 or name != "reversal"  # default sizes sweep enough λ values


def test_default_is_a_small_reversal_and_architecture():
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("bench", overrides=["suite=default"])
        full = compose("bench", overrides=["suite=all"])
    assert list(cfg.suite.run) == ["reversal", "architecture"]
    assert list(full.suite.run) == list(SUITES)
    assert 0.0 in cfg.suite.reversal.lams and len(cfg.suite.reversal.lams) < len(full.suite.reversal.lams)


def test_lams_and_seed_override_every_suite():
    assert batch_overrides(["suite.lams=-1,0,1", "seed=0,1"]) == ["suite.lams=[-1,0,1]", "seed=[0,1]"]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("bench", overrides=["suite=all", "suite.lams=[-1,0,1]", "seed=[3,4]"])
    for name in cfg.suite.run:
        params = resolve_bench(cfg).params[name]
        assert params.lams == [-1.0, 0.0, 1.0] and params.seeds == [3, 4]


def test_slurm_launcher_composes_without_launching():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        for launcher in ("slurm", "submitit_slurm"):
            cfg = compose(
                "bench",
                overrides=["suite=reversal", f"hydra/launcher={launcher}", "hydra.launcher.partition=gpu"],
                return_hydra_config=True,
            )
            assert (
                "submitit" in cfg.hydra.launcher._target_.lower() and "Slurm" in cfg.hydra.launcher._target_
            )
            assert cfg.hydra.launcher.partition == "gpu"
