"""Run-folder storage that scales: per-step metrics in Parquet, matrices in a chunked store, both written
chunk by chunk while a sweep runs, and read back lazily (only the columns, rows and networks asked for).

Layout of every unit folder: a run folder, written chunk by chunk by :func:`lazyrich.experiment.run_experiment`,
and a suite's ``runs/<id>/``, written as one chunk by :func:`lazyrich.store.write_run`:

- ``metrics.parquet``: the long table (:func:`lazyrich.results.to_frame`, plus a suite's columns), one Parquet
  row group per batch chunk. Float metric columns use the BYTE_STREAM_SPLIT encoding (it groups the bytes of each
  float, so the exponent bytes of a smooth curve compress) and zstd; the repeated per-network columns (lam, seed,
  status, …) are dictionary-encoded. Row-group statistics let a filter such as ``lam == 0.5`` skip whole chunks.
- ``matrices-<start>-<stop>.npz``: for the networks ``start … stop − 1``, every matrix array of the run (batch
  first, e.g. ``sim_product`` (b, Tm, No, Ni), ``t`` (b, Tm)), stored uncompressed. The matrices are dense,
  fixed-shape float64 arrays: npy keeps them bit-exact, writes at disk speed, and reading a selection of
  networks opens only the chunks that hold them (one array at a time: ``np.load`` of an npz is lazy per key).
  The chunks sit beside the other files, so the unit's manifest (:mod:`lazyrich.store.integrity`) covers them.

Nothing writes ``metrics.csv`` or ``matrices.npz`` any more; the readers here still read them, so that folders
written by older versions (run folders and suite units alike) load as before.

The readers here (:func:`read_metrics`, :func:`read_matrices`) do not verify a folder: they serve the writer of a
run (which reads back what it is writing) and the verified readers of :mod:`lazyrich.results.io`
(:func:`lazyrich.results.load`, :func:`lazyrich.results.load_matrices`), which are the ones to read results with.

A full disk (ENOSPC) while a writer here writes a file leaves nothing half-written behind: the writer removes the
file it was writing (a truncated chunk, the ``.partial`` metrics file), closes the Parquet writer, and raises
:class:`NoSpaceLeft`, one line naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MATRICES_PREFIX", "METRICS_PARQUET", "Filter", "MatrixStore", "MetricsWriter", "NoSpaceLeft", "RunWriter",
           "full_disk_guard", "metrics_files", "read_matrices", "read_metrics"]

METRICS_PARQUET = "metrics.parquet"
METRICS_CSV = "metrics.csv"
MATRICES_PREFIX = "matrices-"
LEGACY_MATRICES = "matrices.npz"
COMPRESSION = "zstd"

Filter = tuple[str, str, Any]
"""A row filter (column, op, value), op one of ``== != < <= > >= in not in``; a list of them is ANDed."""

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge, "in": lambda s, v: s.isin(list(v)), "not in": lambda s, v: ~s.isin(list(v)),
}


class NoSpaceLeft(OSError):
    """The disk filled up (ENOSPC, or a quota: EDQUOT) while a run folder was written; the message names the
    mount point, the file and the fix, on one line."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        super().__init__(errno.ENOSPC, f"no space left on {_mount_point(path)} writing {path}: free space, then "
                                       f"re-run into the same folder", str(path))

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self):  # pickled across worker processes by its one argument
        return type(self), (self.filename,)


def _mount_point(path: Path) -> Path:
    """The mount point of the file system that holds ``path`` (the 'device' a full disk is)."""
    here = Path(os.path.abspath(path))
    while not os.path.ismount(here) and here != here.parent:
        here = here.parent
    return here


