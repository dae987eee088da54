"""The transfer and rotation suites at a tiny size: generalisation follows W1ᵀW1 / W2W2ᵀ; the rotated target
is learned in the theory's time, and a bad angle fails alone."""

import numpy as np
from hydra import compose, initialize_config_dir

from lazyrich.config.compose import conf_dir
from lazyrich.suites import run_suites
from lazyrich.suites.runner import FAILED
from lazyrich.suites.transfer import tree_distance

TINY = [
    "suite.transfer.lams=[-2,2]",
    "suite.transfer.seeds=[0]",
    "suite.transfer.n_log=41",
    "suite.transfer.eta=0.1",
    "suite.transfer.task.depth=2",
    "suite.transfer.t_max=25",
    "suite.transfer.feature=n1",
]
ROTATION = [
    "suite.rotation.lams=[-2,2]",
    "suite.rotation.seeds=[0]",
    "suite.rotation.n_log=41",
    "suite.rotation.eta=0.1",
    "suite.rotation.task.n_in=3",
    "suite.rotation.task.n_out=3",
    "suite.rotation.t_phase=6",
    "suite.rotation.angles=[0.5,2.0]",
]  # 2.0 rad > π/2: rotated_pair refuses it, in its unit only


def run(tmp_path, name, overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("bench", overrides=[f"suite={name}", "logger=none", "progress=false", *overrides])
    return run_suites(cfg, tmp_path)[name]


def test_tree_distance():
    assert [tree_distance(0, j, 2) for j in range(8)] == [0, 1, 2, 2, 3, 3, 3, 3]
    assert tree_distance(3, 5, 3) == 1 and tree_distance(4, 8, 3) == 2 and tree_distance(0, 26, 3) == 3


def test_transfer_generalisation_matches_theory(tmp_path):
    table = run(tmp_path, "transfer", TINY)
    assert {"part", "lam", "seed", "status"} <= set(table.columns) and (table["status"] == "ok").all()
    assert list(table["part"]) == ["new_feature"] * 2 + ["new_item"] * 2  # sorted by the declared part order
    ok = table.set_index(["part", "lam"])
    # New feature: measured scores are the W1ᵀW1 prediction (the theory tracks the trained W1 to ~1e-3).
    feat = ok.loc["new_feature"]
    assert (feat["gen_err"] < 1e-2).all()
    np.testing.assert_allclose(feat["gen_d1"], feat["theory_gen_d1"], atol=1e-2)
    # docs/theory.md §10: positive λ keeps W1ᵀW1 structured, so the new feature spreads more than at negative λ.
    assert feat.loc[2.0, "gen_d1"] > feat.loc[-2.0, "gen_d1"] + 0.1
    item = ok.loc["new_item"]
    assert (item["gen_err"] < 1e-2).all() and item["gen_ancestor"].notna().all()
    summary = (tmp_path / "summary.md").read_text()
    assert "new_feature.png" in summary and "`gen_d1` (part = new_feature) rises" in summary
    assert "NOT as predicted" not in summary.split("### Outcome")[1].split("`gen_ancestor`")[0]


def test_rotation_matches_theory_and_a_failing_config_is_recorded(tmp_path):
    table = run(tmp_path, "rotation", ROTATION)
    failed = table[table["status"] == "failed"]
    assert len(failed) == 2 and (failed["angle"] == 2.0).all() and failed["error"].str.contains("angle").all()
    for unit in failed["unit"]:
        assert "angle=2.0" in (tmp_path / "runs" / unit / FAILED).read_text()
    rot = table[table["status"] == "ok"]
    assert len(rot) == 2 and rot["time_to_learn"].notna().all()
    np.testing.assert_allclose(rot["time_to_learn"], rot["theory_time_to_learn"], rtol=0.1)
    summary = (tmp_path / "summary.md").read_text()
    assert "Failed configurations" in summary and "rotated.png" in summary
    assert "`time_to_learn` against `theory_time_to_learn`" in summary
