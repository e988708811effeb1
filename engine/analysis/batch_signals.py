"""Signals for a batch of closed windows, judging in Python only the windows a detector could flag.

Whale and burst findings depend on the window alone. Imbalance, CVD divergence and absorption depend on
the 1m, 5m and 1h spans ending at the window: a numpy pre-filter over running sums, with a safety margin
so that it keeps every window the exact rule could accept, picks the candidates. Each candidate is then
judged by the same exact SignalDetector rules as one window at a time, with its span summaries computed
exactly (prefix sums of the integer amounts) and only when a rule asks for them. Windows nothing could
flag are skipped, which changes nothing: the cooldown only moves when a signal is emitted.
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np

from engine.analysis.context import ADDITIVE, CONTEXT_SPANS, FlowSummary
from engine.analysis.features import WindowFeatures
from engine.analysis.signals import ABSORPTION_MIN_HISTORY_MS, DETECTORS, Flows, SignalDetector
from engine.events import Signal

MARGIN = 1e-9  # far above float64's error on these ratios, far below any threshold's meaning


def _ints(windows: list[WindowFeatures], name: str) -> np.ndarray:
    return np.fromiter((getattr(w, name) for w in windows), dtype=np.int64, count=len(windows))


class _Spans:
    """Running sums over the windows [history + batch], and exact span summaries on demand."""

    def __init__(self, windows: list[WindowFeatures]) -> None:
        self.windows = windows
        self.starts = _ints(windows, "window_start")
        self.ends = _ints(windows, "window_end")
        self.left = {span: np.searchsorted(self.starts, self.ends - ms, "left") for span, ms in CONTEXT_SPANS.items()}
        self._sums = {name: np.concatenate(([0], np.cumsum(_ints(windows, name)))) for name in
                      ("volume", "buy_volume", "delta", "trade_count")}
        self._exact: dict[str, list[int]] | None = None

    def total(self, name: str, span: str) -> np.ndarray:
        """Per window: the sum of `name` over the span ending at that window (int64, exact)."""
        sums = self._sums[name]
        return sums[1:] - sums[self.left[span]]

    def summary(self, i: int, span: str) -> FlowSummary | None:
        """Exactly what SymbolContext would summarise for the span ending at window i."""
        first = int(self.left[span][i])
        if first > i:
            return None
        if self._exact is None:
            self._exact = {name: list(accumulate((getattr(w, name) for w in self.windows), initial=0))
                           for name in ADDITIVE}
        exact, chosen = self._exact, self.windows[first : i + 1]
        sums = {name: exact[name][i + 1] - exact[name][first] for name in ADDITIVE}
        last = self.windows[i]
        return FlowSummary(
            symbol=last.symbol, span=span, start=last.window_end - CONTEXT_SPANS[span], end=last.window_end,
            windows=len(chosen), first_start=chosen[0].window_start, trade_count=sums["trade_count"],
            volume=sums["volume"], buy_volume=sums["buy_volume"], sell_volume=sums["sell_volume"],
            quote_volume=sums["quote_volume"], buy_quote=sums["buy_quote"], sell_quote=sums["sell_quote"],
            delta=sums["delta"], cvd_end=last.cvd, whale_count=sums["whale_count"],
            whale_buy_quote=sums["whale_buy_quote"], whale_sell_quote=sums["whale_sell_quote"],
            bursts=sums["burst"], missing_ids=sums["missing_ids"], open=chosen[0].open,
            high=max(w.high for w in chosen), low=min(w.low for w in chosen), close=last.close,
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
        maybe = self._candidates(spans, len(history))
        out: list[Signal] = []
        for i in sorted(set().union(*maybe.values())):
            kinds = [kind for kind in DETECTORS if i in maybe[kind]]
            flows = Flows(lambda span, i=i: spans.summary(i, span))
            out.extend(self.detector.judge(spans.windows[i], flows, kinds))
        return out

    def _candidates(self, spans: _Spans, first: int) -> dict[str, set[int]]:
        """Per kind, the indexes (into history + batch, batch only) whose exact rule could fire."""
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
        imbalance = (m_volume > 0) & (m_trades >= t.imbalance_min_trades) & (m_share >= t.imbalance_ratio - MARGIN)
        min_pct, min_share = t.divergence_min_price_pct, t.divergence_min_delta_share
        divergence = (f_volume > 0) & (
            ((f_pct >= min_pct - MARGIN) & (f_share <= -min_share + MARGIN))
            | ((f_pct <= -min_pct + MARGIN) & (f_share >= min_share - MARGIN))
        )
        absorption = (
            (m_volume > 0) & (h_volume > 0) & (covered >= ABSORPTION_MIN_HISTORY_MS)
            & (m_share >= t.absorption_min_share - MARGIN) & (np.abs(m_pct) <= t.absorption_max_price_pct + MARGIN)
            & (m_volume >= t.absorption_min_volume_ratio * mean_per_minute * (1 - MARGIN))
        )
        whale = _ints(w, "whale_count") > 0
        burst = np.fromiter((x.burst for x in w), dtype=bool, count=n)
        masks = {"whale": whale, "burst": burst, "imbalance": imbalance, "cvd_divergence": divergence,
                 "absorption": absorption}
        return {kind: set(np.flatnonzero(mask & batch).tolist()) for kind, mask in masks.items()}