def _is_full(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def full_disk_guard(path: str | Path, *leftovers: str | Path) -> Iterator[None]:
    """Write ``path`` inside this context: on a full disk (ENOSPC, EDQUOT) remove what the write left behind
    (``leftovers``, default ``path`` itself: a truncated file) and raise :class:`NoSpaceLeft` naming ``path``."""
    try:
        yield
    except NoSpaceLeft:
        raise
    except OSError as err:
        if not _is_full(err):
            raise
        for leftover in leftovers or (path,):
            Path(leftover).unlink(missing_ok=True)
        raise NoSpaceLeft(path) from None


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:  # a dependency of lazyrich: only a broken install gets here
        raise ImportError("lazyrich stores metrics in Parquet and needs pyarrow: pip install pyarrow.") from err
    return pa, pq


class MetricsWriter:
    """Appends long-table chunks (DataFrames with the same columns) to one Parquet file, one row group each.

    The file is written to ``<name>.partial`` and renamed on :meth:`close`, so a killed run never leaves a
    complete-looking metrics file. Use as a context manager, or call :meth:`close`. On a full disk the file is
    abandoned (:meth:`abandon`) and :class:`NoSpaceLeft` raised.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._writer = None
        self._schema = None
        self._abandoned = False
        self.rows = 0

    def append(self, frame: pd.DataFrame) -> None:
        """Write ``frame`` as the next row group; its columns must match the first chunk's."""
        if self._abandoned:
            raise RuntimeError(f"{self.path} was abandoned (the disk filled up); re-run into the same folder.")
        pa, _ = _pyarrow()
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._schema is None:
            self._schema = table.schema
        elif table.schema.names != self._schema.names:
            raise ValueError(f"metrics chunk has columns {table.schema.names}, the file has "
                             f"{self._schema.names}: every chunk of a run must have the same columns.")
        else:
            table = table.cast(self._schema)
        with self._abandoned_on_full_disk():
            if self._writer is None:
                self._open(self._schema)
            self._writer.write_table(table)
        self.rows += len(frame)

    def _open(self, schema) -> None:
        pa, pq = _pyarrow()
        floats = [f.name for f in schema if pa.types.is_floating(f.type) and "/" in f.name]
        others = [f.name for f in schema if f.name not in floats]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._partial, schema, compression=COMPRESSION, use_dictionary=others,
                                        use_byte_stream_split=floats)

    @contextlib.contextmanager
    def _abandoned_on_full_disk(self) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            if isinstance(err, NoSpaceLeft) or not _is_full(err):
                raise
            self.abandon()
            raise NoSpaceLeft(self.path) from None

    def abandon(self) -> None:
        """Close the Parquet writer whatever it says and remove the ``.partial`` file: nothing half-written is
        left, and nothing is printed at exit (pyarrow's writer would retry its close then, and fail again)."""
        writer, self._writer, self._abandoned = self._writer, None, True
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.close()
            writer.is_open = False
            if writer.file_handle is not None:
                with contextlib.suppress(OSError):
                    writer.file_handle.close()
        self._partial.unlink(missing_ok=True)

    def close(self) -> Path | None:
        """Finish the file and move it into place; returns its path (None if nothing was written)."""
        if self._writer is None:
            return None
        with self._abandoned_on_full_disk():
            self._writer.close()
        self._writer = None
        self._partial.replace(self.path)
        return self.path

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # the file will never be finished: leave no half of it
            self.abandon()


class MatrixStore:
    """The chunked matrix store of one run folder: ``matrices-<start>-<stop>.npz`` per batch chunk."""

    def __init__(self, run_dir: str | Path) -> None:
        self.root = Path(run_dir)

    def write(self, start: int, stop: int, arrays: Mapping[str, np.ndarray],
              nets: np.ndarray | None = None) -> Path:
        """Store the matrix arrays (batch first, one batch size) of the chunk of networks start … stop − 1:
        of every one of them, or of the networks ``nets`` only (their global indices, in the arrays' order)."""
        nets = np.arange(start, stop) if nets is None else np.asarray(nets, dtype=np.int64)
        sizes = {name: np.shape(a)[0] for name, a in arrays.items()}
        if set(sizes.values()) != {len(nets)}:
            raise ValueError(f"matrix arrays of one chunk must share their batch size, one per network of "
                             f"{len(nets)}, got {sizes}.")
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{MATRICES_PREFIX}{start:09d}-{stop:09d}.npz"
        with full_disk_guard(path):  # a truncated chunk is removed
            np.savez(path, net=nets, **{k: np.asarray(v) for k, v in arrays.items()})
        return path

    def chunks(self) -> list[tuple[int, int, Path]]:
        """(start, stop, file) of every stored chunk, in network order."""
        found = []
        for path in self.root.glob(f"{MATRICES_PREFIX}*.npz"):
            match = re.fullmatch(re.escape(MATRICES_PREFIX) + r"(\d+)-(\d+)\.npz", path.name)
            if match:
                found.append((int(match[1]), int(match[2]), path))
        return sorted(found)


