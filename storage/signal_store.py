"""The signal store: every emitted signal in SQLite (table `signals`), idempotent by signal id."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
import sqlite_utils
from sqlite_utils.db import Table

from core.events import Direction, Signal, SignalKind

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
INDEXES = (("symbol", "window_start"), ("kind", "window_start"), ("window_start",))


class SignalStore:
    """Saves, reads and annotates signals in the SQLite database at `path`."""

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        """durable=False (a replay, which can be run again): commits are not synced to disk one by one."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(self.path)
        self.db.enable_wal()
        if not durable:
            self.db.execute("PRAGMA synchronous = NORMAL")  # WAL stays consistent; a crash may lose the last commits
        self._in_transaction = False
        self.migrate()

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
            with self.db.conn:
                yield
        finally:
            self._in_transaction = False

    def commit(self) -> None:
        """Commit what the open transaction saved so far; it goes on (a replay commits every few batches)."""
        self.db.conn.commit()

    def _writing(self) -> AbstractContextManager[object]:
        return nullcontext() if self._in_transaction else self.db.conn

    def save(self, signal: Signal) -> bool:
        """Insert the signal; False (and nothing written) if its id is already stored."""
        with self._writing():
            cursor = self.db.execute(_INSERT, _values(signal))
        return cursor.rowcount == 1

    def save_many(self, signals: Sequence[Signal]) -> list[bool]:
        """Insert the signals in one executemany; per signal, False (nothing written) if its id was already stored."""
        if not signals:
            return []
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
        with self._writing():
            self.db.conn.executemany(_INSERT, [_values(s) for s, is_new in zip(signals, new, strict=True) if is_new])
        return new

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
        """Attach (or replace) the explanation of a stored signal and the provider that wrote it."""
        with self.db.conn:
            self.db.execute(
                "UPDATE signals SET explanation = ?, provider = ? WHERE id = ?", [text, provider, signal_id]
            )

    def explanation(self, signal_id: str) -> tuple[str, str] | None:
        """The (explanation, provider) of a signal, or None if it has none or is not stored."""
        rows = list(self.db.table(TABLE).rows_where("id = ? AND explanation IS NOT NULL", [signal_id], limit=1))
        return (rows[0]["explanation"], rows[0]["provider"]) if rows else None

    def count(self) -> int:
        """How many signals are stored."""
        return self.db.table(TABLE).count

    def close(self) -> None:
        """Close the database connection."""
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
