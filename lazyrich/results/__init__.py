"""Results: one shape for the simulation and every theory (:class:`Curves`), the measures taken from it, the tidy
tables of a batch, reading run and sweep folders back (verified), comparing folders, and the offline report.

- :mod:`~lazyrich.results.curves`: :class:`Curves` from a trajectory, a prediction, a table or a folder;
- :mod:`~lazyrich.results.measures`: batched measures over curves, the same function for both sources;
- :mod:`~lazyrich.results.tables`: the long table and the per-network summary;
- :mod:`~lazyrich.results.io`: :func:`load`, :func:`load_summary`, :func:`load_curves`, :func:`load_matrices`,
  each verified;
- :mod:`~lazyrich.results.names`: metric column names, old and new;
- :mod:`~lazyrich.results.notes`: a unit's theory notes (which theory ran);
- :mod:`~lazyrich.results.compare`: side-by-side tables and overlays of several folders;
- :mod:`~lazyrich.results.report`: one self-contained HTML report of a folder, and its ``--check``.
"""

from lazyrich.results.curves import Curves, from_frame, predicted, simulated
from lazyrich.results.io import ResultsWarning, load, load_curves, load_matrices, load_summary
from lazyrich.results.tables import AGREEMENT_RTOL, max_rel_error, summarise, summary_of, to_frame

__all__ = [
    "AGREEMENT_RTOL",
    "Curves",
    "ResultsWarning",
    "from_frame",
    "load",
    "load_curves",
    "load_matrices",
    "load_summary",
    "max_rel_error",
    "predicted",
    "simulated",
    "summarise",
    "summary_of",
    "to_frame",
]