class RunWriter:
    """Writes a run folder chunk by chunk: each :meth:`append` adds a chunk's rows to ``metrics.parquet`` and
    its matrices to the chunked store. Matrix chunks left by an earlier run in the same folder are removed."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.metrics = MetricsWriter(self.run_dir / METRICS_PARQUET)
        self.matrices = MatrixStore(self.run_dir)
        for _, _, stale in self.matrices.chunks():
            stale.unlink()

    def append(self, start: int, stop: int, frame: pd.DataFrame, arrays: Mapping[str, np.ndarray],
               nets: np.ndarray | None = None) -> None:
        """The long-table rows and the matrix arrays (batch first; of the networks ``nets`` only, if given) of
        the chunk of networks ``start`` … ``stop − 1``. On a full disk, the metrics file and this chunk are
        abandoned (nothing half-written is left) and :class:`NoSpaceLeft` names the file."""
        try:
            self.metrics.append(frame)
            if arrays:
                self.matrices.write(start, stop, arrays, nets)
        except NoSpaceLeft:
            self.metrics.abandon()
            raise

    def close(self) -> list[Path]:
        """Finish the metrics file; returns the files written."""
        written = [self.metrics.close(), *(path for _, _, path in self.matrices.chunks())]
        return [p for p in written if p is not None]


def read_matrices(run_dir: str | Path, names: Iterable[str] | None = None,
                  nets: Sequence[int] | np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The matrix arrays of a run folder as they are on disk, **not verified**: for writers and verified readers.
    To read results, use :func:`lazyrich.results.load_matrices`, which verifies the unit and then calls this.

    Batch first: only ``names`` (default all) and, if given, only the networks ``nets`` (global indices, the
    ``net`` column of the metrics), reading only the chunks that hold them. ``net`` (always returned) says which
    network each row is: a run keeps the matrices of the first ``trainer.matrix_seeds`` seeds of each
    configuration, so a network asked for may have none. Reads the chunked store, or ``matrices.npz`` of folders
    written by older versions.
    """
    run_dir = Path(run_dir)
    store = MatrixStore(run_dir)
    chunks = store.chunks()
    if not chunks:
        legacy = run_dir / LEGACY_MATRICES
        if not legacy.is_file():
            raise FileNotFoundError(f"no matrices under {run_dir}: expected {MATRICES_PREFIX}*.npz or "
                                    f"{LEGACY_MATRICES}.")
        chunks = [(0, -1, legacy)]
    wanted = None if nets is None else np.unique(np.asarray(nets, dtype=np.int64))
    parts: dict[str, list[np.ndarray]] = {}
    for start, stop, path in chunks:
        if wanted is not None and stop >= 0 and not ((wanted >= start) & (wanted < stop)).any():
            continue  # a chunk that holds none of them is not opened
        with np.load(path) as npz:
            held = npz["net"] if "net" in npz.files else np.arange(start, start + len(npz[npz.files[0]]))
            rows = slice(None) if wanted is None else np.flatnonzero(np.isin(held, wanted))
            for key in [k for k in npz.files if names is None or k in names or k == "net"]:
                parts.setdefault(key, []).append(held[rows] if key == "net" else npz[key][rows])
    missing = set(names or ()) - set(parts)
    if missing and wanted is None:
        raise KeyError(f"no matrix named {sorted(missing)} under {run_dir}.")
    return {k: np.concatenate(v) if len(v) > 1 else v[0] for k, v in parts.items()}


