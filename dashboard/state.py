"""What the dashboard shows live: each symbol's recent windows and the feed's health, as cards of formatted numbers."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from core.events import FeedHealthReport, WindowClosed
from core.features import PRICE_SCALE, QUOTE_SCALE, WindowFeatures
from core.schema import Unit, feature_fields
from engine.analysis.context import KEPT_MS, SymbolContext
from engine.mirror import BusMirror
from storage.feature_store import FeatureStore

FeedHealthSource = Callable[[], dict[str, Any] | None]
VOLUME_PLACES = Decimal("0.0001")
UNKNOWN = "\u2013"  # an en dash: no number yet
CARD_FIELDS = (
    "price", "window", "delta_5m", "delta_1h", "cvd", "buy_volume", "sell_volume", "buy_share", "trades", "whales",
    "burst", "last_trade_age", "lag", "event_time_lag", "processing_lag", "gaps",
)
FUTURES_FIELDS = ("liquidations", "open_interest", "funding")  # USD-M cards only
HOUR_MS = 3_600_000


@dataclass
class FuturesGlance:
    """One USD-M symbol's last hour of liquidations and its latest open interest, mark price and funding."""

    liquidations: deque[tuple[int, int, int, int]] = field(default_factory=deque)  # (end, long, short, orders)
    open_interest: deque[tuple[int, int]] = field(default_factory=deque)  # (window end, value), the last hour
    funding_rate: int | None = None
    mark_price: int | None = None

    def add(self, w: WindowFeatures) -> None:
        if w.liq_count:
            self.liquidations.append((w.window_end, w.liq_long_quote or 0, w.liq_short_quote or 0, w.liq_count))
        if w.open_interest is not None and (not self.open_interest or self.open_interest[-1][0] < w.window_end):
            self.open_interest.append((w.window_end, w.open_interest))
        if w.funding_rate is not None:
            self.funding_rate, self.mark_price = w.funding_rate, w.mark_price
        for kept in (self.liquidations, self.open_interest):
            while kept and kept[0][0] <= w.window_end - HOUR_MS:
                kept.popleft()

    def fields(self) -> dict[str, str]:
        longs = sum(x[1] for x in self.liquidations)
        shorts = sum(x[2] for x in self.liquidations)
        orders = sum(x[3] for x in self.liquidations)
        out = {"liquidations": f"longs {quote_amount(longs)} / shorts {quote_amount(shorts)} ({orders} orders,"
                               " at least)"}
        if self.open_interest:
            first, last = self.open_interest[0][1], self.open_interest[-1][1]
            change = "" if not first else f" ({Decimal((last - first) * 100) / Decimal(first):+.2f}% 1h)"
            out["open_interest"] = volume(last) + change
        if self.funding_rate is not None:
            out["funding"] = f"{Decimal(self.funding_rate) * 100 / PRICE_SCALE:.4f}%"
        return out


@dataclass(frozen=True)
class Card:
    """One symbol's card: every field already formatted as text; `health` is ok, stale or unknown."""

    symbol: str
    fields: dict[str, str]
    health: str

    def as_json(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "fields": self.fields, "health": self.health}


class LiveState:
    """Each symbol's last hour of windows (from WindowClosed) and the feed's health (reports on the bus or a source)."""

    def __init__(
        self, symbols: list[str], feed_health: FeedHealthSource | None = None,
        contexts: dict[str, SymbolContext] | None = None,
    ) -> None:
        """contexts: the engine's own, in its process (else each symbol's hour of windows is held twice)."""
        self.mirror = BusMirror(symbols)
        self._symbols = list(symbols)
        self._shared = contexts is not None
        self.contexts = contexts if contexts is not None else self.mirror.contexts
        self._feed_health = feed_health
        self.futures: dict[str, FuturesGlance] = {}  # USD-M symbols only

    def apply(self, event: WindowClosed | FeedHealthReport) -> set[str]:
        """Learn an event; the symbols whose card changed (a health report may change every card)."""
        if isinstance(event, WindowClosed) and _has_futures(event.features):
            self.futures.setdefault(event.features.symbol, FuturesGlance()).add(event.features)
        if self._shared and isinstance(event, WindowClosed):
            return {event.features.symbol}  # the engine has added the window to its context already
        changed = self.mirror.apply(event)
        return changed | set(self.symbols()) if isinstance(event, FeedHealthReport) else changed

    def seed(self, store: FeatureStore) -> None:
        """Start from the last stored hour of each known symbol (a dashboard started after the engine); the engine's
        own contexts are its to fill."""
        if self._shared:
            return
        for symbol, context in self.contexts.items():
            if context.latest is None:
                context.extend(stored_windows(store, symbol))

    def feed_health(self) -> dict[str, Any] | None:
        """The source's snapshot, else the shards' latest reports on the bus merged (None before any)."""
        return self._feed_health() if self._feed_health is not None else self.mirror.feed_health()

    def symbols(self) -> list[str]:
        return list(dict.fromkeys([*self._symbols, *self.contexts]))

    def cards(self, symbols: Iterable[str] | None = None) -> list[Card]:
        """The cards of `symbols` (default: every symbol), from one snapshot of the feed's health."""
        health = self.feed_health()
        wanted = self.symbols() if symbols is None else symbols
        return [card(self.contexts.get(s) or SymbolContext(s), _symbol_health(health, s), self.futures.get(s))
                for s in wanted]

    def card(self, symbol: str) -> Card:
        return card(self.contexts.get(symbol) or SymbolContext(symbol), _symbol_health(self.feed_health(), symbol),
                    self.futures.get(symbol))


