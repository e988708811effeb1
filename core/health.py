"""Feed health: one object with counters per symbol and per connection."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
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


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the connections are doing, for people: delivering ("ok"), or still trying and why."""

    phase: str  # "ok", "connecting" (has never delivered) or "reconnecting" (delivered before, lost, retrying)
    failures: int = 0  # failed attempts in a row of the connection in the worst state
    last_error: str | None = None
    healthy: bool = True  # False once a connection failed WS_MAX_RECONNECT_ATTEMPTS times in a row

    @property
    def ok(self) -> bool:
        return self.phase == "ok"

    def text(self) -> str:
        """e.g. "ok", "connecting", "connecting: 6 failures, last: cannot resolve data-stream.binance.vision"."""
        if self.ok:
            return "ok"
        words = self.phase
        if self.failures:
            words += f": {self.failures} failure{'s' if self.failures != 1 else ''}, last: {self.last_error}"
        return words if self.healthy else f"UNHEALTHY, {words}"


def feed_state(snapshot: Mapping[str, Any]) -> FeedState:
    """The state of a feed from its snapshot (FeedHealth.snapshot(), as the bus carries it; symbols not needed).

    A connection is ok when it is connected with no failure since it last delivered; a feed without any
    connection yet is connecting. Otherwise the feed is as the connection with the most failures in a row.
    """
    connections: list[Mapping[str, Any]] = list(snapshot.get("connections", {}).values())
    healthy = snapshot.get("healthy", True) and all(c.get("healthy", True) for c in connections)
    failing = [c for c in connections if not c.get("connected") or c.get("consecutive_failures", 0)]
    if connections and not failing:
        return FeedState("ok")
    if not failing:
        return FeedState("connecting")
    worst = max(failing, key=lambda c: c.get("consecutive_failures", 0))
    phase = "connecting" if worst.get("last_message_age_s") is None else "reconnecting"
    return FeedState(phase, worst.get("consecutive_failures", 0), worst.get("last_error"), healthy)


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

    def state(self) -> FeedState:
        """Delivering, or connecting/reconnecting with the failures and the last reason."""
        now = time.time()
        return feed_state({"connections": {n: c.snapshot(now) for n, c in self.connections.items()}})

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
