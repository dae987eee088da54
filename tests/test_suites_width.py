"""The width suite, tiny: wide i.i.d. nets against theory wide, the error falling with N_h and the law holding."""

import math

from hydra import compose, initialize_config_dir

from lazyrich.config.compose import conf_dir
from lazyrich.suites import run_suites

TINY = [
    "suite.width.widths=[32,1024]",
    "suite.width.c_sums=[0.2,4.0]",
    "suite.width.seeds=[0]",
    "suite.width.t_max=3",
    "suite.width.n_log=16",
    "suite.width.n_matrix=16",
    "suite.width.task={name:random_regression,n_in:4,n_out:4,seed:1,whiten:true}",
]


def test_width_table_the_law_and_the_theory_auto_picks(tmp_path, capsys):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("bench", overrides=["suite=width", "logger=none", "progress=false", *TINY])
    table = run_suites(cfg, tmp_path)["width"]
    assert (table["status"] == "ok").all() and len(table) == 4
    assert {"n_hidden", "c_sum", "product_error", "theory_product_error", "kernel_distance_final",
            "theory_kernel_distance_final", "wide_accepted", "theory"} <= set(table.columns)
    wide = table[table["n_hidden"] == 1024]
    narrow = table[table["n_hidden"] == 32]
    # 4→4 needs N_h ≥ 4·(0.35/0.05)² = 196 for the default check: auto gives the narrow nets to ode.
    assert wide["wide_accepted"].all() and set(wide["theory"]) == {"wide"}
    assert not narrow["wide_accepted"].any() and set(narrow["theory"]) == {"ode"}
    assert (wide["product_error"] <= wide["product_error_bound"]).all()
    # The error falls like N_h^(−1/2): ×32 in width, ×√32 ≈ 5.7 in error (one seed: a factor 2 either way).
    for c_sum in (0.2, 4.0):
        ratio = (narrow.set_index("c_sum")["product_error"][c_sum] / wide.set_index("c_sum")["product_error"][c_sum])
        assert math.sqrt(32) / 2 < ratio < 2 * math.sqrt(32), (c_sum, ratio)
    out = capsys.readouterr().out
    assert "(as docs/theory.md §12 predicts)" in out
    for name in ("suite.csv", "summary.md", "width_error.png", "width_scale.png"):
        assert (tmp_path / name).exists(), name