def _check_columns(names: Sequence[str], available: Sequence[str], where: Path) -> None:
    unknown = [c for c in names if c not in available]
    if unknown:
        raise KeyError(f"{where} has no column(s) {unknown}; its columns are {list(available)}.")


_EXAMPLE = "e.g. [('lam', '==', 0.5), ('seed', 'in', [0, 1])]"
_HOLDS = {"number": "numbers", "text": "text", "bool": "True/False"}
_ONE = {"number": "a number", "text": "text", "bool": "True or False"}


def _as_filters(filters: Sequence[Filter] | None) -> list[Filter]:
    """``filters`` checked for their shape: each one line saying the fix (types are checked per file)."""
    if filters is None:
        return []
    if isinstance(filters, str | bytes) or (isinstance(filters, tuple) and filters and isinstance(filters[0], str)):
        raise ValueError(f"filters={filters!r}: pass a list of (column, op, value) tuples, {_EXAMPLE}.")
    return [_as_filter(f) for f in filters]


def _as_filter(f: Any) -> Filter:
    if not isinstance(f, tuple | list) or len(f) != 3:
        raise ValueError(f"filter {f!r} is not (column, op, value) with op in {sorted(_OPS)}, {_EXAMPLE}.")
    column, op, value = f
    if not isinstance(column, str):
        raise ValueError(f"filter {f!r}: the column is a name, e.g. 'lam'.")
    if not isinstance(op, str) or op not in _OPS:
        raise ValueError(f"filter {f!r} is not (column, op, value) with op in {sorted(_OPS)}, {_EXAMPLE}.")
    many = isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Series | pd.Index)
    if op in ("in", "not in") and not many:
        raise ValueError(f"filter {tuple(f)!r}: {op!r} takes a list of values, e.g. ({column!r}, {op!r}, "
                         f"[{value!r}]).")
    if op not in ("in", "not in") and (many or isinstance(value, Mapping)):
        raise ValueError(f"filter {tuple(f)!r}: {op!r} compares with one value; for several use "
                         f"({column!r}, 'in', {list(value)!r}).")
    return column, "==" if op == "=" else op, list(value) if many else value


def _kind_of_value(value: Any) -> str | None:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    return "text" if isinstance(value, str) else None


def _check_types(path: Path, filters: list[Filter], kinds: Mapping[str, str | None]) -> None:
    """Each filter's value(s) of the kind its column holds (``kinds``: number, text, bool, or None: unchecked)."""
    for column, op, value in filters:
        want = kinds.get(column)
        for one in value if op in ("in", "not in") else [value]:
            if want is not None and _kind_of_value(one) != want:
                got = _ONE.get(_kind_of_value(one) or "", repr(one))
                raise ValueError(f"filter ({column!r}, {op!r}, {value!r}): {column} holds {_HOLDS[want]} in {path}, "
                                 f"the value is {got}; pass {_ONE[want]}, e.g. {_example(column, want)}.")


def _example(column: str, kind: str) -> str:
    value = {"number": 0.5, "text": "ok", "bool": True}[kind]
    return f"({column!r}, '==', {value!r})"


def _arrow_kind(field_type) -> str | None:
    pa, _ = _pyarrow()
    if pa.types.is_dictionary(field_type):
        field_type = field_type.value_type
    if pa.types.is_boolean(field_type):
        return "bool"
    if pa.types.is_integer(field_type) or pa.types.is_floating(field_type):
        return "number"
    return "text" if pa.types.is_string(field_type) or pa.types.is_large_string(field_type) else None


def _pandas_kind(series: pd.Series) -> str | None:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    return "text" if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series) else None


def _not_a_table(path: Path, err: Exception) -> ValueError:
    return ValueError(f"{path}: not a readable metrics table ({type(err).__name__}: {err}); re-run the unit that "
                      f"wrote it.")


