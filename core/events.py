"""Typed events that travel on the event bus between the engine and its consumers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType

from core.features import WindowFeatures
from core.trades import Trade

SignalKind = NewType("SignalKind", str)  # a name the engine's signal kind registry knows (engine.signals.registry)


class Direction(StrEnum):
    """Which side a signal points to; equal to its str value, so JSON, SQLite and the bus see plain strings."""

    BUY = "buy"
    SELL = "sell"
    NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every bus event."""


@dataclass(frozen=True, slots=True)
class TradeBatch(Event):
    """Trades of one symbol, validated, de-duplicated and in id order."""

    symbol: str
    trades: tuple[Trade, ...]


@dataclass(frozen=True, slots=True)
class PriceTick(Event):
    """One released batch of a symbol's trades in brief (prices 1e-8, notional 1e-16): what price rules need,
    published instead of every trade."""

    symbol: str
    first_price: int
    low: int
    high: int
    last_price: int
    last_time: int  # ms, exchange clock, of the batch's last trade
    last_id: int
    max_notional: int  # the batch's largest price x quantity


@dataclass(frozen=True, slots=True)
class Gap:
    """Ids Binance printed that the feed could not recover."""

    symbol: str
    first_missing: int
    last_missing: int
    detected_at: float  # unix seconds
    reason: str

    @property
    def count(self) -> int:
        return self.last_missing - self.first_missing + 1


@dataclass(frozen=True, slots=True)
class GapUnfilled(Event):
    gap: Gap


@dataclass(frozen=True, slots=True)
class FeedHealthReport(Event):
    """Periodic snapshot of the feed's health (see core.health.FeedHealth.snapshot)."""

    snapshot: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeedStatusChanged(Event):
    """A connection became unhealthy (too many failed reconnects) or recovered."""

    connection: str
    healthy: bool
    consecutive_failures: int
    reason: str


@dataclass(frozen=True, slots=True)
class StoreHealthChanged(Event):
    """A store (the feature store, the signal table) stopped being able to write, or writes again."""

    store: str
    healthy: bool
    reason: str


@dataclass(frozen=True, slots=True)
class WindowClosed(Event):
    """A window's features, final (or corrected: `revision` > 0 replaces an earlier row)."""

    features: WindowFeatures
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Signal(Event):
    """A moment worth an alert, with the numbers that triggered it."""

    id: str  # stable: symbol, kind and window start, so a re-detected signal keeps its id
    symbol: str
    kind: SignalKind
    direction: Direction
    severity: int  # 1..3
    window_start: int  # ms
    window_end: int  # ms
    evidence: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0  # unix seconds
