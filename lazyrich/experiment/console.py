"""What a finished run prints: the theory verdict and one table row per configuration (seeds averaged)."""

from __future__ import annotations

import pandas as pd

from lazyrich.experiment.batch import option_columns

__all__ = ["config_table", "print_run"]

TABLE_COLUMNS = ["loss_final", "kernel_distance_final", "time_to_1pct", "theory_loss_final", "theory_max_rel_err",
                 "theory_expected_err"]


def config_table(summary: pd.DataFrame, keys: tuple[str, ...] = ("lam", "scale", "lr")) -> pd.DataFrame:
    """Summary rows averaged over seeds, one per configuration (``keys`` and the training options the run sets),
    with a count of diverged networks."""
    keys = [k for k in (*keys, *option_columns(summary)) if k in summary and summary[k].notna().any()]
    cols = [c for c in TABLE_COLUMNS if c in summary]
    if not keys:
        return summary[cols]
    table = summary.groupby(keys, sort=True)[cols].mean()
    table["seeds"] = summary.groupby(keys, sort=True).size()
    table["diverged"] = summary.assign(d=summary["status"] == "diverged").groupby(keys, sort=True)["d"].sum()
    if "theory_saddle" in summary:
        table["theory_saddle"] = summary.groupby(keys, sort=True)["theory_saddle"].sum()
    return table


def print_run(result) -> None:
    """Print the theory notes, the per-configuration table and where the files went."""
    for note in dict.fromkeys(result.theory_notes):
        print(f"[theory] {note}")
    saddle = result.summary.get("theory_saddle")
    if saddle is not None and saddle.fillna(False).astype(bool).any():
        nets = result.summary.loc[saddle.fillna(False).astype(bool), "net"].tolist()
        print(f"[theory] network(s) {nets} converge to a saddle: a mode whose product starts on the wrong side of "
              f"zero at λ = 0 (B singular) is never learned by gradient flow, so the loss stalls above its floor "
              f"(theory_limit_loss). Start task-aligned (init=aligned), from another seed, or at λ ≠ 0; GD's "
              f"rounding may still escape it late (theory=escape predicts when).")
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(config_table(result.summary).to_string())
    if result.run_dir is not None:
        files = "metrics.parquet, summary.csv, matrices-*.npz" + (", curves.png" if result.figures else "")
        print(f"\nresults: {result.run_dir}  ({files})")
