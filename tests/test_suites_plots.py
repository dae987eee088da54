"""lazyrich.plots.sweep: a metric against a sweep parameter; measured solid, theory dotted on top, colour per hue."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from lazyrich import plots  # noqa: E402


def test_sweep_draws_measured_solid_and_theory_dotted_per_hue(tmp_path):
    table = pd.DataFrame(
        {
            "arch": ["a", "a", "a", "a", "b", "b"],
            "lam": [-1.0, -1.0, 1.0, 1.0, -1.0, 1.0],
            "seed": [0, 1, 0, 1, 0, 0],
            "kd": [1.0, 3.0, 5.0, 7.0, 0.1, 0.2],
            "theory_kd": [2.0, 2.0, 6.0, 6.0, 0.1, 0.2],
            "status": "ok",
        }
    )
    fig = plots.sweep(table, "lam", ["kd"], hue="arch", log_y=["kd"])
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 4  # two archs × (measured, theory)
    measured = [line for line in lines if line.get_linestyle() == "-"]
    theory = [line for line in lines if line.get_linestyle() == ":"]
    assert len(measured) == 2 and len(theory) == 2
    # Seeds are averaged: arch a at λ = −1 is (1 + 3)/2 = 2.
    assert list(measured[0].get_ydata()) == [2.0, 6.0] and list(measured[0].get_xdata()) == [-1.0, 1.0]
    assert plots.theory_colour(measured[0].get_color()) == theory[0].get_color()  # the same hue, darker
    assert measured[0].get_color() != measured[1].get_color()
    assert ax.get_yscale() == "log"
    path = plots.save(fig, tmp_path / "sweep.png")
    assert path.stat().st_size > 0
