"""Feed health: one object with counters per symbol and per connection."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.events import Gap


@dataclass(slots=True)
class SymbolHealth:
    symbol: str
    messages: int = 0
    trades: int = 0
    backfilled: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    gaps_found: int = 0
    gaps_filled: int = 0
    gaps_unfilled: int = 0
    missing_ids: int = 0
    sequence_resets: int = 0
    stale: int = 0
    last_receive_at: float | None = None  # unix seconds, of the newest live trade
    last_event_time_ms: int | None = None  # exchange event time of that trade
    connection: str | None = None  # the name of the connection that carries it

    @property
    def lag_ms(self) -> int | None:
        """Exchange-to-receive lag of the newest live trade."""
        if self.last_receive_at is None or self.last_event_time_ms is None:
            return None
        return int(self.last_receive_at * 1000) - self.last_event_time_ms

    def snapshot(self, now: float) -> dict[str, Any]:
        age = None if self.last_receive_at is None else round(now - self.last_receive_at, 3)
        return {
            "symbol": self.symbol,
            "messages": self.messages,
            "trades": self.trades,
            "backfilled": self.backfilled,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "gaps_found": self.gaps_found,
            "gaps_filled": self.gaps_filled,
            "gaps_unfilled": self.gaps_unfilled,
            "missing_ids": self.missing_ids,
            "sequence_resets": self.sequence_resets,
            "stale": self.stale,
            "last_trade_age_s": age,
            "lag_ms": self.lag_ms,
        }


@dataclass(slots=True)
class ConnectionHealth:
    name: str
    streams: int
    connected: bool = False
    healthy: bool = True
    connected_since: float | None = None  # unix seconds
    messages: int = 0
    reconnects: int = 0
    rotations: int = 0
    watchdog_restarts: int = 0
    consecutive_failures: int = 0
    last_message_at: float | None = None  # unix seconds
    last_error: str | None = None
    watermark_ms: int | None = None  # event time the connection has released trades through (MarketFeed.watermarks)
    processing_lag_ms: int | None = None  # receive time - Binance's event time, of its newest trade

    def event_time_lag_s(self, now: float) -> float | None:
        """How far the connection's event time is behind the wall clock: how far behind the market it is."""
        return None if self.watermark_ms is None else max(0.0, round(now - self.watermark_ms / 1000, 3))

    def snapshot(self, now: float) -> dict[str, Any]:
        age = None if self.last_message_at is None else round(now - self.last_message_at, 3)
        return {
            "name": self.name,
            "streams": self.streams,
            "connected": self.connected,
            "healthy": self.healthy,
            "messages": self.messages,
            "reconnects": self.reconnects,
            "rotations": self.rotations,
            "watchdog_restarts": self.watchdog_restarts,
            "consecutive_failures": self.consecutive_failures,
            "last_message_age_s": age,
            "last_error": self.last_error,
            "event_time_lag_s": self.event_time_lag_s(now),
            "processing_lag_s": None if self.processing_lag_ms is None else self.processing_lag_ms / 1000,
        }


@dataclass
class FeedHealth:
    """Everything the feed knows about its own state; shown by /status, /healthz and metrics."""

    symbols: dict[str, SymbolHealth] = field(default_factory=dict)
    connections: dict[str, ConnectionHealth] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)  # validation reason -> count
    unfilled_gaps: list[Gap] = field(default_factory=list)

    def symbol(self, symbol: str) -> SymbolHealth:
        health = self.symbols.get(symbol)
        if health is None:
            health = self.symbols[symbol] = SymbolHealth(symbol)
        return health

    @property
    def healthy(self) -> bool:
        return all(c.healthy for c in self.connections.values())

    def behind_s(self, now: float) -> float:
        """The largest event-time lag of the connected connections (0 before any trade)."""
        return max((lag for c in self.connections.values() if c.connected
                    and (lag := c.event_time_lag_s(now)) is not None), default=0.0)

    def _symbol_snapshot(self, health: SymbolHealth, now: float) -> dict[str, Any]:
        """A symbol's counters with its connection's event-time and processing lag."""
        connection = self.connections.get(health.connection or "")
        lags = {"event_time_lag_s": None, "processing_lag_s": None}
        if connection is not None:
            lags = {key: connection.snapshot(now)[key] for key in lags}
        return health.snapshot(now) | lags

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        return {
            "healthy": self.healthy,
            "behind_s": self.behind_s(now),
            "symbols": {s: self._symbol_snapshot(h, now) for s, h in sorted(self.symbols.items())},
            "connections": {n: c.snapshot(now) for n, c in self.connections.items()},
            "rejected": dict(self.rejected),
            "unfilled_gaps": [
                {"symbol": g.symbol, "first_missing": g.first_missing, "last_missing": g.last_missing,
                 "count": g.count, "detected_at": g.detected_at, "reason": g.reason}
                for g in self.unfilled_gaps
            ],
        }
