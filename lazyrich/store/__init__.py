"""The run folder on disk and its guards: the files of a unit (Parquet metrics, chunked matrices, summary,
config), the manifest that verifies them, the identity of the configuration a folder holds, the lock of its one
writer, and the watchdog that stops workers with their parent.

- :mod:`~lazyrich.store.storage`: Parquet metrics and chunked matrices, written chunk by chunk, read selectively
  and unverified (read results with :func:`lazyrich.results.load` and :func:`lazyrich.results.load_matrices`,
  which verify);
- :mod:`~lazyrich.store.run_folder`: a finished unit, a run folder or a suite unit (``DONE`` written last);
- :mod:`~lazyrich.store.shards`: a run folder split into shards, one unit made of parts;
- :mod:`~lazyrich.store.integrity`: ``MANIFEST.json`` and the verification of a unit;
- :mod:`~lazyrich.store.identity`: one configuration per folder;
- :mod:`~lazyrich.store.locking`: one writer per folder;
- :mod:`~lazyrich.store.watchdog`: sweep workers stop with the command that launched them.
"""

from lazyrich.store import identity, integrity, locking, shards, watchdog
from lazyrich.store.integrity import DONE, verify_unit
from lazyrich.store.run_folder import SUMMARY_FILE, THEORY_FILE, start_sharded, write_run, write_sharded
from lazyrich.store.storage import METRICS_PARQUET, NoSpaceLeft

__all__ = ["DONE", "METRICS_PARQUET", "SUMMARY_FILE", "THEORY_FILE", "NoSpaceLeft", "identity", "integrity",
           "locking", "shards", "start_sharded", "verify_unit", "watchdog", "write_run", "write_sharded"]
