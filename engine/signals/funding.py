"""Funding extremes, judged on each USD-M window's last mark price update: the funding rate against the symbol's
own range (a sample a minute over the last three days), firing when it goes beyond it and re-arming when it is back."""

from __future__ import annotations

import math
from collections import deque

from core.events import Direction
from core.features import PRICE_SCALE
from engine.signals.amounts import dec
from engine.signals.kind import Finding
from engine.signals.kinds.funding_extreme import FundingExtremeEvidence
from engine.signals.thresholds import SignalThresholds

SAMPLE_MS = 60_000  # the first funding value of each minute of market time is a sample
HISTORY_MS = 3 * 86_400_000


class FundingExtremes:
    """Each symbol's funding samples, the bounds read from them, and which extreme it is in now."""

    def __init__(self, thresholds: SignalThresholds) -> None:
        self.t = thresholds
        self.samples: dict[str, deque[tuple[int, int]]] = {}  # symbol -> (window end, rate 1e-8), oldest first
        self.bounds: dict[str, tuple[int, int] | None] = {}  # symbol -> (low, high) from the samples before now
        self.extreme: dict[str, Direction | None] = {}
        self.floor = int(dec(thresholds.funding_extreme_min_pct) * PRICE_SCALE / 100)

    def judge(self, symbol: str, window_end: int, rate: int | None) -> Finding | None:
        if rate is None:
            return None
        bounds = self.bounds.get(symbol)
        self._sample(symbol, window_end, rate)
        if bounds is None:
            return None
        low, high = bounds
        direction = (Direction.SELL if rate > high and rate >= self.floor
                     else Direction.BUY if rate < low and rate <= -self.floor else None)
        previous, self.extreme[symbol] = self.extreme.get(symbol), direction
        if direction is None or direction == previous:
            return None  # within the range, or still in the extreme it already signalled
        bound = high if direction == Direction.SELL else low
        percentile = self.t.funding_extreme_percentile
        return Finding(
            direction=direction,
            severity=1 + (abs(rate) >= 2 * self.floor) + (abs(rate) >= 4 * self.floor),
            evidence=FundingExtremeEvidence(
                funding_rate_pct=rate * 100 / PRICE_SCALE, bound_pct=bound * 100 / PRICE_SCALE,
                percentile=percentile if direction == Direction.SELL else 100 - percentile,
                samples=len(self.samples[symbol]) - 1,
            ),
        )

    def add_history(self, symbol: str, settlements: list[tuple[int, int]]) -> None:
        """Settled rates (time ms, rate 1e-8) of a fundingRate dump: samples of the symbol's range like the others."""
        samples = self.samples.setdefault(symbol, deque())
        merged = sorted({*samples, *settlements})
        samples.clear()
        samples.extend(merged)
        if samples:
            self._bound(symbol, samples[-1][0])

    def _sample(self, symbol: str, window_end: int, rate: int) -> None:
        samples = self.samples.setdefault(symbol, deque())
        if samples and samples[-1][0] // SAMPLE_MS >= window_end // SAMPLE_MS:
            return  # this minute has its sample (a window judged again adds nothing)
        samples.append((window_end, rate))
        self._bound(symbol, window_end)

    def _bound(self, symbol: str, now: int) -> None:
        samples = self.samples[symbol]
        while samples and samples[0][0] < now - HISTORY_MS:
            samples.popleft()
        if len(samples) < self.t.funding_extreme_min_history:
            self.bounds[symbol] = None
            return
        values = sorted(value for _, value in samples)
        n, p = len(values), self.t.funding_extreme_percentile
        high = values[max(1, math.ceil(p / 100 * n)) - 1]  # nearest rank
        low = values[max(1, math.ceil((100 - p) / 100 * n)) - 1]
        self.bounds[symbol] = (low, high)
