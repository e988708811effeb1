"""The signal store: every emitted signal in SQLite (table `signals`), idempotent by signal id.

The caller's connection waits at most BUSY_TIMEOUT_S for SQLite's write lock (it runs on the event loop). A write
that cannot be made now (the database locked by another process, read-only, or the disk full) is kept in a
backlog, in order, and written by a thread of its own as soon as it can; while a backlog exists every later write
joins it, so signals and their explanations land in the order they were made.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlite_utils
from sqlite_utils.db import Table

from core.events import Direction, Signal, SignalKind
from core.store_health import StoreHealth, StoreStalled, unwritable

log = logging.getLogger(__name__)

TABLE = "signals"
COLUMNS: dict[str, type] = {
    "id": str,
    "symbol": str,
    "kind": str,
    "direction": str,
    "severity": int,
    "window_start": int,
    "window_end": int,
    "evidence": str,
    "created_at": float,
    "explanation": str,
    "provider": str,
}
_IDS_PER_QUERY = 500  # well under SQLite's limit of bound parameters
_INSERT = (
    "INSERT OR IGNORE INTO signals (id, symbol, kind, direction, severity, window_start, window_end, evidence,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_EXPLAIN = "UPDATE signals SET explanation = ?, provider = ? WHERE id = ?"
INDEXES = (("symbol", "window_start"), ("kind", "window_start"), ("window_start",))
HEALTH_NAME = "signal table"
BUSY_TIMEOUT_S = 0.1  # the caller's (event loop's) longest wait for the write lock
RETRY_INTERVAL_S = 1.0  # the backlog writer's pause after a failed write
BACKLOG_WAIT_S = 5.0  # the backlog writer's wait for the write lock (its own thread: it may wait)
MAX_BACKLOG = 100_000  # writes kept while the database cannot take them (live: ~3 signals a minute)
_BACKLOG_CHUNK = 500
Write = tuple[str, tuple[object, ...]]  # a statement and its parameters
_T = TypeVar("_T")


class SignalStore:
    """Saves, reads and annotates signals in the SQLite database at `path`."""

    def __init__(
        self, path: str | Path, *, durable: bool = True, health: StoreHealth | None = None,
        busy_timeout: float = BUSY_TIMEOUT_S, max_backlog: int = MAX_BACKLOG,
    ) -> None:
        """durable=False (a replay, which can be run again): commits are not synced to disk one by one."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(self.path)
        self.db.enable_wal()
        if not durable:
            self.db.execute("PRAGMA synchronous = NORMAL")  # WAL stays consistent; a crash may lose the last commits
        self._in_transaction = False
        self.migrate()
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")  # after the migration, which may wait
        self.health = health or StoreHealth()
        self._max_backlog = max_backlog
        self._backlog: deque[Write] = deque()
        self._backlog_lock = threading.Lock()
        self._backlog_writer: threading.Thread | None = None
        self._closing = threading.Event()
        self._uncommitted: list[Write] = []  # written in the open transaction, kept again if its commit fails

    def migrate(self) -> None:
        """Create the table, add any missing column and the indexes; safe to run on every start."""
        table = Table(self.db, TABLE)
        if not table.exists():
            table.create(COLUMNS, pk="id", not_null={"id", "symbol", "kind", "direction", "severity"})
        existing = table.columns_dict
        for name, kind in COLUMNS.items():
            if name not in existing:
                table.add_column(name, kind)
        for columns in INDEXES:
            table.create_index(columns, if_not_exists=True)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group many saves into one commit (a replay batch); saves outside one commit each."""
        if self._in_transaction:
            yield
            return
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._roll_back()
            raise
        finally:
            self._in_transaction = False
        self.commit()

    def commit(self) -> None:
        """Commit what the open transaction saved so far; it goes on (a replay commits every few batches). A commit
        that fails (the disk full) is rolled back and its writes join the backlog."""
        try:
            self.db.conn.commit()
        except sqlite3.Error as exc:
            self._failed(exc)
            self._roll_back()
        self._uncommitted = []

    def _roll_back(self) -> None:
        """Undo the open transaction; what it wrote joins the backlog, ahead of what was kept meanwhile."""
        self.db.conn.rollback()
        self._keep(self._uncommitted, ahead=True)
        self._uncommitted = []

    def save(self, signal: Signal) -> bool:
        """Insert the signal; False (and nothing written) if its id is already stored."""
        return self.save_many([signal])[0]

    def save_many(self, signals: Sequence[Signal]) -> list[bool]:
        """Insert the signals in one executemany; per signal, False (nothing written) if its id was already stored.
        When the database cannot take them now they are kept and written later, and all count as new."""
        if not signals:
            return []
        new = self._write_now([(_INSERT, _values(s)) for s in signals], lambda: self._insert_new(signals))
        return [True] * len(signals) if new is None else new

    def _write_now(self, writes: list[Write], write: Callable[[], _T]) -> _T | None:
        """`write()` (the same as `writes`) on this connection, unless a backlog exists or the database refuses it:
        then `writes` join the backlog and the answer is None."""
        with self._backlog_lock:
            behind = bool(self._backlog)
        if not behind:
            try:
                return write()
            except sqlite3.Error as exc:  # locked by another process, read-only, disk full
                self._failed(exc)
        self._keep(writes)
        return None

    def _insert_new(self, signals: Sequence[Signal]) -> list[bool]:
        """Insert the signals not stored yet; per signal, whether it was new."""
        ids = [s.id for s in signals]
        stored: set[str] = set()
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            query = f"SELECT id FROM signals WHERE id IN ({','.join('?' * len(chunk))})"
            stored.update(row[0] for row in self.db.execute(query, chunk))
        new = []
        for signal in signals:
            new.append(signal.id not in stored)
            stored.add(signal.id)
        rows = [_values(s) for s, is_new in zip(signals, new, strict=True) if is_new]
        if self._in_transaction:
            self.db.conn.executemany(_INSERT, rows)
            self._uncommitted += [(_INSERT, row) for row in rows]
        else:
            with self.db.conn:
                self.db.conn.executemany(_INSERT, rows)
        return new

    def _failed(self, exc: sqlite3.Error) -> None:
        self.health.failed(HEALTH_NAME, unwritable(f"cannot write {self.path}", exc), len(self._backlog))

    def _keep(self, writes: list[Write], *, ahead: bool = False) -> None:
        """Writes the database could not take: kept in order (ahead: before those kept already) for the backlog
        writer; beyond max_backlog, StoreStalled."""
        if not writes:
            return
        with self._backlog_lock:
            if len(self._backlog) + len(writes) > self._max_backlog:
                reason = (f"{len(self._backlog):,} signal writes could not be made "
                          f"({self._problem()}); no more are kept in memory")
                self.health.stall(reason)
                raise StoreStalled(reason)
            if ahead:
                self._backlog.extendleft(reversed(writes))
            else:
                self._backlog.extend(writes)
            if self._backlog_writer is None:
                self._backlog_writer = threading.Thread(target=self._write_backlog, name="signal-backlog",
                                                        daemon=True)
                self._backlog_writer.start()

    def _write_backlog(self) -> None:
        """The backlog writer's thread: write the backlog in order, retrying until it is empty (or the store closes
        and one last try failed)."""
        connection: sqlite3.Connection | None = None
        try:
            while True:
                with self._backlog_lock:
                    chunk = list(islice(self._backlog, _BACKLOG_CHUNK))
                    if not chunk:
                        self._backlog_writer = None
                        self.health.recovered(HEALTH_NAME)
                        return
                try:
                    connection = connection or sqlite3.connect(self.path, timeout=BACKLOG_WAIT_S)
                    with connection:
                        for statement, params in chunk:
                            connection.execute(statement, params)
                except sqlite3.Error as exc:
                    self._failed(exc)
                    if connection is not None:
                        connection.close()
                        connection = None
                    if self._closing.wait(RETRY_INTERVAL_S):
                        with self._backlog_lock:
                            self._backlog_writer = None
                        return
                    continue
                with self._backlog_lock:
                    for _ in chunk:
                        self._backlog.popleft()
        finally:
            if connection is not None:
                connection.close()

    def _problem(self) -> str:
        problem = self.health.problems().get(HEALTH_NAME)
        return problem.reason if problem is not None else "no error recorded"

    @property
    def backlog(self) -> int:
        """Writes kept until the database takes them."""
        return len(self._backlog)

    def recent(
        self,
        symbol: str | None = None,
        kind: str | None = None,
        min_severity: int = 1,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> list[Signal]:
        """Signals matching the filters (since_ms: window_start at or after it), newest window_start first."""
        where: list[str] = ["severity >= ?"]
        params: list[int | str] = [min_severity]
        if symbol is not None:
            where.append("symbol = ?")
            params.append(symbol)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if since_ms is not None:
            where.append("window_start >= ?")
            params.append(since_ms)
        rows = self.db.table(TABLE).rows_where(
            " AND ".join(where), params, order_by="window_start DESC, id", limit=limit
        )
        return [_signal(row) for row in rows]

    def get(self, signal_id: str) -> Signal | None:
        """The signal with this id, or None."""
        rows = list(self.db.table(TABLE).rows_where("id = ?", [signal_id], limit=1))
        return _signal(rows[0]) if rows else None

    def set_explanation(self, signal_id: str, text: str, provider: str) -> None:
        """Attach (or replace) the explanation of a stored signal and the provider that wrote it (kept and written
        later, after the signal, when the database cannot take it now)."""
        params = (text, provider, signal_id)

        def write() -> None:
            with self.db.conn:
                self.db.execute(_EXPLAIN, params)

        self._write_now([(_EXPLAIN, params)], write)

    def explanation(self, signal_id: str) -> tuple[str, str] | None:
        """The (explanation, provider) of a signal, or None if it has none or is not stored."""
        rows = list(self.db.table(TABLE).rows_where("id = ? AND explanation IS NOT NULL", [signal_id], limit=1))
        return (rows[0]["explanation"], rows[0]["provider"]) if rows else None

    def count(self) -> int:
        """How many signals are stored."""
        return self.db.table(TABLE).count

    def close(self) -> None:
        """Close the database connection, after the backlog writer's last try (what it could not write is logged)."""
        self._closing.set()
        writer = self._backlog_writer
        if writer is not None:
            writer.join(timeout=BACKLOG_WAIT_S + RETRY_INTERVAL_S + 1)
        if self._backlog:
            log.error("%d signal write(s) could not be made before stopping (%s)", len(self._backlog),
                      self._problem())
        self.db.close()


def _values(signal: Signal) -> tuple[object, ...]:
    """The signal's values in _INSERT's order."""
    return (
        signal.id, signal.symbol, signal.kind, signal.direction, signal.severity, signal.window_start,
        signal.window_end, orjson.dumps(signal.evidence).decode(), signal.created_at,
    )


def _signal(row: dict[str, Any]) -> Signal:
    """A stored row back as the Signal event."""
    return Signal(
        id=row["id"],
        symbol=row["symbol"],
        kind=SignalKind(row["kind"]),
        direction=Direction(row["direction"]),
        severity=row["severity"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        evidence=orjson.loads(row["evidence"]) if row["evidence"] else {},
        created_at=row["created_at"],
    )
