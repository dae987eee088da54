"""The architecture suite, tiny: funnel, square and inverted funnel, lazy or rich by the sign of λ."""

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
