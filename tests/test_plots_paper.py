"""Figures fit for a paper: the theory visible on top of the simulation, legend proxies for "simulation" and
"theory", words and symbols for labels, failed and diverged points marked, coinciding curves noted, 2 × 2
layouts for sweeps, and a PDF beside every 200 dpi PNG — on the drawing functions and on a suite's figures."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lazyrich import plots  # noqa: E402


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in _legends(fig) for t in legend.get_texts()]


def _legends(fig) -> list:
    return [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)


def _marks(fig, kind: str, axes=None) -> list[float]:
    """x positions of the failure markers of ``kind`` drawn on every panel (or on ``axes``)."""
    return [float(x) for ax in (axes or fig.axes) for line in ax.get_lines() if line.get_gid() == f"mark:{kind}"
            for x in line.get_xdata()]


def _proxies(fig) -> dict[str, object]:
    legend = _legends(fig)[0]
    return {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _sweep_table() -> pd.DataFrame:
    """Reversal-like rows: λ = 0 never reverses (NaN, in the theory too), λ = ±2 coincide, seeds averaged."""
    lam = [-2.0, -2.0, 0.0, 0.0, 2.0, 2.0]
    return pd.DataFrame({"lam": lam, "seed": [0, 1] * 3,
                         "time_to_reverse": [1.0, 1.1, math.nan, math.nan, 1.0, 1.1],
                         "theory_time_to_reverse": [1.06, 1.06, math.nan, math.nan, 1.06, 1.06],
                         "plateau_time": [0.1, 0.1, 13.0, 13.2, 0.1, 0.1],
                         "theory_plateau_time": [0.1, 0.1, 13.1, 13.1, 0.1, 0.1],
                         "loss_final": [1e-29, 2e-29, 2.0, 2.0, 1e-29, 2e-29], "status": "ok"})


def test_sweep_of_three_measures_is_two_by_two_with_proxies_words_and_markers():
    failed = pd.DataFrame({"lam": [4.0], "status": ["failed"]})
    fig = plots.sweep(_sweep_table(), "lam", ["time_to_reverse", "plateau_time", "loss_final"],
                      log_y=["loss_final"], failed=failed)
    panels = [ax for ax in fig.axes if ax.axison]
    rows = {round(ax.get_position().y0, 3) for ax in panels}
    assert len(panels) == 3 and len(rows) == 2  # 2 × 2: three panels, the legend in the fourth cell
    texts = _legend_texts(fig)
    assert texts[:2] == ["simulation", "theory"]
    proxies = _proxies(fig)
    assert proxies["simulation"].get_linestyle() == "-" and proxies["theory"].get_linestyle() == ":"
    assert {"simulation: no value (never reached)", "theory: no value", "run failed (no result)"} <= set(texts)
    assert all(ax.get_xlabel() == "λ" for ax in panels)
    assert "time to reverse" in panels[0].get_ylabel() and "steps · lr" in panels[0].get_ylabel()
    assert not any("_" in ax.get_ylabel() for ax in panels)  # no column names
    assert _marks(fig, "missing") == [0.0] and _marks(fig, "theory_missing") == [0.0]
    assert _marks(fig, "failed") == [4.0] * 3  # on every panel
    measured = next(line for line in panels[0].get_lines() if line.get_linestyle() == "-")
    assert list(measured.get_xdata()) == [-2.0, 2.0]  # λ = 0 is a marker, not a silently missing point


def test_linear_axes_start_at_zero_so_half_a_percent_is_not_a_cliff():
    table = pd.DataFrame({"lam": [-1.0, 0.0, 1.0], "forgetting": [13.00, 13.03, 13.06]})
    ax = plots.sweep(table, "lam", ["forgetting"]).axes[0]
    low, high = ax.get_ylim()
    assert low == 0.0 and high >= 13.06


def test_sweep_over_angles_names_them_as_fractions_of_pi():
    table = pd.DataFrame({"lam": [1.0, 2.0] * 2, "angle": [0.3927, 0.3927, 0.7854, 0.7854],
                          "time_to_learn": [2.0, 1.0, 3.0, 2.0]})
    fig = plots.sweep(table, "lam", ["time_to_learn"], hue="angle")
    assert {"angle = π/8", "angle = π/4"} <= set(_legend_texts(fig))
    by_angle = plots.sweep(table, "angle", ["time_to_learn"], hue="lam")
    assert [t.get_text() for t in by_angle.axes[0].get_xticklabels()] == ["π/8", "π/4"]


def _long_frame(lams=(-2.0, 0.0, 2.0), seeds=(0, 1), diverge: int | None = None) -> pd.DataFrame:
    """A long table whose curves depend on |λ| only (±λ coincide), one network diverging if asked."""
    t = np.linspace(0, 4, 21)
    rows = []
    for net, (lam, seed) in enumerate((lam, seed) for lam in lams for seed in seeds):
        loss = np.exp(-(1 + abs(lam)) * t) * (1 + 0.01 * seed)
        kd = 0.1 / (1 + abs(lam)) * (1 - np.exp(-t))
        status = "ok"
        if net == diverge:
            loss = np.where(t > 2, np.inf, loss)
            status = "diverged"
        rows.append(pd.DataFrame({"net": net, "lam": lam, "seed": seed, "t": t, "status": status,
                                  "sim/loss": loss, "theory/loss": loss * 1.001,
                                  "sim/kernel_distance": kd, "theory/kernel_distance": kd}))
    return pd.concat(rows, ignore_index=True)


def test_curves_theory_on_top_coinciding_entries_shared_and_a_diverged_network_marked():
    fig = plots.curves(_long_frame(diverge=2), hue="lam")
    ax = fig.axes[0]
    sim = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    theory = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert min(line.get_zorder() for line in theory) > max(line.get_zorder() for line in sim)
    assert theory[0].get_color() == plots.theory_colour(sim[0].get_color())
    texts = _legend_texts(fig)
    assert texts[:2] == ["simulation", "theory"]
    assert "λ = −2 and λ = 2 (coincide)" in texts and "λ = 0" in texts
    assert "diverged (non-finite)" in texts and _marks(fig, "diverged", [ax]) == [2.0]  # its last finite loss
    assert [a.get_xlabel() for a in fig.axes[:2]] == ["t = step · lr"] * 2
    assert fig.axes[1].get_ylabel() == "kernel distance S(t)"


def test_a_large_sweep_gets_a_colour_bar_and_a_line_naming_the_coinciding_curves():
    fig = plots.curves(_long_frame(lams=tuple(float(v) for v in range(-8, 9)), seeds=(0,)), hue="lam")
    texts = _legend_texts(fig)
    assert texts[:2] == ["simulation", "theory"] and not any(t.startswith("λ = ") for t in texts)
    title = _legends(fig)[0].get_title().get_text()
    assert "coincide" in title and "|λ| = 8 values from 1 to 8" in title


def test_every_png_gets_a_pdf_beside_it_at_200_dpi(tmp_path):
    path = plots.save(plots.sweep(_sweep_table(), "lam", ["plateau_time"]), tmp_path / "sweep.png")
    from PIL import Image

    with Image.open(path) as image:
        dpi = image.info["dpi"]
    assert path.suffix == ".png" and round(dpi[0]) >= 200
    assert (tmp_path / "sweep.pdf").read_bytes()[:5] == b"%PDF-"
    again = plots.save(plots.sweep(_sweep_table(), "lam", ["plateau_time"]), tmp_path / "again.png")
    assert (tmp_path / "sweep.pdf").read_bytes() == again.with_suffix(".pdf").read_bytes()  # no creation date


@pytest.mark.slow
def test_a_suites_figures_have_proxies_labels_and_markers(tmp_path, monkeypatch):
    """The reversal suite's declared figures, on a tiny real run plus one failed unit in its suite.csv."""
    from test_suites_reversal import TINY, run

    from lazyrich.suites import reversal
    from lazyrich.suites.common import load_frames, ok_rows

    table = run(tmp_path, "reversal", TINY)
    failed = pd.DataFrame([{"lam": 4.0, "seed": 0, "unit": "gone", "status": "failed", "error": "x"}])
    pd.concat([table, failed], ignore_index=True).to_csv(tmp_path / "suite.csv", index=False)
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, path, *a, **k: drawn.setdefault(path.name, fig) and path)
    for figure in reversal.SUITE.figures:
        figure(ok_rows(table), load_frames(tmp_path, table), tmp_path)
    curves, sweep = drawn["curves.png"], drawn["sweep.png"]
    for fig in (curves, sweep):
        assert _legend_texts(fig)[:2] == ["simulation", "theory"]
        assert not any("lam" in ax.get_xlabel() or "_" in ax.get_ylabel() for ax in fig.axes)
    assert "λ = −2 and λ = 2 (coincide)" in _legend_texts(curves)  # ±λ reverse alike
    assert _marks(sweep, "missing")[:1] == [0.0]  # λ = 0 never reverses: marked, not dropped
    assert 4.0 in _marks(sweep, "failed") and "run failed (no result)" in _legend_texts(sweep)
    assert sweep.axes[0].get_xlabel() == "λ" and "time to reverse" in sweep.axes[0].get_ylabel()
