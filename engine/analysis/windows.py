"""Window features from trade columns: exact, one compiled pass per batch, the same code live and in replay."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.features import QUOTE_SCALE
from engine.analysis.columns import TradeColumns
from engine.analysis.kernels import UNSET, flow_state, kth_largest_recent, whale_thresholds, window_sums
from engine.analysis.window_batch import WindowBatch


def round_4(values: np.ndarray) -> np.ndarray:
    """Python's round(v, 4) of each value: numpy's rint(v * 1e4) / 1e4 where v * 1e4 is clear of a rounding tie.

    Python rounds the exact value half to even; numpy rounds v * 1e4, which errs by at most 2**-53 relative, so the
    two agree unless that product is that close to a .5; those few values are rounded by Python.
    """
    scaled = values * 1e4
    out = np.rint(scaled) / 1e4
    near_tie = (np.abs(scaled - np.floor(scaled) - 0.5) <= np.abs(scaled) * 2.0**-50) | ~(np.abs(values) < 2.0**30)
    for i in np.flatnonzero(near_tie).tolist():
        out[i] = round(float(values[i]), 4)
    return out


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
    (numpy's "higher" method: the threshold is the notional of an actual trade). The hour is kept as one
    entry per minute (kernels.whale_thresholds): its start ms, its trade count and, sorted, its float64 notionals
    that reach the minimum (a percentile below the minimum loses to it anyway).
    """

    def __init__(self, minimum: int, percentile: float) -> None:
        self.minimum = minimum
        self.percentile = percentile
        self._entry_minute = np.empty(0, dtype=np.int64)
        self._counts = np.empty(0, dtype=np.int64)  # trades of each minute
        self._bounds = np.zeros(1, dtype=np.int64)  # minute e's notionals >= minimum: _values[_bounds[e]:_bounds[e+1]]
        self._values = np.empty(0, dtype=np.float64)
        self._cached_minute = -1
        self._cached = float(minimum)

    def for_minute(self, minute: int) -> float:
        """Threshold (float64 notional in 1e-16 units) for trades in the minute starting at `minute` ms."""
        if minute != self._cached_minute:
            self._cached_minute = minute
            adaptive = 0.0
            if self.percentile > 0:
                adaptive = kth_largest_recent(minute, self._entry_minute, self._counts, self._bounds, self._values,
                                              self.percentile / 100)
            self._cached = max(float(self.minimum), adaptive)
        return self._cached

    def thresholds(self, t: TradeColumns) -> np.ndarray:
        """Each trade's threshold (trades in window order), remembering their notionals for the minutes after."""
        if self.percentile <= 0:
            return np.full(len(t), float(self.minimum))
        (out, self._entry_minute, self._counts, self._bounds, self._values, self._cached_minute,
         self._cached) = whale_thresholds(
            t.time, t.price, t.qty, self._entry_minute, self._counts, self._bounds, self._values, self._cached_minute,
            self._cached, float(self.minimum), self.percentile / 100,
        )
        return out


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
        self._cvd_day = UNSET
        self._recent_starts = np.empty(0, dtype=np.int64)  # the burst baseline's windows: start, trade count
        self._recent_counts = np.empty(0, dtype=np.int64)
        self._first_window = UNSET

    @property
    def open_window_start(self) -> int | None:
        return self._open_since

    def add(self, trades: TradeColumns) -> WindowBatch:
        """Take trades (in id order); return the windows they close."""
        if not len(trades):
            return WindowBatch.empty(self.symbol)
        window_ms = self.rules.window_ms
        last_window = int(trades.time.max()) // window_ms * window_ms
        self._hold(trades)
        return self.close_through(last_window)

    def close_through(self, end_ms: int) -> WindowBatch:
        """Close and return every held window whose end is <= end_ms."""
        self.closed_through = max(self.closed_through, end_ms - end_ms % self.rules.window_ms)
        if self._open_since is None or self._open_since + self.rules.window_ms > end_ms:
            return WindowBatch.empty(self.symbol)
        held = TradeColumns.concat(self.symbol, self._open)
        window_ms = self.rules.window_ms
        starts = held.time // window_ms * window_ms
        if (starts[1:] < starts[:-1]).any():
            order = np.argsort(starts, kind="stable")
            held, starts = held.select(order), starts[order]
        cut = int(np.searchsorted(starts, end_ms - window_ms, side="right"))
        closing = held.take(0, cut)
        rest = held.take(cut, len(held))
        self._open = [rest.copy()] if len(rest) else []
        self._open_since = int(starts[cut]) if len(rest) else None
        return self._features(closing, starts[:cut]) if cut else WindowBatch.empty(self.symbol)

    def shift_cvd(self, day: int, shift: int) -> None:
        """A correction changed an earlier window's delta: later windows of that UTC day move with it."""
        if self._cvd_day == day:
            self._cvd += shift

    def _hold(self, trades: TradeColumns) -> None:
        self._open.append(trades)
        first = int(trades.time.min()) // self.rules.window_ms * self.rules.window_ms
        self._open_since = first if self._open_since is None else min(self._open_since, first)

    def _features(self, t: TradeColumns, window_starts: np.ndarray) -> WindowBatch:
        """Features of the windows in `t` (sorted by window), exact."""
        rules = self.rules
        thresholds = self.whales.thresholds(t)
        lo, hi = (t.first_id, t.last_id) if self.by_trade_ids else (t.id, t.id)
        prev_hi = int(lo[0]) - 1 if self._prev_seq_hi is None else self._prev_seq_hi
        first, ints, quotes = window_sums(window_starts, t.price, t.qty, t.is_sell, thresholds, lo, hi, prev_hi)
        self._prev_seq_hi = int(hi[-1])
        starts = window_starts[first]
        counts = np.diff(first, append=len(t))
        volume, buy_volume = ints[:, 2], ints[:, 3]
        delta = 2 * buy_volume - volume
        (cvd, baseline, self._cvd_day, self._cvd, self._recent_starts, self._recent_counts,
         self._first_window) = flow_state(
            starts, counts, delta, rules.window_ms, self._cvd_day, self._cvd, self._recent_starts,
            self._recent_counts, self._first_window, rules.burst_baseline_windows,
        )
        ratio = np.divide(counts, baseline, out=np.zeros(len(counts)), where=baseline != 0)
        return WindowBatch(
            self.symbol, window_start=starts, window_end=starts + rules.window_ms, open=t.price[first],
            high=ints[:, 0], low=ints[:, 1], close=t.price[np.append(first[1:], len(t)) - 1], volume=volume,
            buy_volume=buy_volume, delta=delta, cvd=cvd, trade_count=counts, whale_count=ints[:, 4],
            first_id=t.id[first], last_id=t.id[np.append(first[1:], len(t)) - 1], missing_ids=ints[:, 5],
            quotes=quotes, whale_threshold=thresholds[first],
            burst=(baseline > 0) & (counts >= rules.burst_min_trades) & (ratio >= rules.burst_factor),
            burst_ratio=round_4(ratio),
        )
