"""What a finished run prints (lazyrich.experiment.console), and the first run a newcomer makes (issue 19 #17)."""

from __future__ import annotations

import pytest

from lazyrich.config.compose import compose
from lazyrich.experiment import run_experiment
from lazyrich.experiment.console import print_run


def test_the_default_run_separates_rich_from_lazy_with_theory_over_simulation(capsys):
    """`lazyrich run` alone: three nets whose curves separate (the rich one's NTK moves, the lazy one's barely),
    every one learned (no saddle) and predicted by the exact theory."""
    result = run_experiment(compose("config", ["logger=none", "trainer.progress=false"]))
    summary = result.summary.set_index("lam")
    assert list(summary.index) == [0.0, 2.0, 8.0]
    kernel = summary["kernel_distance_final"]  # measured: 0.022, 0.0024, 2e-5
    assert kernel[0.0] > 5 * kernel[2.0] and kernel[2.0] > 50 * kernel[8.0]
    assert summary["time_to_1pct"].notna().all() and summary["time_to_1pct"].is_monotonic_decreasing
    assert not summary["theory_saddle"].any() and summary["theory_agrees"].all()
    print_run(result)
    assert "converge to a saddle" not in capsys.readouterr().out


def test_a_saddle_is_explained_where_it_appears(capsys):
    """The plain λ = 0 init of seed 0 reaches the saddle (half of random zero-balanced square nets do): the
    printout says why and what to do instead of leaving an empty time-to-learn column unexplained."""
    result = run_experiment(compose("config", ["init=balanced", "logger=none", "trainer.progress=false"]))
    assert bool(result.summary["theory_saddle"].iloc[0])
    print_run(result)
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "converge to a saddle" in line)
    assert "network(s) [0]" in line and "init=aligned" in line and "λ ≠ 0" in line


@pytest.mark.parametrize("columns", [("lam", "loss_final", "seeds", "diverged")])
def test_the_table_has_one_row_per_configuration(capsys, columns):
    result = run_experiment(compose("config", ["logger=none", "trainer.progress=false", "seed=[0,1]",
                                               "trainer.t_max=1"]))
    print_run(result)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 3 and all(column in out for column in columns[1:])
