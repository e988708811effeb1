"""Each kind's track record per symbol: how prices moved after its past signals, kept in SQLite `signal_outcomes`.

Outcomes are filled incrementally: a signal gets its return after a horizon once the feature store holds a window
ending at least that long after the signal's window. price(t) is the close of the last stored window ending at or
before t (windows are aligned, so for the horizons below this is the price of the last trade before t).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import sqlite_utils

from storage.feature_store import FeatureStore

HORIZONS_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
RECORD_HORIZON = "15m"  # the horizon the track record line and /stats speak of
RECORD_DAYS = 30
POSITIVE_MIN_MEASURED = 10  # measured signals a record needs before it counts as positive
DAY_MS = 86_400_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS signal_outcomes (
    signal_id TEXT NOT NULL, horizon TEXT NOT NULL, ret REAL NOT NULL, PRIMARY KEY (signal_id, horizon)
)
"""


@dataclass(frozen=True)
class Record:
    """One (symbol, kind, direction)'s record over the period: alerts, and of those measured, the share that moved
    the signal's way after RECORD_HORIZON and their median signed return (fractions)."""

    symbol: str
    kind: str
    direction: str
    alerts: int
    measured: int
    hit_rate: float | None
    median_signed_ret: float | None


class TrackRecords:
    """Fills and reads signal outcomes in the signal database, with prices from the feature store."""

    def __init__(self, db_path: str | Path, features: FeatureStore) -> None:
        self.db = sqlite_utils.Database(Path(db_path))
        self.db.execute("PRAGMA busy_timeout = 5000")  # the bot writes the same database
        self.features = features
        self.db.execute(_SCHEMA)  # the migration: created on first use, safe on every start

    def close(self) -> None:
        self.db.close()

    def update(self, symbol: str) -> int:
        """Measure the symbol's signals that aged past a horizon since the last update; how many outcomes were added."""
        newest = self.features.latest_window_end(symbol)
        if newest is None or not self.db["signals"].exists():
            return 0
        pending = self.db.execute(
            "SELECT s.id, s.window_end FROM signals s WHERE s.symbol = ? AND s.window_end <= ? AND"
            " (SELECT COUNT(*) FROM signal_outcomes o WHERE o.signal_id = s.id) < ?",
            [symbol, newest - min(HORIZONS_MS.values()), len(HORIZONS_MS)],
        ).fetchall()
        if not pending:
            return 0
        first = min(end for _, end in pending)
        table = self.features.read(symbol, first - 3_600_000, newest, columns=["window_end", "close"])
        ends = table["window_end"].cast("int64").to_numpy()
        closes = pc.cast(table["close"], "float64").to_numpy()
        rows = []
        for signal_id, window_end in pending:
            base_i = int(np.searchsorted(ends, window_end, "right")) - 1
            if base_i < 0 or not closes[base_i] > 0:  # no price yet (a window of liquidations alone)
                continue
            for horizon, ms in HORIZONS_MS.items():
                if window_end + ms > newest:
                    continue
                later_i = int(np.searchsorted(ends, window_end + ms, "right")) - 1
                if not closes[later_i] > 0:
                    continue
                rows.append((signal_id, horizon, closes[later_i] / closes[base_i] - 1))
        with self.db.conn:
            self.db.conn.executemany("INSERT OR IGNORE INTO signal_outcomes VALUES (?, ?, ?)", rows)
        return len(rows)

    def update_all(self) -> int:
        """`update` every stored symbol; how many outcomes were added."""
        return sum(self.update(symbol) for symbol in self.features.symbols())

    def positive(self, symbol: str, kind: str, before_ms: int, days: int = RECORD_DAYS) -> bool:
        """The kind has a positive record on the symbol: at least POSITIVE_MIN_MEASURED signals of the `days`
        before `before_ms` measured after RECORD_HORIZON, with a mean signed return above zero."""
        if not self.db["signals"].exists():
            return False
        count, mean = self.db.execute(
            "SELECT count(*), avg(CASE s.direction WHEN 'buy' THEN o.ret ELSE -o.ret END) FROM signals s"
            " JOIN signal_outcomes o ON o.signal_id = s.id AND o.horizon = ?"
            " WHERE s.symbol = ? AND s.kind = ? AND s.direction IN ('buy', 'sell')"
            " AND s.window_end > ? AND s.window_end < ?",
            [RECORD_HORIZON, symbol, kind, before_ms - days * DAY_MS, before_ms],
        ).fetchone()
        return count >= POSITIVE_MIN_MEASURED and mean is not None and mean > 0

    def record_of(self, symbol: str, kind: str, direction: str, before_ms: int) -> Record | None:
        """The record an alert of this symbol, kind and direction carries: its signals of the 30 days before it."""
        found = [r for r in self.records(symbol, kind, before_ms, before=True) if r.direction == direction]
        return found[0] if found else None

    def records(self, symbol: str | None = None, kind: str | None = None, now_ms: int | None = None,
                days: int = RECORD_DAYS, *, before: bool = False) -> list[Record]:
        """The records of the last `days` days up to now_ms (default: the newest stored signal), by group; with
        `before`, only signals whose window ended before now_ms."""
        if not self.db["signals"].exists():
            return []  # no signal stored here yet
        where: list[str] = ["1 = 1"]
        params: list[str | int] = []
        if symbol:
            where.append("s.symbol = ?")
            params.append(symbol)
        if kind:
            where.append("s.kind = ?")
            params.append(kind)
        if now_ms is None:
            now_ms = self.db.execute("SELECT MAX(window_end) FROM signals").fetchone()[0] or 0
        where.append("s.window_end > ?")
        params.append(now_ms - days * DAY_MS)
        if before:
            where.append("s.window_end < ?")
            params.append(now_ms)
        rows = self.db.execute(
            "SELECT s.symbol, s.kind, s.direction, o.ret FROM signals s LEFT JOIN signal_outcomes o"
            f" ON o.signal_id = s.id AND o.horizon = ? WHERE {' AND '.join(where)} ORDER BY 1, 2, 3",
            [RECORD_HORIZON, *params],
        ).fetchall()
        groups: dict[tuple[str, str, str], list[float | None]] = {}
        for sym, knd, direction, ret in rows:
            groups.setdefault((sym, knd, direction), []).append(ret)
        found = []
        for (sym, knd, direction), rets in groups.items():
            sign = {"buy": 1.0, "sell": -1.0}.get(direction)
            signed = [sign * r for r in rets if r is not None] if sign is not None else []
            found.append(Record(
                sym, knd, direction, len(rets), len(signed),
                sum(v > 0 for v in signed) / len(signed) if signed else None,
                statistics.median(signed) if signed else None,
            ))
        return found


def measure_track_records(db_path: str | Path, features: FeatureStore) -> int:
    """Measure every signal that aged past a horizon (a connection of its own: safe in a worker thread)."""
    records = TrackRecords(db_path, features)
    try:
        return records.update_all()
    finally:
        records.close()
