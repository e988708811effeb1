"""Parquet feature store: one row per window under DATA_DIR/features/symbol=SYM/date=YYYY-MM-DD/, written atomically."""

from __future__ import annotations

import contextlib
import datetime
import functools
import operator
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from core.features import WindowFeatures, vwap_float
from core.schema import FEATURE_SCHEMA, FILE_SCHEMA, NULLABLE_COLUMNS, STORED_SCHEMA, Unit, feature_fields
from core.store_health import StoreHealth, StoreStalled, unwritable
from storage.quarantine import features_root, quarantine_unreadable

if TYPE_CHECKING:  # the compiled kernels behind it are not loaded by readers of the store (`flowbot flow`)
    from engine.analysis.window_batch import WindowBatch

DAY_MS = 86_400_000
TIMESTAMP = pa.timestamp("ms", tz="UTC")
# The symbol column of what read() returns: the files do not hold it (it is their symbol= folder).
SYMBOL_TYPE = pa.dictionary(pa.int32(), pa.string())
_ARROW_TYPES = {Unit.SYMBOL: SYMBOL_TYPE, Unit.TIME: TIMESTAMP, Unit.PRICE: pa.float64(), Unit.QUOTE: pa.float64(),
                Unit.COUNT: pa.int64(), Unit.FLAG: pa.bool_(), Unit.RATIO: pa.float64()}
_DTYPES = {Unit.TIME: np.int64, Unit.PRICE: np.float64, Unit.QUOTE: np.float64, Unit.COUNT: np.int64,
           Unit.FLAG: np.bool_, Unit.RATIO: np.float64}  # of the WindowFeatures fields, before scaling
TIME_COLUMNS = feature_fields(Unit.TIME)
# What read() returns: core/schema.py's columns in their order, the revision last (it lets a later correction of a
# window replace the earlier row for readers); the files hold the same without the symbol (PARQUET_SCHEMA).
SCHEMA = pa.schema([(column.name, _ARROW_TYPES[column.unit]) for column in STORED_SCHEMA])
PARQUET_SCHEMA = pa.schema([(column.name, _ARROW_TYPES[column.unit]) for column in FILE_SCHEMA])
_DATASET_SCHEMA = PARQUET_SCHEMA.append(pa.field("date", pa.string()))  # files of older stores also hold a symbol
_PARTITIONING = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
_SCAN_COLUMNS = [*PARQUET_SCHEMA.names, "__filename"]

_SYMBOL = re.compile(r"[^\W_][\w-]*")  # letters of any script: Binance lists 币安人生USDT
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_TEMP_PREFIX = ".part-"  # pyarrow datasets skip names starting with "." (and "_"): readers never see a temp file
_STALE_TEMP_SECONDS = 3600.0  # compact deletes temp files older than this (left by a crash mid-write)
_READ_ATTEMPTS = 5  # a compaction may delete a file between a reader's listing and its read: list again
HEALTH_NAME = "feature store"
MAX_PENDING_ROWS = 500_000  # windows kept in memory while writes fail (~110 MB; 2 symbols of 5 s windows: 14 days)


