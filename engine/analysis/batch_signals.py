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
from engine.analysis.features import WindowFeatures
from engine.analysis.signals import ABSORPTION_MIN_HISTORY_MS, DETECTORS, Flows, SignalDetector
from engine.events import Signal

MARGIN = 1e-9  # far above float64's error on these ratios, far below any threshold's meaning


def _ints(windows: list[WindowFeatures], name: str) -> np.ndarray:
    return np.fromiter((getattr(w, name) for w in windows), dtype=np.int64, count=len(windows))


def _running(windows: list[WindowFeatures], name: str) -> np.ndarray:
    """Exact running sums with a leading 0: int64 when they fit, else Python ints (object array)."""
    values = [getattr(w, name) for w in windows]
    if sum(map(abs, values)) < 1 << 62:
        return np.concatenate(([0], np.cumsum(np.array(values, dtype=np.int64))))
    return np.concatenate(([0], np.cumsum(np.array(values, dtype=object)))).astype(object)


SUMMED = ("trade_count", "volume", "buy_volume", "delta", "whale_count", "burst", "missing_ids")
QUOTE = ("quote_volume", "buy_quote", "sell_quote", "whale_buy_quote", "whale_sell_quote")


class _Spans:
    """Running sums over the windows [history + batch], and exact span summaries on demand."""

    def __init__(self, windows: list[WindowFeatures]) -> None:
        self.windows = windows
        self.starts = _ints(windows, "window_start")
        self.ends = _ints(windows, "window_end")
        self.left = {span: np.searchsorted(self.starts, self.ends - ms, "left") for span, ms in CONTEXT_SPANS.items()}
        self._sums = {name: _running(windows, name) for name in SUMMED}

    def total(self, name: str, span: str) -> np.ndarray:
        """Per window: the sum of `name` over the span ending at that window, as float64 for comparisons."""
        sums = self._sums[name]
        return (sums[1:] - sums[self.left[span]]).astype(np.float64)

    def summary(self, i: int, span: str) -> FlowSummary | None:
        """Exactly what SymbolContext would summarise for the span ending at window i."""
        first = int(self.left[span][i])
        if first > i:
            return None
        chosen = self.windows[first : i + 1]
        sums = {name: int(self._sums[name][i + 1] - self._sums[name][first]) for name in SUMMED}
        quotes = {name: sum(getattr(w, name) for w in chosen) for name in QUOTE}
        last = self.windows[i]
        return FlowSummary(
            symbol=last.symbol, span=span, start=last.window_end - CONTEXT_SPANS[span], end=last.window_end,
            windows=len(chosen), first_start=chosen[0].window_start, trade_count=sums["trade_count"],
            volume=sums["volume"], buy_volume=sums["buy_volume"], sell_volume=sums["volume"] - sums["buy_volume"],
            delta=sums["delta"], cvd_end=last.cvd, whale_count=sums["whale_count"], bursts=sums["burst"],
            missing_ids=sums["missing_ids"], open=chosen[0].open, high=max(w.high for w in chosen),
            low=min(w.low for w in chosen), close=last.close, **quotes,
        )


def _pct(opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    safe = np.where(opens > 0, opens, 1)
    return np.where(opens > 0, (closes - opens) * 100.0 / safe, 0.0)


class BatchJudge:
    """Runs a SignalDetector over a batch of one symbol's windows that follow its history (the last hour)."""

    def __init__(self, detector: SignalDetector) -> None:
        self.detector = detector

    def signals(self, history: list[WindowFeatures], batch: list[WindowFeatures]) -> list[Signal]:
        if not batch:
            return []
        spans = _Spans(history + batch)
        maybe, surely = self._candidates(spans, len(history))
        detector = self.detector
        out: list[Signal] = []
        for i in sorted(set().union(*maybe.values())):
            window = spans.windows[i]
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
        opens, closes = _ints(w, "open"), _ints(w, "close")
        m_volume, m_buy, m_trades = (spans.total(k, "1m") for k in ("volume", "buy_volume", "trade_count"))
        m_share = np.maximum(m_buy, m_volume - m_buy) / np.maximum(m_volume, 1)
        m_pct = _pct(opens[spans.left["1m"]], closes)
        f_volume, f_delta = spans.total("volume", "5m"), spans.total("delta", "5m")
        f_pct = _pct(opens[spans.left["5m"]], closes)
        f_share = f_delta / np.maximum(f_volume, 1)
        h_volume = spans.total("volume", "1h")
        covered = spans.ends - spans.starts[spans.left["1h"]]
        mean_per_minute = h_volume * 60_000.0 / np.maximum(covered, 1)
        whale = _ints(w, "whale_count") > 0
        burst = np.fromiter((x.burst for x in w), dtype=bool, count=n)
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
