"""One name per metric in every table lazyrich writes (run summaries, suite tables, compare, W&B summaries).

The scheme is ``<metric>_<qualifier>``: the per-step metric's own name, as in the ``sim/<metric>`` and
``theory/<metric>`` columns of the metrics table, then what is taken of it (``loss_final``,
``kernel_distance_final``); a time until an event is ``time_to_<event>`` (``time_to_1pct``: the loss at 1% of
its initial value; ``time_to_reverse``); a theory's value of the same measure carries the prefix ``theory_``
(``theory_loss_final``). Tables written before this scheme used ``final_<metric>`` and ``t_to_1pct``;
:func:`canonical` maps those names when an old folder is read, so old and new folders load and compare alike.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["LEGACY_NAMES", "canonical"]

LEGACY_NAMES: dict[str, str] = {
    "final_loss": "loss_final",
    "final_kernel_distance": "kernel_distance_final",
    "theory_final_loss": "theory_loss_final",
    "learn_final_loss": "learn_loss_final",
    "t_to_1pct": "time_to_1pct",
}
"""Old column name → its name today."""


def canonical(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every old metric column renamed to today's name (a column already present wins)."""
    rename = {old: new for old, new in LEGACY_NAMES.items() if old in table.columns and new not in table.columns}
    return table.rename(columns=rename) if rename else table
