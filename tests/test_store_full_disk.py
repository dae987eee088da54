"""A full disk while a run folder is written (lazyrich.store.storage, run_folder, integrity) or mirrored to W&B
(lazyrich.tracking.sink): nothing half-written is left, nothing is printed at exit, and one line names the file and
the fix.

Each case runs twice where it can: on a real full disk (a tiny tmpfs, mounted for the test; skipped where this
process may not mount one) and with the write call patched to raise ENOSPC (always).
"""

import errno
import gc
import logging
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import offline_wandb_in

from lazyrich import store
from lazyrich.experiment import run_experiment
from lazyrich.store import integrity, storage
from lazyrich.store.storage import NoSpaceLeft, RunWriter
from lazyrich.tracking import sink as wandb_sink

ROOT = Path(__file__).resolve().parents[1]
FIX = "free space, then re-run into the same folder"
RUN = {"task": {"name": "hierarchy"}, "init": {"lam": [-2.0, 0.5, 2.0], "scale": 0.1}, "seed": [0, 1, 2],
       "trainer": {"lr": 0.01, "t_max": 2.0, "n_log": 201, "batch_chunk": 3, "progress": False}}
"""9 networks written in 3 chunks: about 600 KiB of results."""


@pytest.fixture
def tiny_disk(tmp_path):
    """``mount(size)``: a new tmpfs of ``size`` (e.g. "120k") under tmp_path, unmounted after the test."""
    mounted = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root and mount(8)")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def unraisable(monkeypatch):
    """What Python would print as 'Exception ignored in …' (e.g. a Parquet writer closing at exit): collected."""
    caught = []
    monkeypatch.setattr(sys, "unraisablehook", caught.append)
    return caught


def _nothing_half_written(folder: Path) -> None:
    assert not list(folder.glob("*.partial"))
    for chunk in folder.glob("matrices-*.npz"):  # every chunk left is whole
        with np.load(chunk) as npz:
            assert all(npz[k].size >= 0 for k in npz.files)


@pytest.mark.slow
def _fills_up(folder: Path, named: set[str]) -> bool:
    """Run into ``folder``; True (and the file it was writing added to ``named``) if the disk filled up, after
    checking that it said so in one line and left nothing half-written."""
    try:
        run_experiment(RUN, folder, plot=False)
    except NoSpaceLeft as err:
        message = str(err)
        assert message.startswith(f"no space left on {folder.parent} writing {folder}/") and message.endswith(FIX)
        assert "\n" not in message and not (folder / store.DONE).exists()
        _nothing_half_written(folder)
        assert not Path(err.filename).exists()  # the file it was writing is gone, not truncated
        named.add(Path(err.filename).name.split("-")[0])
        return True
    finally:
        gc.collect()
    return False


@pytest.mark.slow
def test_a_full_disk_while_a_run_is_written_leaves_nothing_half_written(tiny_disk, unraisable, tmp_path):
    """Disks of growing size fill up at every kind of file a run writes (its matrix chunks, the metrics, the
    summary): the sizes step through the run's real footprint, read off a run on a roomy disk, so the cases follow
    the files whatever columns a run logs."""
    roomy = tmp_path / "roomy"
    run_experiment(RUN, roomy, plot=False)
    total = sum(f.stat().st_size for f in roomy.iterdir() if f.is_file())
    named, fills = set(), iter(range(40, total // 1024 + 40, 32))  # KiB: coarser than a matrix chunk (≈ 65 KiB)
    for fill in fills:
        if _fills_up(tiny_disk(f"{fill}k") / "run", named):
            continue
        for fine in range(fill - 32, fill, 4):  # the run fits from here: the last files, page by page
            _fills_up(tiny_disk(f"{fine}k") / "run", named)
        break
    assert {"matrices", store.METRICS_PARQUET} <= named and named & {"summary.csv", "summary.json"}, named
    assert unraisable == []  # no Parquet writer left to fail again at exit


@pytest.mark.slow
def test_the_command_line_says_one_line_on_a_full_disk_and_nothing_at_exit(tiny_disk):
    folder = tiny_disk("120k") / "run"
    done = subprocess.run(
        [sys.executable, "-m", "lazyrich.cli", "run", "task=hierarchy", "init.lam=[-2,0.5,2]", "seed=[0,1,2]",
         "trainer.n_log=201", "trainer.batch_chunk=3", "trainer.progress=false", "logger=none",
         f"hydra.run.dir={folder}"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"},
        timeout=300)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"lazyrich: no space left on {folder.parent} writing {folder}/")
    assert FIX in lines[0] and "Exception ignored" not in done.stderr
    _nothing_half_written(folder)


def _frame(nets=range(3), n_log=5):
    return pd.DataFrame({"net": np.repeat(list(nets), n_log), "t": np.tile(np.linspace(0, 1, n_log), len(nets)),
                         "sim/loss": np.linspace(1, 0, len(nets) * n_log), "status": "ok"})


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_chunk_that_fills_the_disk_is_removed_with_the_partial_metrics(tmp_path, monkeypatch, unraisable):
    writer = RunWriter(tmp_path)
    writer.append(0, 3, _frame(), {"x": np.zeros((3, 2))})
    real = np.savez

    def half(path, **arrays):  # writes a truncated chunk, then the disk is full
        real(path, **arrays)
        Path(path).write_bytes(Path(path).read_bytes()[:100])
        _full()

    monkeypatch.setattr(np, "savez", half)
    with pytest.raises(NoSpaceLeft, match=f"no space left on .* writing {tmp_path}/matrices-000000003-000000006.npz: "
                                          f"{FIX}$"):
        writer.append(3, 6, _frame(range(3, 6)), {"x": np.zeros((3, 2))})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matrices-000000000-000000003.npz"]  # whole, kept
    del writer
    gc.collect()
    assert unraisable == []


def test_a_metrics_write_that_fills_the_disk_closes_the_writer_and_removes_the_partial(tmp_path, monkeypatch,
                                                                                        unraisable):
    import pyarrow.parquet as pq

    writer = RunWriter(tmp_path)
    writer.append(0, 3, _frame(), {})
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _full)
    with pytest.raises(NoSpaceLeft, match=f"writing {tmp_path / store.METRICS_PARQUET}: {FIX}"):
        writer.append(3, 6, _frame(range(3, 6)), {})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="abandoned .*re-run into the same folder"):  # never half a file
        writer.append(6, 9, _frame(range(6, 9)), {})
    del writer
    gc.collect()
    assert unraisable == []