def _require_t(path: Path, available: Sequence[str]) -> None:
    if "t" not in available:
        raise ValueError(f"{path}: not a lazyrich metrics table (no column t); re-run the unit that wrote it.")


def _read_parquet(path: Path, columns: Sequence[str] | None, filters: list[Filter]) -> pd.DataFrame:
    pa, pq = _pyarrow()
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise _not_a_table(path, err) from None
    available = schema.names
    _require_t(path, available)
    _check_columns([*(columns or []), *(f[0] for f in filters)], available, path)
    _check_types(path, filters, {f.name: _arrow_kind(f.type) for f in schema})
    table = pq.read_table(path, columns=list(columns) if columns is not None else None, filters=filters or None)
    return table.to_pandas()


def _read_csv(path: Path, columns: Sequence[str] | None, filters: list[Filter]) -> pd.DataFrame:
    try:
        available = list(pd.read_csv(path, nrows=0).columns)
        _require_t(path, available)
        needed = None if columns is None else list(dict.fromkeys([*columns, *(f[0] for f in filters)]))
        _check_columns([*(columns or []), *(f[0] for f in filters)], available, path)
        frame = pd.read_csv(path, usecols=needed)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise _not_a_table(path, err) from None
    _check_types(path, filters, {c: _pandas_kind(frame[c]) for c, _, _ in filters})
    for column, op, value in filters:
        frame = frame[_OPS[op](frame[column], value)]
    return frame.reset_index(drop=True) if columns is None else frame[list(columns)].reset_index(drop=True)


def metrics_files(path: str | Path) -> list[Path]:
    """The metrics file of every run under ``path`` (a run folder, a sweep folder or a file): Parquet where a
    run has it, else its CSV."""
    path = Path(path)
    if path.is_file():
        return [path]
    runs = {f.parent: f for f in sorted(path.rglob(METRICS_CSV))}
    runs.update({f.parent: f for f in sorted(path.rglob(METRICS_PARQUET))})
    return [runs[d] for d in sorted(runs)]


def read_metrics(path: str | Path, columns: Sequence[str] | None = None, filters: Sequence[Filter] | None = None,
                 select: Callable[[list[Path], Path], list[tuple[Path, str]]] | None = None) -> pd.DataFrame:
    """The long metrics table of one run, or of every run under a sweep folder (adds a ``run`` column).

    ``columns`` keeps only those columns; ``filters`` keeps only the rows that satisfy every (column, op,
    value), e.g. ``[("lam", "==", 0.5), ("t", ">=", 1.0)]``, op one of ``== != < <= > >=`` with one value of the
    column's kind (a number, text or a bool), or ``in`` / ``not in`` with a list of them; a filter of another
    shape raises a one-line ValueError saying the fix. From Parquet, only the selected columns are decoded and row
    groups whose statistics exclude the filter are skipped. ``select`` picks the files to read, of a folder or
    the one file passed (e.g. only verified units'), each with its ``run`` value (default: its folder's path under
    ``path``). Without ``select`` nothing is verified: this reader serves writers and the verified
    :func:`lazyrich.results.load`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {METRICS_CSV} at {path}: it does not exist; pass a run or sweep folder, or a "
                                f"file.")
    checked = _as_filters(filters)
    files = metrics_files(path)
    named = select(files, path) if select is not None and files else [(f, _run_name(f, path)) for f in files]
    if not named:
        raise FileNotFoundError(f"no {METRICS_CSV} or {METRICS_PARQUET} under {path}: pass a run folder or a "
                                f"sweep folder that holds runs.")
    frames = []
    for f, name in named:
        reader = _read_parquet if f.suffix == ".parquet" else _read_csv
        frame = reader(f, columns, checked)
        frame.insert(0, "run", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _run_name(f: Path, path: Path) -> str:
    """The ``run`` value of the metrics file ``f`` read under ``path``: its folder's path below it, or the
    folder's name (``path`` itself, or the file)."""
    rel = f.parent.relative_to(path) if path.is_dir() else Path(".")
    return str(rel) if str(rel) != "." else f.parent.name
