"""Open interest shifts, judged on each USD-M trade window with the open interest known at its end: the change over
the last 15 minutes against the symbol's own norm (a sample a minute of such changes over the last day), read with
the price and the aggressive flow of the same span; raised on entering, re-armed when the change is back under."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from core.events import Direction
from core.features import WindowFeatures
from engine.signals.amounts import dec, ladder, price, ratio
from engine.signals.kind import Finding
from engine.signals.kinds.oi_shift import OiShiftEvidence
from engine.signals.thresholds import SignalThresholds

SPAN_MS = 900_000
SAMPLE_MS = 60_000
HISTORY_MS = 86_400_000
SHIFTS = {  # (open interest up, price up) -> what moved, and the move it implies
    (True, True): ("new longs", Direction.BUY),
    (True, False): ("new shorts", Direction.SELL),
    (False, True): ("short squeeze", Direction.BUY),
    (False, False): ("long flush", Direction.SELL),
}


@dataclass(slots=True)
class _Point:
    end: int
    open_interest: int
    close: int
    flow: int  # the running sum of the windows' deltas


class OpenInterestShifts:
    """Each symbol's recent windows (with open interest and a trade price) and its day of 15-minute changes."""

    def __init__(self, thresholds: SignalThresholds) -> None:
        self.t = thresholds
        self.points: dict[str, deque[_Point]] = {}
        self.flow: dict[str, int] = {}
        self.changes: dict[str, deque[tuple[int, Decimal]]] = {}  # symbol -> (end, |change %|), a sample a minute
        self.shifted: dict[str, bool] = {}
        self.history: dict[str, dict[int, int]] = {}  # symbol -> time -> open interest, known before its windows

    def add_history(self, symbol: str, values: list[tuple[int, int]]) -> None:
        """Open interest known before the symbol's first window (the REST history at start, a metrics dump): its
        15-minute changes become the norm's samples at once, instead of after OI_SHIFT_MIN_HISTORY minutes."""
        if symbol in self.points:
            return  # judging has begun: the windows give the samples from now on
        series = self.history.setdefault(symbol, {})
        series.update(values)
        times = sorted(series)
        newest = times[-1]
        samples = []
        for at in times:
            then = series.get(at - SPAN_MS)
            if then and at >= newest - HISTORY_MS:
                samples.append((at, abs(Decimal((series[at] - then) * 100) / Decimal(then))))
        self.changes[symbol] = deque(samples)

    def judge(self, w: WindowFeatures) -> Finding | None:
        if w.open_interest is None or not w.trade_count or w.close <= 0:
            return None
        self.history.pop(w.symbol, None)
        points = self.points.setdefault(w.symbol, deque())
        if points and points[-1].end >= w.window_end:
            return None  # a window judged again (its futures data rewritten)
        flow = self.flow[w.symbol] = self.flow.get(w.symbol, 0) + w.delta
        points.append(_Point(w.window_end, w.open_interest, w.close, flow))
        while len(points) > 1 and points[1].end <= w.window_end - SPAN_MS:
            points.popleft()
        then = points[0]
        if then.end > w.window_end - SPAN_MS or not then.open_interest:
            return None  # less than the span seen yet
        change = Decimal((w.open_interest - then.open_interest) * 100) / Decimal(then.open_interest)
        norm = self._norm(w.symbol, w.window_end, abs(change))
        threshold = max(dec(self.t.oi_shift_min_pct), norm * dec(self.t.oi_shift_multiple)) if norm is not None \
            else None
        shifted = threshold is not None and abs(change) >= threshold
        was, self.shifted[w.symbol] = self.shifted.get(w.symbol, False), shifted
        if not shifted or was or threshold is None or norm is None:
            return None
        price_change = Decimal((w.close - then.close) * 100) / Decimal(then.close)
        delta = flow - then.flow
        label, direction = SHIFTS[(change > 0, price_change > 0)]
        if change > 0 and (delta > 0) != (price_change > 0):
            return None  # positions opened, but the aggressive flow disagrees with the price: no side to name
        return Finding(
            direction=direction,
            severity=ladder(abs(change), 2 * threshold, 4 * threshold),
            evidence=OiShiftEvidence(
                shift=label, oi_change_pct=ratio(change), price_change_pct=ratio(price_change), delta=price(delta),
                norm_pct=ratio(norm), span_minutes=SPAN_MS // 60_000,
            ),
        )

    def _norm(self, symbol: str, end: int, change: Decimal) -> Decimal | None:
        """The percentile of the symbol's earlier samples (None: too few); this window becomes a sample if it is
        the first of its minute."""
        changes = self.changes.setdefault(symbol, deque())
        seen = sorted(value for _, value in changes)
        norm = None
        if len(seen) >= self.t.oi_shift_min_history:
            norm = seen[max(1, math.ceil(self.t.oi_shift_percentile / 100 * len(seen))) - 1]
        if not changes or changes[-1][0] // SAMPLE_MS < end // SAMPLE_MS:
            changes.append((end, change))
            while changes[0][0] < end - HISTORY_MS:
                changes.popleft()
        return norm
