"""One configuration and one writer per results folder (issue 11): identity and lock."""

import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from lazyrich import cli, results
from lazyrich.config.compose import conf_dir, register_configs, validate
from lazyrich.experiment import run_experiment
from lazyrich.store import identity, locking
from lazyrich.suites import run_suites

TINY = ["logger=none", "progress=false", "suite.lams=[-2]", "seed=[0]"]
REVERSAL = ["suite=reversal", "suite.reversal.t_phase=2", "suite.reversal.n_log=11"]
RUN = {"task": {"name": "hierarchy"}, "init": {"kind": "balanced", "lam": [0.0, 1.0], "scale": 0.1},
       "model": {"depth": 2}, "trainer": {"lr": 0.05, "t_max": 1.0, "n_log": 6, "progress": False},
       "theory": {"name": "none"}, "seed": 0, "device": "cpu"}


def bench_cfg(*extra, suite=REVERSAL):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("bench", overrides=[*suite, *TINY, *extra])


@pytest.mark.slow
def test_a_changed_parameter_into_the_same_folder_is_refused_and_more_lams_resume(tmp_path):
    out = tmp_path / "sweep"
    run_suites(bench_cfg(), out)
    before = sorted(p.name for p in (out / "runs").iterdir())
    with pytest.raises(identity.FolderConflict, match=r"suite\.reversal\.t_phase: 2\.0 → 3\.0.*hydra\.run\.dir"):
        run_suites(bench_cfg("suite.reversal.t_phase=3.0"), out)
    assert sorted(p.name for p in (out / "runs").iterdir()) == before  # nothing new computed beside the old
    tables = run_suites(bench_cfg("suite.lams=[-2,1]", "seed=[0,1]"), out)  # batch axes may grow
    assert len(tables["reversal"]) == 4 and set(before) <= {p.name for p in (out / "runs").iterdir()}


def test_a_second_suite_into_the_same_folder_is_refused_keeping_the_first_tables(tmp_path):
    out = tmp_path / "sweep"
    run_suites(bench_cfg(), out)
    table, summary = (out / "suite.csv").read_bytes(), (out / "summary.md").read_bytes()
    with pytest.raises(identity.FolderConflict, match="suite.name: 'reversal' → 'architecture'"):
        run_suites(bench_cfg(suite=["suite=architecture"]), out)
    assert (out / "suite.csv").read_bytes() == table and (out / "summary.md").read_bytes() == summary


@pytest.mark.slow
def test_a_finished_run_folder_refuses_another_config_or_batch_and_reruns_the_same(tmp_path):
    """A run folder is rewritten whole: another batch into a finished one would lose its networks (issue 19 #9)."""
    run_experiment(RUN, tmp_path, plot=False)
    before = results.load(tmp_path)
    with pytest.raises(identity.FolderConflict, match=r"finished run of another batch \(init\.lam: \[0\.0, 1\.0\] → "
                                                      r"\[2\.0\]\).*networks would be lost"):
        run_experiment({**RUN, "init": {**RUN["init"], "lam": [2.0]}}, tmp_path, plot=False)
    with pytest.raises(identity.FolderConflict, match="trainer.t_max"):
        run_experiment({**RUN, "trainer": {**RUN["trainer"], "t_max": 2.0}}, tmp_path, plot=False)
    pd.testing.assert_frame_equal(results.load(tmp_path), before)  # nothing was touched
    run_experiment({**RUN, "trainer": {**RUN["trainer"], "batch_chunk": 1}}, tmp_path, plot=False)  # same batch
    recorded = json.loads((tmp_path / identity.IDENTITY_FILE).read_text())["config"]
    assert recorded["trainer.t_max"] == 1.0 and recorded["init.lam"] == [0.0, 1.0]
    (tmp_path / "DONE").unlink()  # killed before it finished: nothing finished to lose, any batch may go in
    run_experiment({**RUN, "init": {**RUN["init"], "lam": [2.0]}}, tmp_path, plot=False)
    assert set(results.load(tmp_path)["lam"]) == {2.0}


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _lock(folder, pid, host=None, started=None):
    folder.mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "host": host or socket.gethostname(), "since": 0, "started": started}
    (folder / locking.LOCK_FILE).write_text(json.dumps(record))