class _PartNames:
    """Unique file names that sort in write order within a process: part-<unix ms>-<seq in that ms>-<random>."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = 0
        self._seq = 0

    def next(self) -> str:
        """A new final file name (the ms never goes back, even when the wall clock does)."""
        with self._lock:
            ms = max(time.time_ns() // 1_000_000, self._ms)
            self._seq = self._seq + 1 if ms == self._ms else 0
            self._ms = ms
            return f"part-{ms:013d}-{self._seq:06d}-{uuid.uuid4().hex[:8]}.parquet"


_NAMES = _PartNames()


class FeatureStore:
    """Buffers window features (one writer thread) as hive-partitioned Parquet; reads one row per window."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        flush_interval: float = 5.0,
        max_buffered_rows: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        write_behind: bool = False,
        health: StoreHealth | None = None,
        max_pending_rows: int = MAX_PENDING_ROWS,
    ) -> None:
        """write_behind: flushes on add are written by a thread while adding goes on (one write in flight at most).
        A write that fails keeps its rows for the next flush and is reported to `health`; adding never raises for
        it, until more than max_pending_rows wait: then StoreStalled."""
        if max_buffered_rows < 1 or max_pending_rows < max_buffered_rows:
            raise ValueError("max_buffered_rows must be at least 1 and max_pending_rows at least max_buffered_rows")
        self.root = Path(data_dir) / "features"
        self._flush_interval = flush_interval
        self._max_buffered_rows = max_buffered_rows
        self._max_pending_rows = max_pending_rows
        self.health = health or StoreHealth()
        self.write_error: str | None = None  # why the last write failed, until one works again
        self._clock = clock
        self._last_flush = clock()
        self._rows: list[WindowFeatures] = []  # added one by one, not yet turned into columns
        self._revisions: list[int] = []
        self._pieces: list[dict[str, np.ndarray]] = []  # buffered columns, in add order
        self._buffered = 0
        self._checked_symbols: set[str] = set()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-store") if write_behind else None
        self._in_flight: tuple[Future[int], list[dict[str, np.ndarray]]] | None = None

    def add(self, features: WindowFeatures, revision: int = 0) -> None:
        """Buffer a row; flush when the buffer is full or flush_interval has passed since the last flush."""
        self._check(features.symbol)
        self._rows.append(features)
        self._revisions.append(revision)
        self._buffered += 1
        self._maybe_flush()
        self._check_bound()

    def add_batch(self, batch: WindowBatch) -> None:
        """Buffer a batch of new windows (revision 0), as add() does row by row."""
        self._check(batch.symbol)
        self._seal()
        self._pieces.append(batch.parquet_columns() | {"revision": np.zeros(len(batch), dtype=np.int64)})
        self._buffered += len(batch)
        self._maybe_flush()
        self._check_bound()

    def flush(self) -> int:
        """Write the buffer, one new file per (symbol, date), after any write in flight; returns rows written (one
        per window of the buffer and of that write)."""
        written = self._finish_write()
        pieces = self._take_buffer()
        if not pieces:
            return written
        try:
            written += self._write(pieces)
        except BaseException as exc:
            self._keep(pieces)
            self._failed(exc)
            raise
        self._written()
        return written

    @property
    def pending_rows(self) -> int:
        """Rows not yet written (buffered, or in a write in flight)."""
        in_flight = sum(len(piece["revision"]) for piece in self._in_flight[1]) if self._in_flight else 0
        return self._buffered + in_flight

    def _failed(self, exc: BaseException) -> None:
        self.write_error = unwritable(f"cannot write {self.root}", exc)
        self.health.failed(HEALTH_NAME, self.write_error, self.pending_rows)

    def _written(self) -> None:
        """A write worked: it held every row kept from failed ones (a flush takes the whole buffer)."""
        if self.write_error is not None:
            self.write_error = None
            self.health.recovered(HEALTH_NAME)

    def _check_bound(self) -> None:
        """Writes failed for so long that the rows kept reached their bound: StoreStalled (a clear stop)."""
        if self.write_error is not None and self.pending_rows > self._max_pending_rows:
            reason = (f"{self.pending_rows:,} windows could not be written ({self.write_error}); "
                      f"more than {self._max_pending_rows:,} are not kept in memory")
            self.health.stall(reason)
            raise StoreStalled(reason)

    def flush_behind(self) -> None:
        """flush(), by the writer thread when there is one; while its write before is still going (a file and fsyncs
        per symbol take a while with hundreds of symbols), the rows stay buffered for the next call: never a wait."""
        if self._writer is None:
            self.flush()
        elif self._in_flight is None or self._in_flight[0].done():
            self._write_behind(self._writer)

    def _take_buffer(self) -> list[dict[str, np.ndarray]]:
        """The buffered pieces, handed over to a write (which gives them back with _keep if it fails)."""
        self._last_flush = self._clock()
        self._seal()
        pieces, self._pieces, self._buffered = self._pieces, [], 0
        return pieces

    def _keep(self, pieces: list[dict[str, np.ndarray]]) -> None:
        """Put the pieces of a failed write back before the buffer: the next flush retries them, in add order (the
        files a failed write did put in place come again, the same windows with the same values, harmless)."""
        self._pieces = pieces + self._pieces
        self._buffered += sum(len(piece["revision"]) for piece in pieces)

    def _write(self, pieces: list[dict[str, np.ndarray]]) -> int:
        """Write pieces as one new file per (symbol, date); returns rows written."""
        table, symbols, codes, days = _buffer_table(pieces)
        starts = np.flatnonzero(np.r_[True, (codes[1:] != codes[:-1]) | (days[1:] != days[:-1])])
        for start, end in zip(starts.tolist(), [*starts[1:].tolist(), len(table)], strict=True):
            folder = self._symbol_dir(symbols[codes[start]]) / f"date={_day_iso(int(days[start]))}"
            _write_atomic(table.slice(start, end - start).drop_columns("symbol"), folder, _NAMES.next())
        return len(table)

    def _write_behind(self, writer: ThreadPoolExecutor) -> None:
        """Hand the buffer to the writer thread, once the write before it is done."""
        self._finish_write()
        pieces = self._take_buffer()
        if pieces:
            self._in_flight = writer.submit(self._write, pieces), pieces

    def _finish_write(self) -> int:
        """Wait for the write in flight, if any; its rows written (if it failed, its pieces are buffered again)."""
        if self._in_flight is None:
            return 0
        (future, pieces), self._in_flight = self._in_flight, None
        try:
            written = future.result()
        except BaseException as exc:
            self._keep(pieces)
            self._failed(exc)
            raise
        self._written()
        return written

    def _check(self, symbol: str) -> None:
        """Reject a bad symbol here, not in a flush that would then fail forever."""
        if symbol not in self._checked_symbols:
            self._symbol_dir(symbol)
            self._checked_symbols.add(symbol)

    def _maybe_flush(self) -> None:
        """Flush when due; a failed write keeps its rows (and is reported): the next due flush retries it."""
        if self._buffered >= self._max_buffered_rows or self._clock() - self._last_flush >= self._flush_interval:
            if self.write_error is not None and self._clock() - self._last_flush < self._flush_interval:
                return  # failing: retry once per flush_interval, not on every add of a full buffer
            with contextlib.suppress(Exception):  # reported by _failed; the rows are kept
                if self._writer is None:
                    self.flush()
                else:
                    self._write_behind(self._writer)

    def _seal(self) -> None:
        """Turn the rows added one by one into a piece of columns (keeping the add order)."""
        if self._rows:
            self._pieces.append(_row_columns(self._rows, self._revisions))
            self._rows, self._revisions = [], []

    def close(self) -> None:
        """Flush what is buffered (and stop the writer thread)."""
        try:
            self.flush()
        finally:
            if self._writer is not None:
                self._writer.shutdown()

    def read(self, symbol: str, start_ms: int | None = None, end_ms: int | None = None,
             columns: list[str] | None = None) -> pa.Table:
        """Stored rows with start_ms <= window_start < end_ms, one per window (newest revision), by window_start;
        only `columns` (of SCHEMA, without the symbol) when given."""
        folder = self._symbol_dir(symbol)
        if not folder.is_dir():
            return (SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])).empty_table()
        conditions = []
        if start_ms is not None:
            conditions += [ds.field("window_start") >= pa.scalar(start_ms, TIMESTAMP),
                           ds.field("date") >= _day_iso(start_ms // DAY_MS)]
        if end_ms is not None:
            conditions += [ds.field("window_start") < pa.scalar(end_ms, TIMESTAMP),
                           ds.field("date") <= _day_iso((end_ms - 1) // DAY_MS)]
        where = functools.reduce(operator.and_, conditions) if conditions else None
        if columns is not None:
            scanned = list(dict.fromkeys(["window_start", "revision", *columns, "__filename"]))
            return _newest_per_window(_scan(folder, columns=scanned, filter=where), columns)
        table = _newest_per_window(_scan(folder, columns=_SCAN_COLUMNS, filter=where))
        codes = pa.array(np.zeros(len(table), dtype=np.int32))
        return table.add_column(0, SCHEMA.field("symbol"), pa.DictionaryArray.from_arrays(codes, [symbol]))

    def latest_window_end(self, symbol: str) -> int | None:
        """The window_end (ms) of the newest stored window of the symbol, or None."""
        folder = self._symbol_dir(symbol)
        if not folder.is_dir():
            return None
        for day in sorted(_subdirs(folder, "date="), reverse=True):
            ends = _scan(folder / f"date={day}", columns=["window_end"])["window_end"]
            if len(ends):
                return pc.max(ends).cast(pa.int64()).as_py()
        return None

    def symbols(self) -> list[str]:
        """Symbols with any stored rows, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            symbol for symbol in _subdirs(self.root, "symbol=")
            if any(_data_files(self.root / f"symbol={symbol}" / f"date={day}")
                   for day in _subdirs(self.root / f"symbol={symbol}", "date="))
        )

    def compact(self, symbol: str, date: str) -> None:
        """Rewrite one partition as a single file with one row per window; drop stale temp files of crashed writes."""
        if not _DATE.fullmatch(date):
            raise ValueError(f"not a YYYY-MM-DD date: {date!r}")
        folder = self._symbol_dir(symbol) / f"date={date}"
        if not folder.is_dir():
            return
        _remove_stale_temps(folder)
        table = _scan(folder, columns=_SCAN_COLUMNS)
        inputs = set(table["__filename"].unique().to_pylist())
        if len(inputs) < 2:
            return
        # Named just after the newest input, so a file a writer adds meanwhile still counts as newer than this one.
        _write_atomic(_newest_per_window(table), folder, f"{_stem(max(inputs, key=_stem))}-c.parquet")
        for path in inputs:
            Path(path).unlink(missing_ok=True)

    def _symbol_dir(self, symbol: str) -> Path:
        """The symbol's partition folder (the symbol is checked: it becomes a path)."""
        if not _SYMBOL.fullmatch(symbol):
            raise ValueError(f"not a symbol: {symbol!r}")
        return self.root / f"symbol={symbol}"


def _row_columns(rows: list[WindowFeatures], revisions: list[int]) -> dict[str, np.ndarray]:
    """Rows as Parquet columns, amounts converted exactly as WindowFeatures.row() does."""

    def values(name: str, dtype: type) -> np.ndarray:
        return np.fromiter(map(attrgetter(name), rows), dtype=dtype, count=len(rows))

    columns = {
        "symbol": np.array(list(map(attrgetter("symbol"), rows)), dtype=object),
        "vwap": np.array([vwap_float(f.quote_volume, f.volume) for f in rows], dtype=np.float64),
        "revision": np.array(revisions, dtype=np.int64),
    }
    for column in NULLABLE_COLUMNS:  # float64 with NaN for null until the table is made
        columns[column.name] = np.array([np.nan if v is None else v / float(column.unit.scale)
                                         for v in map(attrgetter(column.name), rows)], dtype=np.float64)
    for column in FEATURE_SCHEMA:
        if column.unit is not Unit.SYMBOL and not column.derived and not column.nullable:
            data, scale = values(column.name, _DTYPES[column.unit]), column.unit.scale
            columns[column.name] = data / float(scale) if scale != 1 else data
    return columns


def _buffer_table(pieces: list[dict[str, np.ndarray]]) -> tuple[pa.Table, list[str], np.ndarray, np.ndarray]:
    """The buffer as one table sorted by (symbol, window_start), one row per window, with per-row symbol codes/days.

    Of rows for one window the highest revision wins, and for equal revisions the one added last.
    """
    merged = {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}
    symbols = pc.dictionary_encode(pa.array(merged.pop("symbol"), pa.string()))
    codes = symbols.indices.to_numpy()
    window_start, revision = merged["window_start"], merged["revision"]
    order = np.lexsort((revision, window_start, codes))  # stable: equal keys stay in add order
    sorted_codes, sorted_starts = codes[order], window_start[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (sorted_codes[1:] != sorted_codes[:-1]) | (sorted_starts[1:] != sorted_starts[:-1])
    keep = order[last]
    kept_codes, kept_starts = codes[keep], window_start[keep]
    columns = {name: values[keep] for name, values in merged.items()}
    columns["symbol"] = pa.DictionaryArray.from_arrays(pa.array(kept_codes, pa.int32()), symbols.dictionary)
    columns |= {name: pa.array(columns[name], TIMESTAMP) for name in TIME_COLUMNS}
    columns |= {c.name: _nullable(columns[c.name], _ARROW_TYPES[c.unit]) for c in NULLABLE_COLUMNS}
    table = pa.Table.from_pydict(columns, schema=SCHEMA)
    return table, symbols.dictionary.to_pylist(), kept_codes, kept_starts // DAY_MS


def _nullable(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    """A futures column (float64, NaN for null) as its stored type: counts and times via exact int64."""
    floats = pa.array(values, pa.float64(), from_pandas=True)
    return floats if arrow_type == pa.float64() else floats.cast(pa.int64()).cast(arrow_type)


def _newest_per_window(table: pa.Table, columns: list[str] = PARQUET_SCHEMA.names) -> pa.Table:
    """One row per window_start (highest revision, then newest file), sorted by window_start, in `columns`."""
    starts = table["window_start"].cast(pa.int64()).to_numpy()
    order = np.lexsort((_file_ranks(table["__filename"]), table["revision"].to_numpy(), starts))
    sorted_starts = starts[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sorted_starts[1:] != sorted_starts[:-1]
    return table.select(columns).take(order[last])


def _file_ranks(paths: pa.ChunkedArray) -> np.ndarray:
    """Each row's file rank in write order (file names sort by write time, see _PartNames)."""
    encoded = paths.combine_chunks().dictionary_encode()
    stems = [_stem(path) for path in encoded.dictionary.to_pylist()]
    ranks = np.empty(len(stems), dtype=np.int64)
    ranks[sorted(range(len(stems)), key=stems.__getitem__)] = np.arange(len(stems))
    return ranks[encoded.indices.to_numpy(zero_copy_only=False)]


def _stem(path: str) -> str:
    """A data file's name without folder and .parquet (the write-order key)."""
    return os.path.basename(path).removesuffix(".parquet")


def _scan(folder: Path, **scan: object) -> pa.Table:
    """Dataset.to_table over the complete files under folder; listed again when one vanished mid-read."""
    for _ in range(_READ_ATTEMPTS - 1):
        with contextlib.suppress(FileNotFoundError):
            return _readable_table(folder, scan)
    return _readable_table(folder, scan)


def _readable_table(folder: Path, scan: dict[str, object]) -> pa.Table:
    """Dataset.to_table over folder; a torn or corrupt file is moved aside (storage/quarantine.py), the rest read."""
    while True:
        dataset = _dataset(folder)
        try:
            return dataset.to_table(**scan)
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError):
            if not quarantine_unreadable(dataset.files, features_root(folder)):
                raise


def _dataset(folder: Path) -> ds.Dataset:
    """The hive-partitioned (date=) Parquet dataset under folder; files starting with '.' or '_' are skipped."""
    return ds.dataset(folder, schema=_DATASET_SCHEMA, format="parquet", partitioning=_PARTITIONING)


def _write_atomic(table: pa.Table, folder: Path, name: str) -> None:
    """Write table as folder/name via a hidden temp file, fsync and rename: the name appears complete or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f"{_TEMP_PREFIX}{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(table, temp, use_dictionary=False)  # dictionaries of float columns: 5x slower
        _fsync(temp)
        os.replace(temp, folder / name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync(folder)


def _fsync(path: Path) -> None:
    """Flush a file's or folder's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(folder: Path) -> None:
    """Delete this store's temp files older than _STALE_TEMP_SECONDS (a live writer's temp file is younger)."""
    cutoff = time.time() - _STALE_TEMP_SECONDS
    for entry in os.scandir(folder):
        if entry.name.startswith(_TEMP_PREFIX) and entry.name.endswith(".tmp") and entry.stat().st_mtime < cutoff:
            Path(entry.path).unlink(missing_ok=True)


def _subdirs(folder: Path, prefix: str) -> list[str]:
    """The values of folder's hive subfolders prefix<value>."""
    return [entry.name.removeprefix(prefix) for entry in os.scandir(folder)
            if entry.name.startswith(prefix) and entry.is_dir()]


def _data_files(folder: Path) -> list[str]:
    """Names of the complete data files in a partition folder (what readers see)."""
    return [entry.name for entry in os.scandir(folder)
            if entry.name.endswith(".parquet") and not entry.name.startswith((".", "_"))]


def _day_iso(day: int) -> str:
    """YYYY-MM-DD of a UTC day number (days since 1970-01-01)."""
    return datetime.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
