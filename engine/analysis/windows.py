"""Window features from trade columns: exact, vectorised per batch, the same code live and in replay."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

import numpy as np

from engine.analysis.columns import TradeColumns
from engine.analysis.features import QUOTE_SCALE, WindowFeatures

DAY_MS = 86_400_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
SPLIT = 26  # amounts are split into 26-bit halves so that products and their sums stay exact in int64
LOW = (1 << SPLIT) - 1


def exact_quote_sums(price: np.ndarray, qty: np.ndarray, starts: np.ndarray) -> list[int]:
    """Exact sum of price x qty (1e-16 units) per segment [starts[i], starts[i+1]), without int64 overflow."""
    if not len(starts):
        return []
    if int(price.max()) >= 1 << (2 * SPLIT) or int(qty.max()) >= 1 << (2 * SPLIT) or min(price.min(), qty.min()) < 0:
        return _python_quote_sums(price, qty, starts)
    ph, pl = price >> SPLIT, price & LOW
    qh, ql = qty >> SPLIT, qty & LOW
    longest = int(np.diff(np.append(starts, len(price))).max())
    terms = (ph * qh, ph * ql + pl * qh, pl * ql)
    if any(longest * int(t.max(initial=0)) >= 1 << 62 for t in terms):
        return _python_quote_sums(price, qty, starts)
    hh, mid, ll = (np.add.reduceat(t, starts).tolist() for t in terms)
    return [(a << (2 * SPLIT)) + (b << SPLIT) + c for a, b, c in zip(hh, mid, ll, strict=True)]


def _python_quote_sums(price: np.ndarray, qty: np.ndarray, starts: np.ndarray) -> list[int]:
    bounds = [*starts.tolist(), len(price)]
    p, q = price.tolist(), qty.tolist()
    return [sum(a * b for a, b in zip(p[s:e], q[s:e], strict=True)) for s, e in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class FlowRules:
    """Per-symbol thresholds of the features stage."""

    window_ms: int = 5_000
    whale_min_notional: int = 100_000 * QUOTE_SCALE  # quote units x 1e16
    whale_percentile: float = 99.5  # 0 turns the adaptive part off
    burst_factor: float = 3.0
    burst_baseline_windows: int = 60  # baseline: mean trade count per window over this many preceding windows
    burst_min_trades: int = 20


class WhaleThreshold:
    """max(WHALE_MIN_NOTIONAL, the WHALE_PERCENTILE percentile of trade notional over the previous hour).

    The adaptive part is recomputed at each minute boundary from the trades of the 60 minutes before it
    (numpy's "higher" method: the threshold is the notional of an actual trade).
    """

    def __init__(self, minimum: int, percentile: float) -> None:
        self.minimum = minimum
        self.percentile = percentile
        self._minutes: deque[tuple[int, np.ndarray]] = deque()  # (minute start ms, float64 notionals)
        self._cached_minute = -1
        self._cached = float(minimum)

    def for_minute(self, minute: int) -> float:
        """Threshold (float64 notional in 1e-16 units) for trades in the minute starting at `minute` ms."""
        if minute != self._cached_minute:
            self._cached_minute = minute
            adaptive = 0.0
            if self.percentile > 0:
                recent = [a for m, a in self._minutes if minute - HOUR_MS <= m < minute]
                n = sum(len(a) for a in recent)
                if n:
                    # numpy's "higher" percentile is the value at rank ceil((n - 1) * q) of the sorted values, i.e.
                    # the k-th largest; each minute (kept sorted) can only contribute its own k largest.
                    k = n - int(np.ceil((n - 1) * (self.percentile / 100)))
                    candidates = np.concatenate([a[-k:] for a in recent])
                    adaptive = float(np.partition(candidates, len(candidates) - k)[len(candidates) - k])
            self._cached = max(float(self.minimum), adaptive)
        return self._cached

    def observe(self, minutes: np.ndarray, notional: np.ndarray) -> None:
        """Remember the notionals of trades (grouped by their minute, each minute kept sorted)."""
        if self.percentile <= 0 or not len(minutes):
            return
        starts = np.flatnonzero(np.diff(minutes, prepend=minutes[0] - 1))
        for i, start in enumerate(starts):
            stop = starts[i + 1] if i + 1 < len(starts) else len(minutes)
            minute = int(minutes[start])
            values = notional[start:stop]
            if self._minutes and self._minutes[-1][0] == minute:
                values = np.concatenate([self._minutes[-1][1], values])
                self._minutes.pop()
            self._minutes.append((minute, np.sort(values)))
        newest = self._minutes[-1][0]
        while self._minutes and self._minutes[0][0] < newest - HOUR_MS:
            self._minutes.popleft()


class WindowBuilder:
    """One symbol's windows: holds trades of windows not yet closed and turns closed ones into features.

    Windows are [k * window_ms, (k + 1) * window_ms) of trade time. `add` closes every window that a later
    trade proves complete; `close_through` closes windows ending at or before a time (the live grace
    period, or the end of a replay). CVD restarts at 00:00 UTC.
    """

    def __init__(self, symbol: str, rules: FlowRules, *, by_trade_ids: bool = False) -> None:
        self.symbol = symbol
        self.rules = rules
        self.by_trade_ids = by_trade_ids
        self.whales = WhaleThreshold(rules.whale_min_notional, rules.whale_percentile)
        self._open: list[TradeColumns] = []
        self._open_since: int | None = None  # window start of the oldest held trade
        self.closed_through = -(2**62)  # every window ending at or before this was closed
        self._prev_seq_hi: int | None = None
        self._cvd = 0
        self._cvd_day: int | None = None
        self._recent_counts: deque[tuple[int, int]] = deque()  # (window start, trade count)
        self._recent_total = 0
        self._first_window: int | None = None

    @property
    def open_window_start(self) -> int | None:
        return self._open_since

    def add(self, trades: TradeColumns) -> list[WindowFeatures]:
        """Take trades (in id order); return the windows they close."""
        if not len(trades):
            return []
        window_ms = self.rules.window_ms
        last_window = int(trades.time.max()) // window_ms * window_ms
        self._hold(trades)
        return self.close_through(last_window)

    def close_through(self, end_ms: int) -> list[WindowFeatures]:
        """Close and return every held window whose end is <= end_ms."""
        self.closed_through = max(self.closed_through, end_ms - end_ms % self.rules.window_ms)
        if self._open_since is None or self._open_since + self.rules.window_ms > end_ms:
            return []
        held = TradeColumns.concat(self.symbol, self._open)
        window_ms = self.rules.window_ms
        starts = held.time // window_ms * window_ms
        if len(starts) > 1 and (np.diff(starts) < 0).any():
            order = np.argsort(starts, kind="stable")
            held, starts = held.select(order), starts[order]
        cut = int(np.searchsorted(starts, end_ms - window_ms, side="right"))
        closing = held.take(0, cut)
        rest = held.take(cut, len(held))
        self._open = [rest.copy()] if len(rest) else []
        self._open_since = int(starts[cut]) if len(rest) else None
        return self._features(closing, starts[:cut]) if cut else []

    def shift_cvd(self, day: int, shift: int) -> None:
        """A correction changed an earlier window's delta: later windows of that UTC day move with it."""
        if self._cvd_day == day:
            self._cvd += shift

    def _hold(self, trades: TradeColumns) -> None:
        self._open.append(trades)
        first = int(trades.time.min()) // self.rules.window_ms * self.rules.window_ms
        self._open_since = first if self._open_since is None else min(self._open_since, first)

    def _features(self, t: TradeColumns, window_starts: np.ndarray) -> list[WindowFeatures]:
        """Features of the windows in `t` (sorted by window), exact."""
        rules = self.rules
        n = len(t)
        seg = np.flatnonzero(np.diff(window_starts, prepend=window_starts[0] - 1))
        ends = np.append(seg[1:], n)
        # whales: each trade's notional against its minute's threshold
        notional = t.price.astype(np.float64) * t.qty.astype(np.float64)
        minutes = t.time // MINUTE_MS * MINUTE_MS
        thresholds = np.empty(n, dtype=np.float64)
        mseg = np.flatnonzero(np.diff(minutes, prepend=minutes[0] - 1))
        for i, start in enumerate(mseg):
            stop = mseg[i + 1] if i + 1 < len(mseg) else n
            thresholds[start:stop] = self.whales.for_minute(int(minutes[start]))
            self.whales.observe(minutes[start:stop], notional[start:stop])
        whale = notional >= thresholds
        buy = ~t.is_sell
        buy_qty = np.where(buy, t.qty, 0)
        zeros = np.zeros(n, dtype=np.int64)
        # missing ids between consecutive records (gaps not filled); a backward jump is a new sequence
        lo, hi = (t.first_id, t.last_id) if self.by_trade_ids else (t.id, t.id)
        prev_hi = np.empty(n, dtype=np.int64)
        prev_hi[1:] = hi[:-1]
        prev_hi[0] = lo[0] - 1 if self._prev_seq_hi is None else self._prev_seq_hi
        missing = np.maximum(lo - prev_hi - 1, 0)
        self._prev_seq_hi = int(hi[-1])

        volume = np.add.reduceat(t.qty, seg).tolist()
        buy_volume = np.add.reduceat(buy_qty, seg).tolist()
        quote = exact_quote_sums(t.price, t.qty, seg)
        buy_quote = exact_quote_sums(t.price, buy_qty, seg)
        whale_buy_quote = exact_quote_sums(t.price, np.where(whale & buy, t.qty, zeros), seg)
        whale_sell_quote = exact_quote_sums(t.price, np.where(whale & t.is_sell, t.qty, zeros), seg)
        whale_count = np.add.reduceat(whale.astype(np.int64), seg).tolist()
        high = np.maximum.reduceat(t.price, seg).tolist()
        low = np.minimum.reduceat(t.price, seg).tolist()
        missing_ids = np.add.reduceat(missing, seg).tolist()
        opens = t.price[seg].tolist()
        closes = t.price[ends - 1].tolist()
        first_ids = t.id[seg].tolist()
        last_ids = t.id[ends - 1].tolist()
        counts = (ends - seg).tolist()
        wstarts = window_starts[seg].tolist()
        wthresholds = thresholds[seg].tolist()

        out = []
        for i, start in enumerate(wstarts):
            day = start // DAY_MS
            if day != self._cvd_day:
                self._cvd_day, self._cvd = day, 0
            delta = 2 * buy_volume[i] - volume[i]
            self._cvd += delta
            baseline = self._baseline(start)
            ratio = counts[i] / baseline if baseline else 0.0
            out.append(WindowFeatures(
                symbol=self.symbol, window_start=start, window_end=start + rules.window_ms,
                open=opens[i], high=high[i], low=low[i], close=closes[i],
                volume=volume[i], quote_volume=quote[i], buy_volume=buy_volume[i],
                sell_volume=volume[i] - buy_volume[i], buy_quote=buy_quote[i], sell_quote=quote[i] - buy_quote[i],
                delta=delta, cvd=self._cvd, trade_count=counts[i], whale_count=whale_count[i],
                whale_buy_quote=whale_buy_quote[i], whale_sell_quote=whale_sell_quote[i],
                first_id=first_ids[i], last_id=last_ids[i], missing_ids=missing_ids[i],
                whale_threshold=int(wthresholds[i]),
                burst=baseline > 0 and counts[i] >= rules.burst_min_trades and ratio >= rules.burst_factor,
                burst_ratio=round(ratio, 4),
            ))
            self._recent_counts.append((start, counts[i]))
            self._recent_total += counts[i]
        return out

    def _baseline(self, start: int) -> float:
        """Mean trades per window over the preceding windows (empty ones count as 0), up to the configured span."""
        if self._first_window is None:
            self._first_window = start
        window_ms = self.rules.window_ms
        horizon = start - self.rules.burst_baseline_windows * window_ms
        recent = self._recent_counts
        while recent and recent[0][0] < horizon:
            self._recent_total -= recent.popleft()[1]
        slots = min(self.rules.burst_baseline_windows, (start - self._first_window) // window_ms)
        return self._recent_total / slots if slots else 0.0
