"""Signals for a batch of closed windows, judging in Python only the windows a detector could flag.

Whale and burst findings depend on the window alone. Imbalance, CVD divergence and absorption depend on
the 1m, 5m and 1h spans ending at the window: a numpy pre-filter over running sums, with a safety margin
so that it keeps every window the exact rule could accept, picks the candidates. Each candidate is then
judged by the same exact SignalDetector rules as one window at a time, with its span summaries computed
exactly (prefix sums of the integer amounts) and only when a rule asks for them. Windows nothing could
flag are skipped, which changes nothing: the cooldown only moves when a signal is emitted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from core.events import Signal
from core.features import WindowFeatures
from engine.analysis.context import CONTEXT_SPANS, FlowSummary
from engine.analysis.signals import ABSORPTION_MIN_HISTORY_MS, DETECTORS, Finding, Flows, SignalDetector
from engine.analysis.window_batch import QUOTES, WindowBatch, limbs_to_ints

SPANS_USED = {"1m": ("imbalance", "absorption"), "5m": ("cvd_divergence",), "1h": ("absorption",)}  # by detectors
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


def _pct(opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    safe = np.where(opens > 0, opens, 1)
    return np.where(opens > 0, (closes - opens) * 100.0 / safe, 0.0)


class _Lazy:
    """The batch's windows as objects and their flows, each made on first use (index into history + batch)."""

    def __init__(self, spans: _Spans) -> None:
        self.spans = spans
        self._windows: dict[int, WindowFeatures] = {}
        self._summaries: dict[str, dict[int, FlowSummary | None]] = {span: {} for span in CONTEXT_SPANS}

    def load(self, rows: list[int]) -> None:
        """Make the objects of these windows in one go."""
        rows = [i for i in rows if i not in self._windows]
        self._windows |= zip(rows, self.spans.windows.features(np.array(rows, dtype=np.int64)), strict=True)

    def load_summaries(self, rows: list[int], span: str) -> None:
        """Summarise the span ending at each of these windows in one go."""
        self._summaries[span] |= self.spans.summaries([i for i in rows if i not in self._summaries[span]], span)

    def window(self, i: int) -> WindowFeatures:
        if i not in self._windows:
            self.load([i])
        return self._windows[i]

    def flows(self, i: int) -> Flows:
        """Window i's flows (not kept here: a Flows that refers back to this would be a cycle, freed only by gc)."""
        return Flows(functools.partial(self._summary, i))

    def _summary(self, i: int, span: str) -> FlowSummary | None:
        if i not in self._summaries[span]:
            self.load_summaries([i], span)
        return self._summaries[span][i]


class BatchJudge:
    """Runs a SignalDetector over a batch of one symbol's windows that follow its history (the last hour)."""

    def __init__(self, detector: SignalDetector) -> None:
        self.detector = detector

    def signals(self, windows: WindowBatch, first: int) -> list[Signal]:
        """The signals of windows[first:] (a batch), judged in order; windows[:first] is the symbol's last hour before.

        Each kind has its own cooldown, so each is walked alone; a window is made an object only where a signal
        is emitted or where its rule is too close to call without the exact judgement."""
        if first >= len(windows):
            return []
        spans = _Spans(windows)
        maybe, surely = self._candidates(spans, first)
        lazy = _Lazy(spans)
        ends = windows.window_end.tolist()
        fired = sorted(
            (i, order, finding) for order, kind in enumerate(DETECTORS)
            for i, finding in self._fired(kind, maybe[kind], surely[kind], ends, lazy)
        )
        kinds = list(DETECTORS)
        lazy.load(sorted({i for i, _, _ in fired}))
        for span, users in SPANS_USED.items():
            lazy.load_summaries([i for i, order, _ in fired if kinds[order] in users], span)
        out = []
        for i, order, known in fired:
            window, kind = lazy.window(i), kinds[order]
            finding = known or DETECTORS[kind](window, lazy.flows(i), self.detector.thresholds)
            if finding is None:
                raise RuntimeError(f"{window.symbol} {kind} at {window.window_start}: a sure window did not fire")
            out.append(self.detector.signal(window, kind, finding))
        return out

    def _fired(
        self, kind: str, maybe: list[int], surely: set[int], ends: list[int], lazy: _Lazy
    ) -> Iterator[tuple[int, Finding | None]]:
        """The windows where `kind` emits after its cooldown, with the finding where it had to be judged already."""
        detector = self.detector
        key = (lazy.spans.windows.symbol, kind)
        last = detector.last_emitted.get(key)
        for i in maybe:
            finding = None
            if i not in surely:
                finding = DETECTORS[kind](lazy.window(i), lazy.flows(i), detector.thresholds)
                if finding is None:
                    continue
            if last is not None and ends[i] - last < detector.cooldown_ms:
                detector.suppressed[key] += 1
                continue
            last = ends[i]
            detector.last_emitted[key] = last
            yield i, finding

    def _candidates(self, spans: _Spans, first: int) -> tuple[dict[str, list[int]], dict[str, set[int]]]:
        """Per kind, the batch windows (indexes into history + batch, in order) whose exact rule could fire, and
        those whose rule surely fires (clear of the margin)."""
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
            {kind: np.flatnonzero(mask & batch).tolist() for kind, mask in maybe.items()},
            {kind: set(np.flatnonzero(mask & batch).tolist()) for kind, mask in surely.items()},
        )
