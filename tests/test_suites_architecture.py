"""The architecture suite, tiny: funnel, square and inverted funnel, lazy or rich by the sign of λ; a net added
under a name of its own is measured and judged by its shape."""

import pytest
from hydra import compose, initialize_config_dir

from lazyrich.config.compose import conf_dir
from lazyrich.suites import run_suites

TINY = [
    "suite.architecture.lams=[-4,0,4]",
    "suite.architecture.seeds=[0,1,2]",
    "suite.architecture.t_max=20",
    "suite.architecture.n_log=41",
    "suite.architecture.eta=0.1",
    "suite.architecture.archs={funnel:{n_in:4,n_out:2},square:{n_in:2,n_out:2},"
    "inverted_funnel:{n_in:2,n_out:4}}",
]


def run(tmp_path, name, overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("bench", overrides=[f"suite={name}", "logger=none", "progress=false", *overrides])
    return run_suites(cfg, tmp_path)[name]


@pytest.mark.slow
def test_architecture_table_and_the_lazy_rich_pattern(tmp_path, capsys):
    table = run(tmp_path, "architecture", TINY)
    assert {"arch", "lam", "kernel_distance_final", "theory_kernel_distance_final", "seed"} <= set(
        table.columns
    )
    assert list(dict.fromkeys(table["arch"])) == ["funnel", "square", "inverted_funnel"]
    assert (table["status"] == "ok").all() and len(table) == 27
    # Rich reference: λ = 0 networks the theory does not send to a saddle (square nets at λ = 0 can stall).
    rich = table[(table["lam"] != 0) | ~table["theory_saddle"].astype(bool)]
    kd = rich.groupby(["arch", "lam"])["kernel_distance_final"].mean()
    assert ((table["kernel_distance_final"] >= 0) & (table["kernel_distance_final"] <= 2)).all()
    # Square: lazy for both signs; funnel rich (delayed) at λ < 0 and lazy at λ > 0; inverted funnel mirrored.
    assert kd["square", -4.0] < 0.2 * kd["square", 0.0] and kd["square", 4.0] < 0.2 * kd["square", 0.0]
    assert kd["funnel", -4.0] > 5 * kd["funnel", 4.0]
    assert kd["inverted_funnel", 4.0] > 5 * kd["inverted_funnel", -4.0]
    t_half = rich[rich["arch"] == "funnel"].groupby("lam")["kernel_t_half"].mean()
    assert t_half[-4.0] > 5 * t_half[0.0]  # delayed rich: the kernel moves late
    assert "(as docs/theory.md §6 predicts)" in capsys.readouterr().out
    for name in ("suite.csv", "summary.md", "sweep.png", "delayed_rich.png"):
        assert (tmp_path / name).exists(), name


@pytest.mark.slow
def test_a_net_added_under_a_name_of_its_own_is_measured_and_judged_by_its_shape(tmp_path, capsys):
    # mynet has the funnel's widths: the same task and seeds, so the same numbers, and the funnel's expectation.
    table = run(tmp_path, "architecture", [*TINY, "+suite.architecture.archs.mynet={n_in: 4, n_out: 2}"])
    assert (table["status"] == "ok").all() and len(table) == 36
    assert list(dict.fromkeys(table["arch"])) == ["funnel", "square", "inverted_funnel", "mynet"]
    funnel, mine = (table[table["arch"] == a].reset_index(drop=True) for a in ("funnel", "mynet"))
    assert mine["kernel_distance_final"].equals(funnel["kernel_distance_final"])
    (regimes,) = [line for line in (tmp_path / "summary.md").read_text().splitlines() if "mynet (funnel)" in line]
    assert "mynet (funnel): kernel distance" in regimes and regimes.endswith("(Theory page: rich/lazy). As predicted.")
    assert "mynet rich/lazy (as docs/theory.md §6 predicts)" in capsys.readouterr().out


def test_an_arch_named_for_a_shape_must_have_that_shape():
    from lazyrich.config.checks import ConfigError
    from lazyrich.config.suites import fill_suite

    with pytest.raises(ConfigError) as err:
        fill_suite("architecture", {"archs": {"funnel": {"n_in": 2, "n_out": 4}}})
    assert str(err.value).startswith("suite.architecture.archs.funnel={n_in: 2, n_out: 4} is an inverted funnel, "
                                     "not a funnel;")
    assert "+suite.architecture.archs.my_net={n_in: 2, n_out: 4}" in str(err.value)
    assert fill_suite("architecture", {"archs": {"wide_out": {"n_in": 2, "n_out": 4}}})["archs"] == {
        "wide_out": {"n_in": 2, "n_out": 4}}
