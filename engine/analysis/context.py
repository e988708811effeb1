"""Context: rolling 1m, 5m, 15m and 1h summaries of a symbol's window features, kept in memory."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from engine.analysis.features import PRICE_SCALE, WindowFeatures

CONTEXT_SPANS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
KEPT_MS = max(CONTEXT_SPANS.values())


@dataclass(frozen=True, slots=True)
class FlowSummary:
    """Exact sums over the windows of a span ending at `end` (ms); amounts scaled like WindowFeatures."""

    symbol: str
    span: str
    start: int
    end: int
    windows: int
    trade_count: int
    volume: int
    buy_volume: int
    sell_volume: int
    quote_volume: int
    buy_quote: int
    sell_quote: int
    delta: int
    cvd_end: int
    whale_count: int
    whale_buy_quote: int
    whale_sell_quote: int
    bursts: int
    missing_ids: int
    open: int
    high: int
    low: int
    close: int

    @property
    def price_change(self) -> int:
        return self.close - self.open

    @property
    def price_change_pct(self) -> Decimal:
        """Percent change from the span's first open to its last close, to 0.01%."""
        if not self.open:
            return Decimal(0)
        return (Decimal(self.close - self.open) * 100 / Decimal(self.open)).quantize(Decimal("0.01"))

    @property
    def buy_share_pct(self) -> Decimal:
        """Buy volume as a percent of all volume, to 0.1%."""
        if not self.volume:
            return Decimal(0)
        return (Decimal(self.buy_volume) * 100 / Decimal(self.volume)).quantize(Decimal("0.1"))

    @property
    def vwap(self) -> Decimal:
        if not self.volume:
            return Decimal(0)
        return (Decimal(self.quote_volume) / Decimal(self.volume) / PRICE_SCALE).quantize(Decimal("1e-8"))


def summarize(symbol: str, span: str, start: int, end: int, windows: Iterable[WindowFeatures]) -> FlowSummary | None:
    """Sum the windows (in time order) that lie in [start, end); None when there are none."""
    chosen = [w for w in windows if start <= w.window_start and w.window_end <= end]
    if not chosen:
        return None
    return FlowSummary(
        symbol=symbol, span=span, start=start, end=end, windows=len(chosen),
        trade_count=sum(w.trade_count for w in chosen),
        volume=sum(w.volume for w in chosen),
        buy_volume=sum(w.buy_volume for w in chosen),
        sell_volume=sum(w.sell_volume for w in chosen),
        quote_volume=sum(w.quote_volume for w in chosen),
        buy_quote=sum(w.buy_quote for w in chosen),
        sell_quote=sum(w.sell_quote for w in chosen),
        delta=sum(w.delta for w in chosen),
        cvd_end=chosen[-1].cvd,
        whale_count=sum(w.whale_count for w in chosen),
        whale_buy_quote=sum(w.whale_buy_quote for w in chosen),
        whale_sell_quote=sum(w.whale_sell_quote for w in chosen),
        bursts=sum(w.burst for w in chosen),
        missing_ids=sum(w.missing_ids for w in chosen),
        open=chosen[0].open,
        high=max(w.high for w in chosen),
        low=min(w.low for w in chosen),
        close=chosen[-1].close,
    )


class SymbolContext:
    """The last hour of one symbol's windows, bounded, with summaries per context span."""

    def __init__(self, symbol: str, kept_ms: int = KEPT_MS) -> None:
        self.symbol = symbol
        self.kept_ms = kept_ms
        self.windows: deque[WindowFeatures] = deque()

    def add(self, features: WindowFeatures) -> None:
        """Append a closed window, or replace the one with the same start (a correction)."""
        windows = self.windows
        if not windows or features.window_start > windows[-1].window_start:
            windows.append(features)
        else:
            starts = [w.window_start for w in windows]
            i = bisect.bisect_left(starts, features.window_start)
            if i < len(windows) and windows[i].window_start == features.window_start:
                windows[i] = features
            else:
                windows.insert(i, features)
        horizon = windows[-1].window_end - self.kept_ms
        while windows and windows[0].window_start < horizon:
            windows.popleft()

    @property
    def latest(self) -> WindowFeatures | None:
        return self.windows[-1] if self.windows else None

    def summary(self, span: str) -> FlowSummary | None:
        """The span ending at the newest window's end."""
        if not self.windows:
            return None
        end = self.windows[-1].window_end
        return summarize(self.symbol, span, end - CONTEXT_SPANS[span], end, self.windows)

    def summaries(self) -> dict[str, FlowSummary]:
        return {span: s for span in CONTEXT_SPANS if (s := self.summary(span)) is not None}
