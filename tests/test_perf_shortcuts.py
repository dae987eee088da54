"""The batched shortcuts of the big-sweep pipeline against straightforward references: the two-layer kernel
change of the theories, the vectorised per-network summary, and the mean-and-band curves of large sweeps."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import balance_terms, batch_of, rel_err
from matplotlib import colors as mcolors

from lazyrich import metrics, plots, results


def two_layer_weights(batch: int, n_in: int, n_hidden: int, n_out: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(batch, n_hidden, n_in, generator=gen, dtype=torch.float64)
    w2 = torch.randn(batch, n_out, n_hidden, generator=gen, dtype=torch.float64)
    return w1, w2


@pytest.mark.parametrize("whitened", [True, False])
def test_two_layer_kernel_change_equals_the_full_ntk(whitened):
    n_in, n_hidden, n_out, p = 4, 3, 5, 6
    gen = torch.Generator().manual_seed(7)
    x = (2.0 * torch.eye(n_in, dtype=torch.float64) if whitened
         else torch.randn(p, n_in, generator=gen, dtype=torch.float64))
    w1_0, w2_0 = two_layer_weights(3, n_in, n_hidden, n_out, seed=1)
    d1, d2 = two_layer_weights(3, n_in, n_hidden, n_out, seed=2)
    scales = torch.tensor([1e-6, 1e-2, 1.0], dtype=torch.float64)[None, :, None, None]  # T = 3: lazy → rich
    w1_t, w2_t = w1_0[:, None] + scales * d1[:, None], w2_0[:, None] + scales * d2[:, None]  # (B, T=3, …)
    dist, rel = metrics.two_layer_kernel_change((w2_0 @ w2_0.mT)[:, None], (w1_0.mT @ w1_0)[:, None],
                                                w2_t @ w2_t.mT, w1_t.mT @ w1_t, x.mT @ x)
    k0 = metrics.linear_ntk([w1_0[:, None], w2_0[:, None]], x)  # the (No·P)² kernel itself
    kt = metrics.linear_ntk([w1_t, w2_t], x)
    ref_rel = torch.linalg.matrix_norm(kt - k0) / torch.linalg.matrix_norm(k0)
    # 1 − cos of the full kernels loses ~1e-16 absolute to cancellation (hence atol on this dimensionless
    # figure, ~50 ulps of 1); the trace forms do not. ‖Kt − K0‖ of the full kernels cancels ~1e-16·‖K‖ per
    # entry, ~1e-10 of the 1e-6 move: rtol 1e-9 on each (dimensionless, > 0) relative change allows it ×10.
    torch.testing.assert_close(dist, metrics.kernel_distance(k0, kt).clamp_min(0), rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(rel, ref_rel, rtol=1e-9, atol=0)
    general = metrics.kernel_change(metrics.ntk_blocks([w1_0[:, None], w2_0[:, None]]),
                                    metrics.ntk_blocks([w1_t, w2_t]), x.mT @ x)
    # And the general trace form, also free of cancellation: elementwise relative even for the ~1e-12
    # distances of the lazy step, 1e-12 (~5000 ulps) for a few dozen flops in another order.
    torch.testing.assert_close(dist, general[0], rtol=1e-12, atol=1e-30)
    torch.testing.assert_close(rel, general[1], rtol=1e-12, atol=0)
    assert float(dist.amax()) > 1e-3 and float(dist[:, 0].amax()) < 1e-10  # moves with the weights


def test_two_layer_kernel_change_follows_the_zero_kernel_convention():
    """A zero init: the fast form the theories use gives the trace form's defined values, not 0/0."""
    x_gram = 5.0 * torch.eye(3, dtype=torch.float64)
    zero_out, zero_in = torch.zeros(2, 1, 2, 2, dtype=torch.float64), torch.zeros(2, 1, 3, 3, dtype=torch.float64)
    grown_out, grown_in = zero_out.clone(), zero_in.clone()
    grown_out[1], grown_in[1] = torch.eye(2), torch.eye(3)  # network 1 moves off zero, network 0 stays
    dist, rel = metrics.two_layer_kernel_change(zero_out, zero_in, grown_out, grown_in, x_gram)
    assert dist.flatten().tolist() == [0.0, 1.0] and rel.flatten().tolist() == [0.0, math.inf]


