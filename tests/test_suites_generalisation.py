"""The generalisation suite, tiny: grokking needs weight decay, comes later for a lazier init, and the theory (the
ode theory with weight decay, α and the held-out loss) predicts every measured time and loss."""

import pytest

from lazyrich.config.compose import compose
from lazyrich.config.suites import build_suite
from lazyrich.suites import run_suites
from lazyrich.suites.generalisation import SUITE, _points

TINY = [
    "suite.generalisation.seeds=[1]",
    "suite.generalisation.lams=[-2,0]",
    "suite.generalisation.init_scales=[0.1,1]",
    "suite.generalisation.weight_decays=[0,0.1]",
    "suite.generalisation.weight_decay=0.1",
    "suite.generalisation.output_scales=[1]",
    "suite.generalisation.ratios=[0.5,1.5]",
    "suite.generalisation.t_max=30",
    "suite.generalisation.n_log=61",
    "suite.generalisation.eta=0.2",
]


def run(tmp_path, overrides):
    """The suite as ``lazyrich bench suite=generalisation`` runs it, into ``tmp_path``."""
    cfg = compose("bench", ["suite=generalisation", "logger=none", "progress=false", *overrides])
    return run_suites(cfg, tmp_path)["generalisation"]


def test_the_sweep_is_a_base_point_and_one_axis_at_a_time():
    params = build_suite("generalisation", {"lams": [-2.0, 0.0], "init_scales": [1.0], "weight_decays": [0.05],
                                            "output_scales": [1.0, 2.0], "ratios": [0.5]})
    points = _points(params)
    assert len(points) == 3  # the base, λ = −2 and α = 2: the base's own values are not repeated
    base = points[0]
    assert base == {"lam": 0.0, "init_scale": 1.0, "weight_decay": 0.05, "output_scale": 1.0, "ratio": 0.5}
    assert all(sum(p[a] != base[a] for a in base) == 1 for p in points[1:])


@pytest.mark.slow
def test_generalisation_table_and_verdicts(tmp_path, capsys):
    table = run(tmp_path, TINY)
    assert (table["status"] == "ok").all() and len(table) == 5  # the base point is also on every axis
    assert {"t_grok", "theory_t_grok", "test_loss_final", "theory_test_loss_final", "on_weight_decay"} <= set(table)
    # without decay the lazy base keeps the part of its init the data never see: no late generalisation
    no_decay = table[(table["weight_decay"] == 0) & table["on_weight_decay"]]
    assert no_decay["t_grok"].isna().all() and no_decay["theory_t_grok"].isna().all()
    decayed = table[table["weight_decay"] > 0]
    assert decayed["t_grok"].notna().all()
    assert (abs(decayed["t_grok"] - decayed["theory_t_grok"]) <= 0.05 * decayed["theory_t_grok"]).all()
    scale = table[table["on_init_scale"]].set_index("init_scale")["grok_delay"]
    assert scale[1.0] > scale[0.1]  # lazier init, later generalisation
    out = capsys.readouterr().out
    assert "(as docs/theory.md §11 predicts)" in out
    for name in ("suite.csv", "summary.md", "axes.png", "curves.png"):
        assert (tmp_path / name).exists(), name


def test_the_suite_declares_a_theory_column_for_each_headline_time_and_loss():
    theory = {m.column: m.theory for m in SUITE.measures}
    assert theory["t_grok"] == "theory_t_grok" and theory["test_loss_final"] == "theory_test_loss_final"
