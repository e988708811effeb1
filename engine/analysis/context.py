"""Context: rolling 1m, 5m, 15m and 1h summaries of a symbol's window features, kept in memory."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from operator import attrgetter

from core.features import PRICE_SCALE, WindowFeatures
from engine.analysis.window_batch import WindowBatch

CONTEXT_SPANS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
KEPT_MS = max(CONTEXT_SPANS.values())
REBUILD_ABOVE = 64  # windows in one batch above which the running spans are rebuilt once (lazily)


@dataclass(frozen=True, slots=True)
class FlowSummary:
    """Exact sums over the windows of a span ending at `end` (ms); amounts scaled like WindowFeatures."""

    symbol: str
    span: str
    start: int
    end: int
    windows: int
    first_start: int  # start of the span's first window that had trades
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
        symbol=symbol, span=span, start=start, end=end, windows=len(chosen), first_start=chosen[0].window_start,
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


ADDITIVE = (
    "trade_count", "volume", "buy_volume", "sell_volume", "quote_volume", "buy_quote", "sell_quote", "delta",
    "whale_count", "whale_buy_quote", "whale_sell_quote", "burst", "missing_ids",
)


_additive_values = attrgetter(*ADDITIVE)


class _RollingSpan:
    """Running sums, max and min over the windows of one span, updated as windows come and go."""

    def __init__(self, span: str, span_ms: int) -> None:
        self.span = span
        self.span_ms = span_ms
        self.windows: deque[WindowFeatures] = deque()
        self._values: deque[tuple[int, ...]] = deque()
        self.totals = [0] * len(ADDITIVE)
        self._highs: deque[WindowFeatures] = deque()  # decreasing highs: the front is the span's high
        self._lows: deque[WindowFeatures] = deque()  # increasing lows

    def add(self, w: WindowFeatures, values: tuple[int, ...]) -> None:
        self.windows.append(w)
        self._values.append(values)
        self.totals = [a + b for a, b in zip(self.totals, values, strict=True)]
        while self._highs and self._highs[-1].high <= w.high:
            self._highs.pop()
        self._highs.append(w)
        while self._lows and self._lows[-1].low >= w.low:
            self._lows.pop()
        self._lows.append(w)
        horizon = w.window_end - self.span_ms
        while self.windows[0].window_start < horizon:
            gone = self.windows.popleft()
            self.totals = [a - b for a, b in zip(self.totals, self._values.popleft(), strict=True)]
            if self._highs[0] is gone:
                self._highs.popleft()
            if self._lows[0] is gone:
                self._lows.popleft()

    def rebuild(self, windows: Iterable[WindowFeatures]) -> None:
        self.__init__(self.span, self.span_ms)  # type: ignore[misc]
        for w in windows:
            self.add(w, _additive_values(w))

    def summary(self, symbol: str) -> FlowSummary | None:
        if not self.windows:
            return None
        first, last, sums = self.windows[0], self.windows[-1], dict(zip(ADDITIVE, self.totals, strict=True))
        return FlowSummary(
            symbol=symbol, span=self.span, start=last.window_end - self.span_ms, end=last.window_end,
            windows=len(self.windows), first_start=first.window_start, trade_count=sums["trade_count"],
            volume=sums["volume"],
            buy_volume=sums["buy_volume"], sell_volume=sums["sell_volume"], quote_volume=sums["quote_volume"],
            buy_quote=sums["buy_quote"], sell_quote=sums["sell_quote"], delta=sums["delta"], cvd_end=last.cvd,
            whale_count=sums["whale_count"], whale_buy_quote=sums["whale_buy_quote"],
            whale_sell_quote=sums["whale_sell_quote"], bursts=sums["burst"], missing_ids=sums["missing_ids"],
            open=first.open, high=self._highs[0].high, low=self._lows[0].low, close=last.close,
        )


class SymbolContext:
    """The last hour of one symbol's windows, bounded, with running summaries per context span."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._windows: deque[WindowFeatures] = deque()
        self._pending: WindowBatch | None = None  # newer windows as columns, made objects when first needed
        self._spans = {span: _RollingSpan(span, ms) for span, ms in CONTEXT_SPANS.items()}
        self._stale = False  # the running spans lag the windows: rebuilt at the next summary

    @property
    def windows(self) -> deque[WindowFeatures]:
        """The windows of the last hour, oldest first."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.extend(list(pending))
        return self._windows

    def extend_batch(self, batch: WindowBatch) -> None:
        """Append newer windows given as columns (only those the last hour keeps become objects, when needed)."""
        if self._pending is not None:
            batch = WindowBatch.concat(self.symbol, [self._pending, batch])
        self._pending = batch.since(int(batch.window_end[-1]) - KEPT_MS)

    def add(self, features: WindowFeatures) -> None:
        """Append a closed window, or replace the one with the same start (a correction)."""
        windows = self.windows
        if not windows or features.window_start > windows[-1].window_start:
            windows.append(features)
            if not self._stale:
                values = _additive_values(features)
                for rolling in self._spans.values():
                    rolling.add(features, values)
        else:
            starts = [w.window_start for w in windows]
            i = bisect.bisect_left(starts, features.window_start)
            if i < len(windows) and windows[i].window_start == features.window_start:
                windows[i] = features
            else:
                windows.insert(i, features)
            self._stale = True
        while windows[0].window_start < windows[-1].window_end - KEPT_MS:
            windows.popleft()

    def shift_cvd(self, after_start: int, shift: int) -> list[WindowFeatures]:
        """Move the CVD of the windows after `after_start` in its UTC day by `shift` (an earlier window was
        corrected); returns them as they are now."""
        windows = self.windows
        day_end = (after_start // 86_400_000 + 1) * 86_400_000
        moved = []
        for i, w in enumerate(windows):
            if after_start < w.window_start < day_end:
                windows[i] = replace(w, cvd=w.cvd + shift)
                moved.append(windows[i])
        if moved:
            self._stale = True
        return moved

    def extend(self, batch: list[WindowFeatures]) -> None:
        """Append newer windows in order; after a large batch the spans are rebuilt once, when next summarised."""
        if len(batch) <= REBUILD_ABOVE:
            for features in batch:
                self.add(features)
            return
        windows = self.windows
        windows.extend(batch)
        while windows[0].window_start < windows[-1].window_end - KEPT_MS:
            windows.popleft()
        self._stale = True

    @property
    def latest(self) -> WindowFeatures | None:
        return self.windows[-1] if self.windows else None

    def summary(self, span: str) -> FlowSummary | None:
        """The span ending at the newest window's end."""
        windows = self.windows  # pending windows first
        if self._stale:
            for rolling in self._spans.values():
                rolling.rebuild(w for w in windows if w.window_start >= windows[-1].window_end - rolling.span_ms)
            self._stale = False
        return self._spans[span].summary(self.symbol)

    def summaries(self) -> dict[str, FlowSummary]:
        return {span: s for span in CONTEXT_SPANS if (s := self.summary(span)) is not None}
