"""Signals for a batch of closed windows, judging in Python only the windows a detector could flag.

Whale and burst findings depend on the window alone. Imbalance, CVD divergence and absorption depend on
the 1m, 5m and 1h spans ending at the window: a numpy pre-filter over running sums, with a safety margin
so that it keeps every window the exact rule could accept, picks the candidates. Each candidate is then
judged by the same exact SignalDetector rules as one window at a time, with its span summaries computed
exactly (prefix sums of the integer amounts) and only when a rule asks for them. Windows nothing could
flag are skipped, which changes nothing: the cooldown only moves when a signal is emitted.
"""

from __future__ import annotations

import numpy as np

from engine.analysis.context import CONTEXT_SPANS, FlowSummary
from engine.analysis.signals import ABSORPTION_MIN_HISTORY_MS, DETECTORS, Flows, SignalDetector
from engine.analysis.window_batch import QUOTES, WindowBatch, limbs_to_ints
from engine.events import Signal

MARGIN = 1e-9  # far above float64's error on these ratios, far below any threshold's meaning


def _running(values: np.ndarray) -> np.ndarray:
    """Exact running sums along the first axis with a leading 0: int64 when they fit, else Python ints (object)."""
    zero = np.zeros((1, *values.shape[1:]), dtype=np.int64)
    if not len(values) or np.abs(values).max() < (1 << 62) // len(values):
        return np.concatenate((zero, np.cumsum(values, axis=0, dtype=np.int64)))
    return np.concatenate((zero.astype(object), np.cumsum(values.astype(object), axis=0)))


SUMMED = ("trade_count", "volume", "buy_volume", "delta", "whale_count", "burst", "missing_ids")


class _Spans:
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

    def summary(self, i: int, span: str) -> FlowSummary | None:
        """Exactly what SymbolContext would summarise for the span ending at window i."""
        first = int(self.left[span][i])
        if first > i:
            return None
        w = self.windows
        sums = dict(zip(SUMMED, (self._sums[i + 1] - self._sums[first]).tolist(), strict=True))
        quotes = dict(zip(QUOTES, limbs_to_ints(self._quotes[i + 1] - self._quotes[first]), strict=True))
        end = int(w.window_end[i])
        return FlowSummary(
            symbol=w.symbol, span=span, start=end - CONTEXT_SPANS[span], end=end,
            windows=i + 1 - first, first_start=int(w.window_start[first]), trade_count=sums["trade_count"],
            volume=sums["volume"], buy_volume=sums["buy_volume"], sell_volume=sums["volume"] - sums["buy_volume"],
            delta=sums["delta"], cvd_end=int(w.cvd[i]), whale_count=sums["whale_count"], bursts=sums["burst"],
            missing_ids=sums["missing_ids"], open=int(w.open[first]), high=int(w.high[first : i + 1].max()),
            low=int(w.low[first : i + 1].min()), close=int(w.close[i]), **quotes,
        )


def _pct(opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    safe = np.where(opens > 0, opens, 1)
    return np.where(opens > 0, (closes - opens) * 100.0 / safe, 0.0)


class BatchJudge:
    """Runs a SignalDetector over a batch of one symbol's windows that follow its history (the last hour)."""

    def __init__(self, detector: SignalDetector) -> None:
        self.detector = detector

    def signals(self, history: WindowBatch, batch: WindowBatch) -> list[Signal]:
        """The signals of the batch's windows, judged in order (history: the symbol's last hour before the batch)."""
        if not len(batch):
            return []
        spans = _Spans(WindowBatch.concat(batch.symbol, [history, batch]))
        maybe, surely = self._candidates(spans, len(history))
        detector = self.detector
        out: list[Signal] = []
        candidates = sorted(set().union(*maybe.values()))
        objects = dict(zip(candidates, batch.features(np.array(candidates, dtype=np.int64) - len(history)),
                           strict=True))
        for i in candidates:
            window = objects[i]
            kinds = []
            for kind in DETECTORS:
                if i not in maybe[kind]:
                    continue
                if i in surely[kind] and detector.cooling(window.symbol, kind, window.window_end):
                    detector.suppressed[(window.symbol, kind)] += 1  # it fires, but is held back: no evidence needed
                    continue
                kinds.append(kind)
            if kinds:
                flows = Flows(lambda span, i=i: spans.summary(i, span))
                out.extend(detector.judge(window, flows, kinds))
        return out

    def _candidates(self, spans: _Spans, first: int) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
        """Per kind, the batch windows (indexes into history + batch) whose exact rule could fire, and those
        whose rule surely fires (clear of the margin)."""
        t = self.detector.thresholds
        w = spans.windows
        n = len(w)
        batch = np.arange(n) >= first
        opens, closes = w.open, w.close
        m_volume, m_buy, m_trades = (spans.total(k, "1m") for k in ("volume", "buy_volume", "trade_count"))
        m_share = np.maximum(m_buy, m_volume - m_buy) / np.maximum(m_volume, 1)
        m_pct = _pct(opens[spans.left["1m"]], closes)
        f_volume, f_delta = spans.total("volume", "5m"), spans.total("delta", "5m")
        f_pct = _pct(opens[spans.left["5m"]], closes)
        f_share = f_delta / np.maximum(f_volume, 1)
        h_volume = spans.total("volume", "1h")
        covered = w.window_end - w.window_start[spans.left["1h"]]
        mean_per_minute = h_volume * 60_000.0 / np.maximum(covered, 1)
        whale = w.whale_count > 0
        burst = w.burst
        maybe, surely = {"whale": whale, "burst": burst}, {"whale": whale, "burst": burst}
        min_pct, min_share = t.divergence_min_price_pct, t.divergence_min_delta_share
        for margin, masks in ((MARGIN, maybe), (-MARGIN, surely)):  # a wider net, then a safely narrower one
            masks["imbalance"] = (
                (m_volume > 0) & (m_trades >= t.imbalance_min_trades) & (m_share >= t.imbalance_ratio - margin)
            )
            masks["cvd_divergence"] = (f_volume > 0) & (
                ((f_pct >= min_pct - margin) & (f_share <= -min_share + margin))
                | ((f_pct <= -min_pct + margin) & (f_share >= min_share - margin))
            )
            masks["absorption"] = (
                (m_volume > 0) & (h_volume > 0) & (covered >= ABSORPTION_MIN_HISTORY_MS)
                & (m_share >= t.absorption_min_share - margin) & (np.abs(m_pct) <= t.absorption_max_price_pct + margin)
                & (m_volume >= t.absorption_min_volume_ratio * mean_per_minute * (1 - margin))
            )
        return (
            {kind: set(np.flatnonzero(mask & batch).tolist()) for kind, mask in maybe.items()},
            {kind: set(np.flatnonzero(mask & batch).tolist()) for kind, mask in surely.items()},
        )