def test_a_live_writer_blocks_a_second_one_and_a_dead_ones_lock_is_taken_over(tmp_path, live_pid):
    out = tmp_path / "sweep"
    _lock(out, live_pid.pid)
    with pytest.raises(locking.FolderLocked, match=f"PID {live_pid.pid} on host"):
        run_suites(bench_cfg(), out)
    assert not (out / "runs").exists()
    live_pid.kill()
    live_pid.wait()  # reaped: the PID is gone
    with pytest.warns(RuntimeWarning, match=f"stale lock .*PID {live_pid.pid}"):
        run_suites(bench_cfg(), out)
    assert (out / "suite.csv").exists() and not (out / locking.LOCK_FILE).exists()


@pytest.mark.skipif(locking.started(os.getpid()) is None, reason="process start times come from /proc (Linux)")
def test_a_lock_whose_pid_was_reused_by_a_later_process_is_stale(tmp_path, live_pid):
    _lock(tmp_path, live_pid.pid, started=locking.started(live_pid.pid))
    with pytest.raises(locking.FolderLocked):
        locking.FolderLock(tmp_path).acquire()
    _lock(tmp_path, live_pid.pid, started=locking.started(live_pid.pid) - 1)  # an earlier owner of that PID
    with pytest.warns(RuntimeWarning, match="stale lock"), locking.FolderLock(tmp_path):
        assert locking.holder(tmp_path)["pid"] == os.getpid()
    assert locking.holder(tmp_path) is None  # released


def test_lock_of_another_host_is_respected_and_the_cli_refuses_before_writing(tmp_path):
    out = tmp_path / "run"
    _lock(out, os.getpid(), host="elsewhere.example")
    with pytest.raises(locking.FolderLocked, match="elsewhere.example"):
        run_experiment(RUN, out, plot=False)
    register_configs()
    with pytest.raises(SystemExit, match=r"^lazyrich: .*elsewhere\.example.*hydra\.run\.dir=<new folder>"):
        cli.preflight("config", validate("config", [f"hydra.run.dir={out}"]))  # before hydra.main: nothing written


@pytest.mark.slow
def test_the_cli_refuses_another_configuration_before_hydra_overwrites_its_config(tmp_path):
    out = tmp_path / "run"
    args = [f"hydra.run.dir={out}", "logger=none", "theory=none", "trainer.t_max=0.5", "trainer.n_log=6",
            "trainer.progress=false"]
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        run_experiment(compose("config", overrides=args[1:]), out, plot=False)
    (out / ".hydra").mkdir()
    (out / ".hydra" / "config.yaml").write_text("the config of the finished run\n")
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", "lazyrich.cli", "run", *args, "trainer.t_max=0.7"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "trainer.t_max: 0.5 → 0.7" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("lazyrich: ")
    assert (out / ".hydra" / "config.yaml").read_text() == "the config of the finished run\n"


@pytest.mark.slow
def test_the_cli_holds_the_lock_before_hydra_writes_so_a_second_command_is_refused_untouched(tmp_path):
    """Two commands started at once: the first to pass preflight holds the folder's lock from then on, so the
    other is refused before Hydra writes its .hydra/ files over the winner's (issue 19 #12)."""
    out = tmp_path / "run"
    register_configs()
    cli.preflight("config", validate("config", [f"hydra.run.dir={out}", "logger=none"]))
    owner = locking.holder(out)
    assert owner["pid"] == os.getpid()  # taken here, before any Hydra job
    (out / ".hydra").mkdir()
    (out / ".hydra" / "config.yaml").write_text("the winner's config\n")
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", "lazyrich.cli", "run", "logger=none", f"hydra.run.dir={out}"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and f"PID {os.getpid()}" in proc.stderr
    assert (out / ".hydra" / "config.yaml").read_text() == "the winner's config\n"
    locking.FolderLock(out).release()
    assert locking.holder(out) is None