def _has_futures(w: WindowFeatures) -> bool:
    return w.liq_count is not None or w.open_interest is not None or w.funding_rate is not None


def _symbol_health(snapshot: dict[str, Any] | None, symbol: str) -> dict[str, Any] | None:
    return None if snapshot is None else snapshot.get("symbols", {}).get(symbol)


def card(context: SymbolContext, health: dict[str, Any] | None, futures: FuturesGlance | None = None) -> Card:
    """The card of one symbol from its context and its feed health (a dash where a number is not known yet); a
    USD-M symbol's also shows its liquidations (lower bounds), open interest and funding."""
    fields = dict.fromkeys(CARD_FIELDS, UNKNOWN)
    if futures is not None:
        fields |= dict.fromkeys(FUTURES_FIELDS, UNKNOWN) | futures.fields()
    latest = context.latest
    if latest is not None:
        five, hour = context.summary("5m"), context.summary("1h")
        assert five is not None and hour is not None
        fields |= {
            "price": amount(latest.close),
            "window": f"{datetime.fromtimestamp(latest.window_end / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC",
            "delta_5m": volume(five.delta, signed=True),
            "delta_1h": volume(hour.delta, signed=True),
            "cvd": volume(latest.cvd, signed=True),
            "buy_volume": volume(hour.buy_volume),
            "sell_volume": volume(hour.sell_volume),
            "buy_share": f"{hour.buy_share_pct}% buy",
            "trades": f"{hour.trade_count:,}",
            "whales": f"{hour.whale_count:,}",
            "burst": f"burst x{latest.burst_ratio:.1f}" if latest.burst else "calm",
        }
    state = "unknown"
    if health is not None:
        age, lag = health.get("last_trade_age_s"), health.get("lag_ms")
        fields |= {
            "last_trade_age": UNKNOWN if age is None else f"{age:.1f} s",
            "lag": UNKNOWN if lag is None else f"{lag:,} ms",
            "event_time_lag": _seconds(health.get("event_time_lag_s")),
            "processing_lag": _seconds(health.get("processing_lag_s")),
            "gaps": f"{health.get('gaps_found', 0)} found, {health.get('gaps_unfilled', 0)} unfilled, "
                    f"{health.get('missing_ids', 0)} ids missing",
        }
        state = "stale" if age is None or age > 60 or health.get("gaps_unfilled", 0) else "ok"
    return Card(context.symbol, fields, state)


def _seconds(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value:,.1f} s"


def amount(scaled: int) -> str:
    """A price (1e-8 integer) with thousands separators and no trailing zeros."""
    return f"{(Decimal(scaled) / PRICE_SCALE).normalize():,f}"


def quote_amount(scaled: int) -> str:
    """A quote amount (1e-16 integer) to 2 decimals, half-even."""
    return f"{(Decimal(scaled) / QUOTE_SCALE).quantize(Decimal('0.01')):,f}"


def volume(scaled: int, signed: bool = False) -> str:
    """A quantity (1e-8 integer) to 4 decimals, half-even, with a + on positive values when signed."""
    value = (Decimal(scaled) / PRICE_SCALE).quantize(VOLUME_PLACES)
    return f"{value:+,f}" if signed else f"{value:,f}"


def stored_windows(store: FeatureStore, symbol: str) -> list[WindowFeatures]:
    """The symbol's last stored hour as windows again (the stored floats are exact to 1e-8 for prices and volumes)."""
    end = store.latest_window_end(symbol)
    if end is None:
        return []
    table = store.read(symbol, end - KEPT_MS, end)
    table = table.set_column(table.schema.get_field_index("window_start"), "window_start",
                             table["window_start"].cast(pa.int64()))
    table = table.set_column(table.schema.get_field_index("window_end"), "window_end",
                             table["window_end"].cast(pa.int64()))
    return [_window(symbol, row) for row in table.to_pylist() if row["trade_count"]]  # not futures data alone


_PRICES = feature_fields(Unit.PRICE)
_QUOTES = feature_fields(Unit.QUOTE)
_INTS = feature_fields(Unit.TIME, Unit.COUNT)  # times are read as ms integers


def _window(symbol: str, row: dict[str, Any]) -> WindowFeatures:
    return WindowFeatures(
        symbol=symbol,
        **{name: _scaled(row[name], PRICE_SCALE) for name in _PRICES},
        **{name: _scaled(row[name], QUOTE_SCALE) for name in _QUOTES},
        **{name: int(row[name]) for name in _INTS},
        burst=bool(row["burst"]), burst_ratio=float(row["burst_ratio"]),
    )


def _scaled(value: float, scale: int) -> int:
    return int((Decimal(repr(value)) * scale).to_integral_value())
