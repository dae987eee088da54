"""``logger.wandb.layout=auto`` is a function of the command (how many networks and configurations), never of how
long W&B took: two sweeps of one size get one layout, so their dashboards match (lazyrich/tracking/sink.py)."""

import types

import numpy as np
import pandas as pd
import pytest

from lazyrich.tracking import sink as wandb_sink


class FakeClock:
    """A perf_counter that W&B runs advance: a W&B run 'takes' ``cost`` seconds without any waiting."""

    def __init__(self) -> None:
        self.now, self.cost = 0.0, 0.0

    def perf_counter(self) -> float:
        return self.now


class FakeRun:
    """What _guarded touches on a W&B run; finishing it moves the clock by the run's cost."""

    def __init__(self, directory, clock: FakeClock) -> None:
        self.dir, self.clock, self.summary = str(directory / "files"), clock, {}

    def define_metric(self, *args, **kwargs) -> None:
        pass

    def log(self, record) -> None:
        pass

    def finish(self) -> None:
        self.clock.now += self.clock.cost


def sweep_frame(n_lams: int = 5, n_seeds: int = 3, n_t: int = 3) -> pd.DataFrame:
    """The long table of ``n_lams`` λ × ``n_seeds`` seeds (15 networks by default), as lazyrich run writes it."""
    rows = []
    for net in range(n_lams * n_seeds):
        lam, seed = float(net // n_seeds), net % n_seeds
        rows += [{"net": net, "lam": lam, "scale": 0.1, "lr": 0.02, "seed": seed, "t": t, "step": t,
                  "sim/loss": np.exp(-t), "status": "ok"} for t in range(n_t)]
    return pd.DataFrame(rows)


@pytest.fixture
def fake_wandb(tmp_path, monkeypatch):
    """W&B replaced by runs that only count themselves and cost fake time; returns (clock, ids of the runs)."""
    clock, ids = FakeClock(), []

    def start_run(mode, *, light=True, **kwargs):
        ids.append(kwargs["id"])
        return FakeRun(tmp_path / kwargs["id"], clock)

    monkeypatch.setattr(wandb_sink, "start_run", start_run)
    monkeypatch.setattr(wandb_sink, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(wandb_sink, "_COST", {"seconds": 0.0, "runs": 0, "first": 0.0}, raising=False)
    return clock, ids


def test_two_sweeps_of_one_size_get_one_layout_however_slow_wandb_gets(fake_wandb, tmp_path):
    """Three sweeps of 15 networks (5 λ × 3 seeds), each after 30 s of work: the first on an idle machine
    (0.05 s a W&B run), the next two on a loaded one (2 s a W&B run). Timing-based, the third fell back to one
    run per configuration; now all three log one run per network."""
    clock, ids = fake_wandb
    counts = []
    for sweep, cost in enumerate((0.05, 2.0, 2.0)):
        clock.cost = cost
        target = wandb_sink.Target(group=f"outputs/run/{sweep}", job_type="run", config={}, unit=str(sweep),
                                   run_dir=tmp_path / str(sweep), mode="offline")
        before = len(ids)
        wandb_sink.log_networks(sweep_frame(), target, ("lam", "scale", "lr"), elapsed=30.0)
        counts.append(len(ids) - before)
    assert counts == [15, 15, 15]


def test_auto_falls_back_by_the_count_alone(fake_wandb, tmp_path):
    """Past NETWORK_RUNS_MAX networks (here 13 λ × 5 seeds = 65), one run per configuration, however fast W&B."""
    clock, ids = fake_wandb
    frame = sweep_frame(n_lams=13, n_seeds=5)
    assert frame["net"].nunique() == wandb_sink.NETWORK_RUNS_MAX + 1
    target = wandb_sink.Target(group="outputs/run/big", job_type="run", config={}, unit="big",
                               run_dir=tmp_path / "big", mode="offline")
    wandb_sink.log_networks(frame, target, ("lam", "scale", "lr"), network_table=False)
    assert len(ids) == 13
    small = sweep_frame(n_lams=16, n_seeds=4)  # 64 networks: per network
    target = wandb_sink.Target(group="outputs/run/small", job_type="run", config={}, unit="small",
                               run_dir=tmp_path / "small", mode="offline")
    wandb_sink.log_networks(small, target, ("lam", "scale", "lr"))
    assert len(ids) == 13 + 64
