"""One result shape for the simulation and every theory: named curves and matrices of a batch of networks.

The trainer's :class:`~lazyrich.train.Trajectory` and a theory's :class:`~lazyrich.theory.Prediction` record
the same quantities in two layouts. :class:`Curves` is the one both are read through, so a measure
(:mod:`lazyrich.results.measures`) is written once, batched over the B networks, and applied to either source:

- ``t`` (B, T): time since the start of the phase, t = step·lr;
- ``curves``: name → (B, T), under the trainer's names (``loss``, ``test_loss`` with a held-out set,
  ``kernel_distance``, ``ntk_rel_change``, ``sval_k``, and for the simulation also ``lam_hat_l``,
  ``balance_dev_l``, ``norm_Wl``, …);
- ``matrices``: name → (B, Tm, …) (``product``, ``w1tw1``, ``wwt_out``) at the log points ``matrix_index`` (Tm,);
- ``meta``: one row per network (lam, seed, lr, …), or None.

Values keep their device and dtype (a theory's are float64; a simulation's are the trainer's dtype).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

__all__ = ["SIM", "Curves", "from_frame", "predicted", "simulated"]

SIM = "sim"
"""The ``source`` of a simulation's curves (a theory's curves carry the theory's name)."""

PREDICTED_MATRICES = ("product", "w1tw1", "wwt_out")


@dataclass(frozen=True)
class Curves:
    """What one source (the simulation, or a theory) says about a batch of B networks over one phase."""

    source: str
    t: Tensor
    curves: Mapping[str, Tensor]
    matrices: Mapping[str, Tensor] = field(default_factory=dict)
    matrix_index: Tensor | None = None
    meta: pd.DataFrame | None = None

    @property
    def batch(self) -> int:
        """The number of networks B."""
        return self.t.shape[0]

    def __getitem__(self, name: str) -> Tensor:
        """The curve (B, T) or matrix (B, Tm, …) called ``name``; one line listing the names when absent."""
        if name in self.curves:
            return self.curves[name]
        if name in self.matrices:
            return self.matrices[name]
        known = ", ".join([*self.curves, *self.matrices])
        raise KeyError(f"{self.source} has no curve or matrix {name!r}; it has: {known}.")

    def __contains__(self, name: object) -> bool:
        return name in self.curves or name in self.matrices

    @property
    def matrix_t(self) -> Tensor:
        """The times (B, Tm) of the matrices."""
        return self.t if self.matrix_index is None else self.t[:, self.matrix_index.to(self.t.device)]

    def select(self, rows: Tensor | Sequence[int]) -> Curves:
        """The networks ``rows`` only, in that order."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        meta = None if self.meta is None else self.meta.iloc[rows.numpy()].reset_index(drop=True)
        return Curves(self.source, self.t[rows.to(self.t.device)],
                      {k: v[rows.to(v.device)] for k, v in self.curves.items()},
                      {k: v[rows.to(v.device)] for k, v in self.matrices.items()}, self.matrix_index, meta)


def simulated(trajectory: Any, meta: pd.DataFrame | None = None) -> Curves:
    """The :class:`Curves` of a trainer :class:`~lazyrich.train.Trajectory` (no copies); its meta gains each
    network's ``status`` ("ok" or "diverged")."""
    batch = trajectory.t.shape[0]
    meta = _checked_meta(meta, batch)
    meta = (pd.DataFrame(index=range(batch)) if meta is None else meta).assign(status=list(trajectory.status))
    return Curves(SIM, trajectory.t, dict(trajectory.scalars), dict(trajectory.matrices), trajectory.matrix_index,
                  meta)


def predicted(prediction: Any, meta: pd.DataFrame | None = None, matrix_index: Tensor | None = None) -> Curves:
    """The :class:`Curves` of a theory :class:`~lazyrich.theory.Prediction`, under the trainer's curve names.

    ``matrix_index`` (Tm,) keeps the matrices at those log points only (the simulation's, to match it); None
    keeps every point.
    """
    curves = {"loss": prediction.loss, "kernel_distance": prediction.kernel_distance,
              "ntk_rel_change": prediction.ntk_rel_change}
    if getattr(prediction, "test_loss", None) is not None:
        curves["test_loss"] = prediction.test_loss
    for k, s in enumerate(prediction.svals.unbind(-1), start=1):
        curves[f"sval_{k}"] = s
    matrices = {}
    for name in PREDICTED_MATRICES:
        value = getattr(prediction, name)
        matrices[name] = value if matrix_index is None else value[:, matrix_index.to(value.device)]
    return Curves(prediction.theory, prediction.t, curves, matrices, matrix_index,
                  _checked_meta(meta, prediction.t.shape[0]))


def _checked_meta(meta: pd.DataFrame | None, batch: int) -> pd.DataFrame | None:
    if meta is None:
        return None
    meta = pd.DataFrame(meta).reset_index(drop=True)
    if len(meta) != batch:
        raise ValueError(f"meta has {len(meta)} rows for {batch} networks.")
    return meta


def from_frame(frame: pd.DataFrame, prefix: str = SIM, meta_columns: Sequence[str] = ()) -> Curves:
    """The :class:`Curves` (no matrices) of the ``<prefix>/<name>`` columns of a long table: one run phase, one row
    per network per log point, every network logged at the same number of points; ``meta_columns`` (those
    present) are read from each network's first row. Rows may come in any order.
    """
    order = np.lexsort((frame["t"].to_numpy(), frame["net"].to_numpy()))
    part = frame.iloc[order]
    counts = part["net"].value_counts(sort=False)
    if counts.nunique() != 1:
        raise ValueError(f"the table's networks have {counts.min()} to {counts.max()} log points; curves need "
                         f"one run phase with the same t grid for every network (filter by `phase` first).")
    shape = (len(counts), int(counts.iloc[0]))
    names = [c.split("/", 1)[1] for c in part.columns if c.startswith(prefix + "/")]
    curves = {n: torch.tensor(part[f"{prefix}/{n}"].to_numpy(dtype=np.float64).reshape(shape)) for n in names}
    first = part.iloc[:: shape[1]]
    meta = first[[c for c in meta_columns if c in part]].reset_index(drop=True)
    t = torch.tensor(part["t"].to_numpy(dtype=np.float64).reshape(shape))
    return Curves(prefix, t, curves, meta=meta)