@pytest.mark.parametrize("failing", ["summary.csv", "summary.json", "MANIFEST.json.tmp"])
def test_the_summary_and_manifest_on_a_full_disk_are_removed_and_named(tmp_path, monkeypatch, failing):
    real_csv, real_text = pd.DataFrame.to_csv, Path.write_text

    def to_csv(self, path=None, *args, **kwargs):
        if Path(path).name == failing:
            real_csv(self, path, *args, **kwargs)
            _full()
        return real_csv(self, path, *args, **kwargs)

    def write_text(self, text, *args, **kwargs):
        if self.name == failing:
            real_text(self, text[: len(text) // 2], *args, **kwargs)
            _full()
        return real_text(self, text, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)
    monkeypatch.setattr(Path, "write_text", write_text)
    named = failing.removesuffix(".tmp")
    with pytest.raises(NoSpaceLeft, match=f"writing {tmp_path / named}: {FIX}"):
        store.write_run(tmp_path, _frame(), pd.DataFrame({"status": ["ok"]}))
    assert not (tmp_path / failing).exists() and not (tmp_path / store.DONE).exists()
    assert integrity.verify_unit(tmp_path).startswith("unfinished")


def test_only_a_full_disk_is_turned_into_the_one_line_and_it_pickles(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(np, "savez", denied)
    with pytest.raises(PermissionError):  # another OSError is not a full disk
        storage.MatrixStore(tmp_path).write(0, 1, {"x": np.zeros((1, 1))})
    err = NoSpaceLeft(tmp_path / "summary.csv")
    back = pickle.loads(pickle.dumps(err))  # crosses from a sweep worker to its parent intact
    assert str(back) == str(err) and back.errno == errno.ENOSPC and back.filename == str(tmp_path / "summary.csv")


# --- W&B: an OSError while logging is one warning, not a cascade ----------------------------------------------------


def _networks(n=8, n_log=50):
    return pd.DataFrame({"net": np.repeat(np.arange(n), n_log), "lam": np.repeat(np.arange(n) * 1.0, n_log),
                         "scale": 0.1, "lr": 0.01, "seed": 0, "step": np.tile(np.arange(n_log), n),
                         "t": np.tile(np.linspace(0, 1, n_log), n), "sim/loss": np.linspace(1, 0, n * n_log),
                         "status": "ok"})


def _target(run_dir):
    return wandb_sink.Target(group="g", job_type="run", config={"task": "hierarchy"}, unit="u", run_dir=run_dir,
                             layout="network", mode="offline")


def test_wandb_on_a_full_disk_warns_once_and_prints_no_logging_tracebacks(tiny_disk, capfd):
    disk = tiny_disk("100k")
    with offline_wandb_in(disk), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = wandb_sink.log_networks(_networks(), _target(disk), ("lam", "scale", "lr"))
    messages = [str(w.message) for w in caught if "W&B" in str(w.message)]
    assert len(messages) == 1 and messages[0].startswith("W&B logging stopped at 'lam=")
    assert "No space left on device" in messages[0] and f"local files in {disk} are complete" in messages[0]
    assert written == [] and "Logging error" not in capfd.readouterr().err


def test_an_oserror_while_logging_stops_the_mirror_with_one_warning(tmp_path, monkeypatch, capfd):
    broken = logging.StreamHandler(type("Full", (), {"write": lambda self, s: None, "flush": _full})())
    logger = logging.getLogger("wandb.test_full_disk")
    logger.addHandler(broken)
    starts = []

    class Run:
        dir = str(tmp_path / "wandb" / "run" / "files")

        def define_metric(self, *args, **kwargs):
            pass

        def log(self, record):
            logger.warning("writing a record")  # W&B's own logger, its file on the full disk
            _full()

    monkeypatch.setattr(wandb_sink, "start_run", lambda *a, **k: starts.append(k["id"]) or Run())
    try:
        with pytest.warns(UserWarning, match="W&B logging stopped at 'lam=0 seed=0': .*No space left") as caught:
            assert wandb_sink.log_networks(_networks(), _target(tmp_path), ("lam", "scale", "lr")) == []
    finally:
        logger.removeHandler(broken)
    assert len(starts) == 1 and len([w for w in caught if "W&B" in str(w.message)]) == 1  # not one per network
    assert "Logging error" not in capfd.readouterr().err and logging.raiseExceptions
