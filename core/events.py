"""Typed events that travel on the event bus between the engine and its consumers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.trades import Trade


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every bus event."""


@dataclass(frozen=True, slots=True)
class TradeBatch(Event):
    """Trades of one symbol, validated, de-duplicated and in id order."""

    symbol: str
    trades: tuple[Trade, ...]


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
class WindowClosed(Event):
    """A window's features, final (or corrected: `revision` > 0 replaces an earlier row)."""

    features: Any  # core.features.WindowFeatures
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Signal(Event):
    """A moment worth an alert, with the numbers that triggered it."""

    id: str  # stable: symbol, kind and window start, so a re-detected signal keeps its id
    symbol: str
    kind: str  # whale | burst | imbalance | cvd_divergence | absorption
    direction: str  # buy | sell | neutral
    severity: int  # 1..3
    window_start: int  # ms
    window_end: int  # ms
    evidence: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0  # unix seconds
