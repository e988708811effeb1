"""Running sums over a symbol's windows as columns: per-window span totals for pre-filters, exact summaries."""

from __future__ import annotations

import numpy as np

from engine.analysis.context import CONTEXT_SPANS, FlowSummary
from engine.analysis.window_batch import QUOTES, WindowBatch, limbs_to_ints
from engine.signals.amounts import pct_changes

SUMMED = ("trade_count", "volume", "buy_volume", "delta", "whale_count", "burst", "missing_ids")


def _running(values: np.ndarray) -> np.ndarray:
    """Exact running sums along the first axis with a leading 0: int64 when they fit, else Python ints (object)."""
    zero = np.zeros((1, *values.shape[1:]), dtype=np.int64)
    if not len(values) or np.abs(values).max() < (1 << 62) // len(values):
        return np.concatenate((zero, np.cumsum(values, axis=0, dtype=np.int64)))
    return np.concatenate((zero.astype(object), np.cumsum(values.astype(object), axis=0)))


class SpanSums:
    """Running sums over the windows [history + batch], and exact span summaries on demand."""

    def __init__(self, windows: WindowBatch) -> None:
        self.windows = windows
        self.left = {span: np.searchsorted(windows.window_start, windows.window_end - ms, "left")
                     for span, ms in CONTEXT_SPANS.items()}
        self._sums = _running(np.stack([getattr(windows, name).astype(np.int64) for name in SUMMED], axis=1))
        self._quotes = _running(windows.quotes)

    def total(self, name: str, span: str) -> np.ndarray:
        """Per window: the sum of `name` over the span ending at that window, as float64 for comparisons."""
        sums = self._sums[:, SUMMED.index(name)]
        return (sums[1:] - sums[self.left[span]]).astype(np.float64)

    def heavy_share(self, span: str) -> np.ndarray:
        """Per window: the larger side's share of the span's volume (float64; 0 without volume)."""
        volume, buy = self.total("volume", span), self.total("buy_volume", span)
        return np.maximum(buy, volume - buy) / np.maximum(volume, 1)

    def pct_change(self, span: str) -> np.ndarray:
        """Per window: the percent change from the span's first open to the window's close (float64)."""
        return pct_changes(self.windows.open[self.left[span]], self.windows.close)

    def covered(self, span: str) -> np.ndarray:
        """Per window: ms from the span's first window start to the window's end."""
        return self.windows.window_end - self.windows.window_start[self.left[span]]

    def summaries(self, rows: list[int], span: str) -> dict[int, FlowSummary | None]:
        """Exactly what SymbolContext would summarise for the span ending at each of the windows `rows`."""
        found: dict[int, FlowSummary | None] = dict.fromkeys(rows)
        ends = np.array(rows, dtype=np.int64)
        firsts = self.left[span][ends]
        kept = firsts <= ends
        ends, firsts = ends[kept], firsts[kept]
        if not len(ends):
            return found
        w = self.windows
        sums = (self._sums[ends + 1] - self._sums[firsts]).tolist()
        quotes = limbs_to_ints(self._quotes[ends + 1] - self._quotes[firsts])
        bounds = np.stack((firsts, ends + 1), axis=1).ravel()  # reduceat over [first, end]; the pad keeps bounds valid
        highs = np.maximum.reduceat(np.append(w.high, 0), bounds)[::2].tolist()
        lows = np.minimum.reduceat(np.append(w.low, 0), bounds)[::2].tolist()
        columns = zip(ends.tolist(), firsts.tolist(), w.window_end[ends].tolist(), w.window_start[firsts].tolist(),
                      w.cvd[ends].tolist(), w.open[firsts].tolist(), w.close[ends].tolist(), strict=True)
        for k, (i, first, end, first_start, cvd, open_, close) in enumerate(columns):
            total = dict(zip(SUMMED, sums[k], strict=True))
            found[i] = FlowSummary(
                symbol=w.symbol, span=span, start=end - CONTEXT_SPANS[span], end=end, windows=i + 1 - first,
                first_start=first_start, trade_count=total["trade_count"], volume=total["volume"],
                buy_volume=total["buy_volume"], sell_volume=total["volume"] - total["buy_volume"],
                delta=total["delta"], cvd_end=cvd, whale_count=total["whale_count"], bursts=total["burst"],
                missing_ids=total["missing_ids"], open=open_, high=highs[k], low=lows[k], close=close,
                **dict(zip(QUOTES, quotes[k * len(QUOTES) : (k + 1) * len(QUOTES)], strict=True)),
            )
        return found