def _crossing(t: np.ndarray, loss: np.ndarray, fraction: float = 0.01) -> float:
    """First t at which ``loss`` reaches ``fraction`` × loss[0], interpolated linearly; NaN if never."""
    below = np.flatnonzero(loss <= fraction * loss[0])
    if not len(below):
        return math.nan
    k, level = below[0], fraction * loss[0]
    return t[k - 1] + (loss[k - 1] - level) / (loss[k - 1] - loss[k]) * (t[k] - t[k - 1]) if k else t[0]


def per_network_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """The summary written out as one loop over networks: the reference for the vectorised one."""
    rows = []
    for net, g in frame.groupby("net"):
        g = g.sort_values("t", kind="stable")
        loss, th, t = g["sim/loss"].to_numpy(), g["theory/loss"].to_numpy(), g["t"].to_numpy()
        crossing = _crossing(t, loss)
        row = {"net": net, "lam": g["lam"].iloc[0], "status": g["status"].iloc[0], "loss_final": loss[-1],
               "kernel_distance_final": g["sim/kernel_distance"].iloc[-1], "time_to_1pct": crossing,
               "time_to_1pct_resolved": not crossing <= t[1]}
        if not np.isnan(th).all():
            ok = g["status"].iloc[0] == "ok"  # a diverged network agrees with no theory
            err = results.max_rel_error(loss, th) if ok else math.inf  # the project's one agreement measure
            row.update(theory_loss_final=th[-1], theory_time_to_1pct=_crossing(t, th), theory_max_rel_err=err,
                       theory_agrees=err <= 0.05)
        rows.append(row)
    return pd.DataFrame(rows)


def test_vectorised_summary_equals_the_per_network_loop():
    rng = np.random.default_rng(0)
    parts = []
    for net in range(9):
        t = np.linspace(0.0, 3.0, 12)
        loss = rng.uniform(1, 2) * np.exp(-rng.uniform(0.3, 3.0) * t)
        theory = loss * (1 + rng.normal(0, 0.04, t.size))
        if net == 2:
            loss[5:] = np.nan  # diverged, frozen as NaN
        if net == 4:
            theory[:] = np.nan  # no theory for this one
        parts.append(pd.DataFrame({"net": net, "lam": float(net % 3), "t": t, "sim/loss": loss,
                                   "sim/kernel_distance": rng.random(t.size), "theory/loss": theory,
                                   "status": "diverged" if net == 2 else "ok"}))
    frame = pd.concat(parts).sample(frac=1.0, random_state=1)  # rows in any order
    got, want = results.summarise(frame, meta_columns=["lam"]), per_network_summary(frame)
    assert got["time_to_1pct"].notna().sum() >= 3 and got["time_to_1pct"].isna().any()
    assert got["theory_agrees"].isna().sum() == 1 and set(got["theory_agrees"].dropna()) == {True, False}
    # pandas adds atol 1e-8: with rtol 1e-15 that is ~1e-8 absolute on these O(1) times and losses (the same
    # formulas in another order differ by ulps; a wrong crossing or error by far more).
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-15)


def sweep_frame(n_lam: int, n_seeds: int) -> pd.DataFrame:
    t = np.linspace(0.0, 1.0, 7)
    rows = [pd.DataFrame({"net": i * n_seeds + s, "lam": float(lam), "seed": s, "t": t,
                          "sim/loss": np.exp(-(1 + lam + 0.1 * s) * t), "theory/loss": np.exp(-(1 + lam) * t)})
            for i, lam in enumerate(range(n_lam)) for s in range(n_seeds)]
    return pd.concat(rows, ignore_index=True)


def test_curves_draw_configuration_means_with_seed_bands():
    fig = plots.curves(sweep_frame(3, 4), ["loss"], hue="lam")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 6  # mean + theory per λ
    (bands,) = ax.collections  # one band per λ, drawn as one collection
    assert len(bands.get_paths()) == 3 and bands.get_zorder() < min(line.get_zorder() for line in ax.get_lines())
    low, high = sweep_frame(3, 4).query("lam == 0").groupby("t")["sim/loss"].quantile([0.1, 0.9]).unstack().T.values
    band = bands.get_paths()[0].vertices[:, 1]
    assert np.isclose(band, low[3]).any() and np.isclose(band, high[3]).any()  # the 10th–90th percentiles
    np.testing.assert_allclose(bands.get_facecolors()[0][:3], mcolors.to_rgb(ax.get_lines()[0].get_color()))
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), sweep_frame(3, 4).query("lam == 0")
                               .groupby("t")["sim/loss"].mean())
    single = plots.curves(sweep_frame(3, 1), ["loss"], hue="lam")
    assert len(single.axes[0].collections) == 0  # one network per λ: nothing to shade


