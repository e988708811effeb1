"""What a process without the engine knows of it from the bus: each symbol's recent windows, the feed's health."""

from __future__ import annotations

from typing import Any

from core.events import Event, FeedHealthReport, WindowClosed
from engine.analysis.context import SymbolContext
from engine.bus import Subscription


class BusMirror:
    """SymbolContexts fed by WindowClosed events and the shards' FeedHealthReports, merged."""

    def __init__(self, symbols: list[str] | None = None) -> None:
        self.contexts: dict[str, SymbolContext] = {s: SymbolContext(s) for s in symbols or ()}
        self._health: dict[str, dict[str, Any]] = {}

    def apply(self, event: Event) -> set[str]:
        """Learn an event; returns the symbols it concerns."""
        if isinstance(event, WindowClosed):
            symbol = event.features.symbol
            self.contexts.setdefault(symbol, SymbolContext(symbol)).add(event.features)
            return {symbol}
        if isinstance(event, FeedHealthReport):
            symbols = event.snapshot.get("symbols", {})
            self._health[",".join(sorted(symbols)) or "feed"] = event.snapshot
            return set(symbols)
        return set()

    async def follow(self, events: Subscription) -> None:
        async for event in events:
            self.apply(event)

    def feed_health(self) -> dict[str, Any] | None:
        """The shards' latest health reports merged into one snapshot (None before the first report)."""
        if not self._health:
            return None
        reports = list(self._health.values())
        return {
            "healthy": all(r.get("healthy", True) for r in reports),
            "behind_s": max((r.get("behind_s") or 0.0 for r in reports), default=0.0),
            "symbols": {s: h for r in reports for s, h in r.get("symbols", {}).items()},
            "connections": {c: h for r in reports for c, h in r.get("connections", {}).items()},
        }
