"""lazyrich.plots primitives for the paper figures: simulation solid, theory dotted on top in a darker shade,
labels, scales, PNGs and their PDFs."""

from __future__ import annotations

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest

from lazyrich import plots


def _styles(ax) -> list[str]:
    return [line.get_linestyle() for line in ax.get_lines()]


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_sim_theory_draws_k_solid_lines_and_k_darker_dotted_ones_on_top(ax):
    t = np.linspace(0, 1, 20)
    sim = np.stack([t, 2 * t, 3 * t], -1)
    lines = plots.sim_theory(ax, t, sim, sim + 0.01, color="C3", label="λ = 1")
    assert _styles(ax) == ["-"] * 3 + [":"] * 3
    assert {line.get_color() for line in lines[:3]} == {"C3"}
    assert {line.get_color() for line in lines[3:]} == {plots.theory_colour("C3")}
    sim_rgb, theory_rgb = (np.array(mcolors.to_rgb(c)) for c in ("C3", plots.theory_colour("C3")))
    assert np.all(theory_rgb < sim_rgb) and np.allclose(theory_rgb / sim_rgb, theory_rgb[0] / sim_rgb[0])  # same hue
    assert min(line.get_zorder() for line in lines[3:]) > max(line.get_zorder() for line in lines[:3])  # on top
    assert [line.get_label() for line in ax.get_lines()].count("λ = 1") == 1  # one legend entry per colour


def test_sim_theory_without_theory_and_with_its_own_grid(ax):
    plots.sim_theory(ax, [0, 1, 2], [1, 2, 3], marker="o")
    assert _styles(ax) == ["-"] and ax.get_lines()[0].get_marker() == "o"
    plots.sim_theory(ax, [0, 1, 2], [1, 2, 3], [1.0, 1.5, 2.0, 2.5], x_theory=[0, 0.5, 1, 1.5])
    assert _styles(ax) == ["-", "-", ":"]
    assert len(ax.get_lines()[-1].get_xdata()) == 4


def test_legend_opens_with_the_style_key_and_adds_no_lines(ax):
    plots.sim_theory(ax, [0, 1], [0, 1], [0, 1], label="λ = 0")
    plots.sim_theory(ax, [0, 1], [1, 0], [1, 0], color="C1", label="λ = 2")
    legend = plots.legend_sim_theory(ax, extra=[("Saxe limit", plots.LIMIT_STYLE)])
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["simulation", "theory", "Saxe limit", "λ = 0", "λ = 2"]
    handles = legend.legend_handles
    assert [h.get_linestyle() for h in handles[:3]] == ["-", ":", "--"]
    assert len(ax.get_lines()) == 4  # the proxies are not plotted


def test_matrix_entries_one_colour_per_entry(ax):
    t = np.linspace(0, 1, 10)
    sim = np.random.default_rng(0).normal(size=(10, 2, 3))
    plots.matrix_entries(ax, t, sim, sim)
    assert _styles(ax).count("-") == 6 and _styles(ax).count(":") == 6
    ax.cla()
    lines = plots.matrix_entries(ax, t, sim, None, entries=[(0, 0), (1, 2)])
    assert _styles(ax) == ["-", "-"]
    np.testing.assert_array_equal(lines[1].get_ydata(), sim[:, 1, 2])
    assert lines[0].get_color() != lines[1].get_color()


def test_split_matrix_shows_simulation_above_and_theory_below_the_diagonal(ax):
    sim, theory = np.full((4, 4), 1.0), np.full((4, 4), -1.0)
    image = plots.split_matrix(ax, sim, theory, title="W1ᵀW1")
    shown = np.asarray(image.get_array())
    assert np.all(shown[np.triu_indices(4)] == 1.0) and np.all(shown[np.tril_indices(4, -1)] == -1.0)
    assert image.get_clim() == (-1.0, 1.0)  # symmetric about zero
    assert ax.get_title() == "W1ᵀW1" and not ax.get_lines()


def test_contour_compare_solid_simulation_dotted_theory(ax):
    x, y = np.arange(5), np.arange(4)
    grid = np.add.outer(y, x).astype(float)
    _, cs_sim, cs_th = plots.contour_compare(ax, x, y, grid, grid + 0.1, levels=[2, 4], colorbar_label="S")
    assert cs_sim.linestyles == "solid" and cs_th.linestyles == "dotted"
    assert list(cs_sim.levels) == list(cs_th.levels) == [2, 4]
    colorbar_axes = [a for a in ax.figure.axes if a is not ax]
    assert colorbar_axes[0].get_ylabel() == "S"


def test_mark_phases_and_palette(ax):
    plots.mark_phases(ax, [1.0, 2.0])
    assert _styles(ax) == ["-.", "-."]  # neither simulation nor theory
    assert len(plots.palette(5)) == 5 and plots.palette(1)[0] == plots.palette(3)[0]


def test_save_writes_a_png_and_a_pdf_beside_it_and_closes_the_figure(tmp_path):
    fig, ax = plt.subplots()
    plots.sim_theory(ax, [0, 1], [0, 1], [0, 1])
    ax.set_yscale("log")
    path = plots.save(fig, tmp_path / "sub" / "f.png", dpi=50)
    assert path == tmp_path / "sub" / "f.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "sub" / "f.pdf").read_bytes()[:5] == b"%PDF-"
    assert not plt.fignum_exists(fig.number)
