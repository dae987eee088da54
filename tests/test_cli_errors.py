"""Every config error is one line naming the key and the fix, without a traceback (issue 11)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from lazyrich import cli
from lazyrich.config.checks import ConfigError
from lazyrich.config.compose import conf_dir, register_configs, validate
from lazyrich.experiment import run_experiment, run_shards


def _one_line(message) -> str:
    text = str(message)
    assert text.startswith("lazyrich") and "\n" not in text.strip() and "Traceback" not in text, text
    return text


def _creatable(folder: Path) -> bool:
    try:
        folder.mkdir()
    except OSError:
        return False
    folder.rmdir()
    return True


def test_a_key_typo_after_its_group_was_selected_names_the_key_and_the_valid_ones():
    register_configs()
    with pytest.raises(SystemExit) as info:
        validate("config", ["task=random_regression", "task.n_inn=8"])
    text = _one_line(info.value)
    assert "'task.n_inn' is not a config key" in text and "Did you mean 'task.n_in'?" in text
    assert "n_samples" in text and "+task.n_inn" not in text  # the valid keys, not Hydra's append advice


@pytest.mark.parametrize("override", ["suite.architecture.archs.mynet={n_in: 3, n_out: 2}",
                                      "suite.architecture.archs={mynet: {n_in: 3, n_out: 2}}"])
def test_a_new_entry_of_an_open_mapping_is_told_how_to_add_it(override):
    """A new net for the architecture suite is not a typo of 'archs': the line says the + that adds it."""
    register_configs()
    with pytest.raises(SystemExit) as info:
        validate("bench", ["suite=architecture", override])
    text = _one_line(info.value)
    assert "'suite.architecture.archs' holds funnel, inverted_funnel, square; to add 'mynet'" in text
    assert "+suite.architecture.archs" in text and "Did you mean" not in text


@pytest.mark.parametrize(("override", "needle"), [
    ("trainer.lr=abc", "trainer.lr='abc' is not a number"),
    ("seed=abc", "seed='abc' is not an integer seed"),
    ("seed=99999999999999999999", "seed=99999999999999999999 is out of range"),
    ("init.lam=[]", "init.lam is an empty list"),
    ("seed=1.5", "seed=1.5 is not an integer seed"),
    ("shards=0", "run.shards=0 must be an integer ≥ 1"),
    ("shards=99", "shards=99 must be between 1 and the batch's 3 networks; lower shards"),
])
def test_bad_values_from_the_command_line_stop_the_job_in_one_line(tmp_path, override, needle):
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[override, "logger=none", "trainer.progress=false"])
    job = cli._job(lambda c: run_shards(c, tmp_path))
    with pytest.raises(SystemExit) as info:
        job(cfg)
    assert needle in _one_line(info.value)


@pytest.mark.slow
def test_the_command_prints_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    args = [sys.executable, "-m", "lazyrich.cli", "run", "seed=1.5", "logger=none", "hydra.run.dir=out"]
    plain = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [_one_line(plain.stderr.strip())]
    assert "seed=1.5 is not an integer seed" in plain.stderr
    monkeypatch.setenv("LAZYRICH_DEBUG", "1")
    job = cli._job(lambda c: run_experiment(c, tmp_path, plot=False))
    with pytest.raises(ConfigError, match="seed=1.5"):  # the exception itself, so Hydra shows its traceback
        job({"task": {"name": "hierarchy"}, "seed": 1.5})


@pytest.mark.parametrize("kind", ["file_in_the_way", "read_only"])
def test_an_unwritable_output_folder_is_one_line_naming_it(tmp_path, kind):
    if kind == "file_in_the_way":
        (tmp_path / "taken").write_text("a file where the folder should go")
        target = tmp_path / "taken" / "run"
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        target = tmp_path / "ro" / "run"
        if os.geteuid() == 0:  # root ignores permission bits: use a folder nobody may create files in
            target = Path("/sys/lazyrich-fault-test/run")
            if not Path("/sys").is_dir() or _creatable(target.parent):
                pytest.skip("running as root without a read-only /sys: no unwritable folder to try")
    register_configs()
    with pytest.raises(SystemExit) as info:
        cli.preflight("config", validate("config", [f"hydra.run.dir={target}"]))
    text = _one_line(info.value)
    assert f"cannot write to the output folder {target}" in text and "hydra.run.dir=" in text