def test_a_large_sweep_gets_a_colour_bar_not_a_legend():
    fig = plots.curves(sweep_frame(plots.MAX_LEGEND + 4, 2), ["loss"], hue="lam")
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "λ"  # the colour bar
    styles_only = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert styles_only == ["simulation", "theory"]  # no entry per λ
    small = plots.curves(sweep_frame(3, 2), ["loss"], hue="lam")
    assert [t.get_text() for t in small.axes[0].get_legend().get_texts()][2:] == ["λ = 0", "λ = 1", "λ = 2"]


@pytest.mark.slow
def test_exact_theory_blocks_networks_and_times_without_changing_a_digit():
    from lazyrich.init import lambda_balanced
    from lazyrich.tasks import hierarchy
    from lazyrich.theory import exact

    task, batch = hierarchy(), 64
    w1, w2 = lambda_balanced(8, 8, 8, torch.linspace(-4, 4, batch).tolist(), scale=0.1,
                             generator=torch.Generator().manual_seed(0))
    u, s, v = task.svd
    c = task.whitening_scale
    st = exact._setup(w1, w2, (u, s / c, v), exact._balance_or_raise(w1, w2, exact.BALANCE_RTOL))
    t = c * torch.linspace(0.0, 10.0, 101, dtype=torch.float64).expand(batch, -1)
    blocked = exact._evaluate(st, t)  # 64 nets × 101 times: several blocks of networks
    # One block: the same per-network arithmetic, so rounding differences at most, 1e-14 of each Gram's scale.
    for part, whole in zip(blocked, exact._evaluate_chunk(st, t), strict=True):
        assert part.is_contiguous()
        assert rel_err(part, whole, batch_dims=2) <= 1e-14
    product = blocked[1]  # W2W1 learned part of the task: the pair compared is not a trivially equal one
    assert float((product[:, -1] - product[:, 0]).abs().amax()) > 0.2


@pytest.mark.parametrize(("n_out", "hidden", "lams"), [(8, None, [-3.0, 0.0, 0.5, 2.0]), (3, 4, [-3.0, -0.5, 0.0])])
@pytest.mark.slow
def test_the_batch_init_gives_each_network_its_own_lambda_balanced_weights(n_out, hidden, lams):
    from lazyrich import init as inits


    scales, lrs, seeds = [0.1, 1.0], [0.01, 0.02], [0, 5, 9]
    cfg = {"init": {"kind": "balanced", "lam": lams, "scale": scales}, "model": {"depth": 2, "hidden": hidden},
           "trainer": {"lr": lrs}, "seed": seeds}
    (w1, w2), meta = batch_of(cfg, 5, n_out, None, torch.device("cpu"))
    rows = list(itertools.product(lams, scales, lrs, seeds))
    assert len(meta) == len(rows) and meta[["lam", "scale", "lr", "seed"]].to_records(index=False).tolist() == rows
    for b, (lam, scale, _, seed) in enumerate(rows):  # the reference: one lambda_balanced call per network
        r1, r2 = inits.lambda_balanced(5, hidden or min(5, n_out), n_out, lam, scale=scale,
                                       generator=torch.Generator().manual_seed(seed))
        # The same draws and formulas, batched or not: ~4 ulps of each matrix's largest entry.
        assert rel_err(w1[b], r1) <= 1e-15 and rel_err(w2[b], r2) <= 1e-15
    # λ̂ is rounding of W2ᵀW2 − W1W1ᵀ: 1e-12 of the size of those terms (|λ| up to 3, scale² up to 1).
    assert rel_err(meta["lam_hat"], meta["lam"], scale=balance_terms([w1, w2])[:, 0], batch_dims=1) <= 1e-12


def test_a_seed_band_leaves_a_gap_where_its_quantiles_are_missing():
    from lazyrich.plots.tables import _band_polygons

    t = np.arange(7.0)
    low = np.array([0.0, 1.0, np.nan, 3.0, 4.0, 5.0, np.nan])
    polygons = _band_polygons(t, low, low + 1)
    assert [p[:, 0].tolist() for p in polygons] == [[0, 1, 1, 0], [3, 4, 5, 5, 4, 3]]
    assert polygons[1][:, 1].tolist() == [3, 4, 5, 6, 5, 4]
    assert _band_polygons(t, np.full(7, np.nan), np.zeros(7)) == []
