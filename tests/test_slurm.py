"""Sharded runs and suites on a real SLURM (issue 22): the single-node cluster of benchmarks/slurm/local_cluster.sh,
started for this session (and stopped after, if this session started it). Skipped, with one line saying why, where
the SLURM packages cannot be installed or started (no root, no apt-get)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lazyrich import results
from lazyrich.store import integrity
from lazyrich.store import shards as sharding

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "slurm" / "local_cluster.sh"
BATCH = ["task=hierarchy", "init=balanced", "init.lam=[-2,-1,0,1,2]", "init.scale=0.1", "seed=[0,1,2]",
         "trainer.t_max=1", "trainer.n_log=6", "trainer.progress=false", "theory=exact", "logger=none"]  # 15 nets
SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=5",
         "hydra.launcher.mem_gb=1"]


def _why_not() -> str | None:
    if shutil.which("bash") is None or not SCRIPT.is_file():
        return "needs bash and benchmarks/slurm/local_cluster.sh"
    if os.geteuid() != 0:
        return "the local SLURM cluster runs its daemons as root (SlurmUser=root); run the tests as root"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "slurm-wlm and munge are not installed and apt-get is not available to install them"
    return None


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """The environment that reaches the local cluster (SLURM_CONF), its daemons up for the session."""
    why = _why_not()
    if why is not None:
        pytest.skip(f"no local SLURM: {why}")
    pytest.importorskip("submitit", reason="the slurm extra (submitit) is not installed")
    was_up = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0
    up = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        pytest.skip(f"no local SLURM: local_cluster.sh up failed: {up.stderr.strip().splitlines()[-1:]}")
    conf = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True).stdout.split("=", 1)[1]
    env = {**os.environ, "SLURM_CONF": conf.strip(), "WANDB_MODE": "disabled"}
    yield env
    if not was_up:
        subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, timeout=120)


def lazyrich(args, cwd, env, **kw) -> subprocess.CompletedProcess:
    """The command's run, its stdout and stderr together in ``.stdout`` (Hydra logs to stdout)."""
    return subprocess.run([sys.executable, "-m", "lazyrich.cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600, **kw)


def queued(env, name: str) -> list[str]:
    """The ids of the jobs named ``name`` that squeue still lists."""
    out = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i"], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same batch in one process (no launcher): the folder every sharded run must equal."""
    cwd = tmp_path_factory.mktemp("one")
    proc = lazyrich(["run", *BATCH, "hydra.run.dir=one"], cwd, {**os.environ, "WANDB_MODE": "disabled"})
    assert proc.returncode == 0, proc.stdout
    return cwd / "one"


def same_numbers(a_dir: Path, b_dir: Path) -> None:
    a = results.load(a_dir).drop(columns="run").sort_values(["net", "t"], ignore_index=True)
    b = results.load(b_dir).drop(columns="run").sort_values(["net", "t"], ignore_index=True)
    assert len(a) == len(b) == 15 * 6
    pd.testing.assert_frame_equal(a, b, rtol=1e-12, atol=0.0)


def test_shards_run_as_one_array_and_a_cancelled_task_is_named_then_recomputed_alone(slurm, reference, tmp_path):
    """One job array writes one verified folder equal to the one-process run; its second task, cancelled while
    queued, is named by the command, and the same command again computes that shard alone."""
    args = ["run", *BATCH, *SLURM, "shards=2", "hydra.launcher.array_parallelism=1", "hydra.run.dir=cancel"]
    submit = subprocess.Popen([sys.executable, "-m", "lazyrich.cli", *args], cwd=tmp_path, env=slurm,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (ids := queued(slurm, "lazyrich:cancel")):
        assert submit.poll() is None and time.monotonic() < deadline, "the array was never queued"
        time.sleep(0.2)
    array = ids[0].split("_")[0]
    subprocess.run(["scancel", f"{array}_1"], env=slurm, check=True)  # the last task: still pending (1 at a time)
    err, _ = submit.communicate(timeout=300)
    assert submit.returncode != 0
    assert "1 of 2 shards failed" in err and "shard 1 (shards/1, networks 8–14)" in err
    assert f"job {array}_1 ended without a result (" in err
    assert "CANCELLED" in err or "it never started: cancelled while queued" in err  # as far as slurmctld knows
    run = tmp_path / "cancel"
    assert integrity.verify_unit(run / "shards" / "0") is None
    kept = (run / "shards" / "0" / "MANIFEST.json").stat().st_mtime_ns
    again = lazyrich(args, tmp_path, slurm)
    assert again.returncode == 0, again.stdout
    assert "recomputing 1 of 2 shards" in again.stdout and "shard 1 (shards/1, networks 8–14)" in again.stdout
    assert "submitted 1 piece(s) as SLURM job array" in again.stdout
    assert integrity.verify_unit(run) is None and len(sharding.parts(run)) == 2
    assert list((run / ".submitit").glob(f"{array}_0/{array}_0_0_log.err"))  # each task's log, in the run folder
    assert (run / "shards" / "0" / "MANIFEST.json").stat().st_mtime_ns == kept
    same_numbers(reference, run)
    assert queued(slurm, "lazyrich:cancel") == []


def test_ctrl_c_of_the_submitting_command_leaves_no_job(slurm, tmp_path):
    args = ["run", *BATCH, *SLURM, "shards=3", "trainer.t_max=20000", "hydra.run.dir=long"]  # minutes per task
    submit = subprocess.Popen([sys.executable, "-m", "lazyrich.cli", *args], cwd=tmp_path, env=slurm,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not queued(slurm, "lazyrich:long"):
        assert submit.poll() is None and time.monotonic() < deadline, "the array was never queued"
        time.sleep(0.2)
    time.sleep(2)  # let tasks start
    submit.send_signal(signal.SIGINT)
    err, _ = submit.communicate(timeout=120)
    assert submit.returncode != 0
    assert "cancelling SLURM job array" in err
    assert queued(slurm, "lazyrich:long") == []
    assert not (tmp_path / "long" / "DONE").exists()


def test_a_failing_array_task_is_reported_with_its_log(slurm, tmp_path):
    args = ["run", *BATCH, *SLURM, "shards=2", "hydra.run.dir=bad", "hydra.launcher.setup=['exit 3']"]
    proc = lazyrich(args, tmp_path, slurm)
    assert proc.returncode != 0
    assert "2 of 2 shards failed" in proc.stdout and "log " in proc.stdout
    assert "Traceback" not in proc.stdout
    assert queued(slurm, "lazyrich:bad") == []


def test_bench_units_run_as_array_tasks(slurm, tmp_path):
    args = ["bench", "suite=reversal", "suite.lams=[-2,2]", "seed=[0]", "suite.reversal.t_phase=2",
            "suite.reversal.n_log=11", "progress=false", *SLURM, "hydra.run.dir=bench", "logger=none"]
    proc = lazyrich(args, tmp_path, slurm)
    assert proc.returncode == 0, proc.stdout
    assert "SLURM job array" in proc.stdout
    runs = [p for p in (tmp_path / "bench").rglob("runs/*") if p.is_dir()]
    assert runs and all(integrity.verify_unit(p) is None for p in runs)


def test_submitit_local_shards_give_the_same_folder(reference, tmp_path):
    pytest.importorskip("submitit", reason="the slurm extra (submitit) is not installed")
    args = ["run", *BATCH, "hydra/launcher=submitit_local", "shards=2", "hydra.run.dir=out"]
    proc = lazyrich(args, tmp_path, {**os.environ, "WANDB_MODE": "disabled"})
    assert proc.returncode == 0, proc.stdout
    assert integrity.verify_unit(tmp_path / "out") is None
    same_numbers(reference, tmp_path / "out")
