"""Signal detection: rules over a closed window and its symbol context that turn order flow into alerts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.events import Signal
from core.features import PRICE_SCALE, QUOTE_SCALE, WindowFeatures
from engine.analysis.context import CONTEXT_SPANS, FlowSummary, SymbolContext, summarize

NEAR_TOTAL_SHARE = Decimal("0.95")  # an imbalance share at or above this is severity 3
EXACT_DECIMALS = 10**28  # integers below this divide exactly at Decimal's default precision (28 digits)
_QUOTE_TO_PRICE = QUOTE_SCALE // PRICE_SCALE


@dataclass(frozen=True)
class SignalThresholds:
    """The numbers the detectors compare against; the caller builds it from settings."""

    whale_cluster: int = 3
    burst_severity_2: float = 5.0
    imbalance_ratio: float = 0.75
    imbalance_min_trades: int = 50
    divergence_min_price_pct: float = 0.1
    divergence_min_delta_share: float = 0.2
    absorption_min_share: float = 0.7
    absorption_max_price_pct: float = 0.02
    absorption_min_volume_ratio: float = 3.0
    cooldown_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Finding:
    """What a detector found before cooldown and packaging: direction, severity and its own evidence."""

    direction: str
    severity: int
    evidence: dict[str, Any]


class Flows:
    """The summaries a window is judged against, each ending at that window's end (None without data).

    Each is computed on first use: most windows are judged by detectors that need none of them."""

    def __init__(self, summary: Callable[[str], FlowSummary | None]) -> None:
        self._summary = summary
        self._known: dict[str, FlowSummary | None] = {}

    def _get(self, span: str) -> FlowSummary | None:
        if span not in self._known:
            self._known[span] = self._summary(span)
        return self._known[span]

    @property
    def minute(self) -> FlowSummary | None:
        return self._get("1m")

    @property
    def five(self) -> FlowSummary | None:
        return self._get("5m")

    @property
    def hour(self) -> FlowSummary | None:
        return self._get("1h")


def _dec(value: float) -> Decimal:
    """A threshold as the Decimal it reads as (0.7 -> Decimal('0.7'), not the binary float)."""
    return Decimal(str(value))


def _price(value: int | Decimal) -> float:
    """A 1e-8 scaled amount (price, volume, delta, cvd) as a float, to 1e-8."""
    if isinstance(value, int) and abs(value) < EXACT_DECIMALS:
        return value / PRICE_SCALE  # already to 1e-8; int / int rounds to the nearest float, as float(Decimal) does
    return float((Decimal(value) / PRICE_SCALE).quantize(Decimal("1e-8")))


def _quote(value: int) -> float:
    """A 1e-16 scaled quote amount as a float, to 1e-8."""
    if 0 <= value < EXACT_DECIMALS:  # the Decimal quotient is exact: round it half to even in integers instead
        units, rest = divmod(value, _QUOTE_TO_PRICE)
        units += 2 * rest > _QUOTE_TO_PRICE or (2 * rest == _QUOTE_TO_PRICE and units & 1)
        return units / PRICE_SCALE
    return float((Decimal(value) / QUOTE_SCALE).quantize(Decimal("1e-8")))


def _ratio(value: Decimal) -> float:
    """A computed ratio, share or percent as a float, to 1e-6."""
    return float(value.quantize(Decimal("1e-6")))


def _pct_change(flow: FlowSummary) -> Decimal:
    """Exact percent change from the span's first open to its last close (0 without an open)."""
    if not flow.open:
        return Decimal(0)
    return Decimal(flow.close - flow.open) * 100 / Decimal(flow.open)


def _ladder(value: Decimal | float, level_2: Decimal | float, level_3: Decimal | float) -> int:
    """Severity 3 at or above level_3, 2 at or above level_2, else 1."""
    if value >= level_3:
        return 3
    if value >= level_2:
        return 2
    return 1


def _direction(buy: int, sell: int) -> str:
    """buy if buy > sell, sell if sell > buy, neutral if equal."""
    if buy > sell:
        return "buy"
    if sell > buy:
        return "sell"
    return "neutral"


def detect_whale(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """At least one whale trade in the window; severity up at whale_cluster and at twice it."""
    if w.whale_count < 1:
        return None
    return Finding(
        direction=_direction(w.whale_buy_quote, w.whale_sell_quote),
        severity=_ladder(w.whale_count, t.whale_cluster, 2 * t.whale_cluster),
        evidence={
            "whale_count": w.whale_count,
            "whale_buy_quote": _quote(w.whale_buy_quote),
            "whale_sell_quote": _quote(w.whale_sell_quote),
            "whale_threshold_quote": _quote(w.whale_threshold),
            "whale_cluster": t.whale_cluster,
        },
    )


def detect_burst(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """The window is a trade burst; direction from its delta, severity up at burst_severity_2 and twice it."""
    if not w.burst:
        return None
    return Finding(
        direction=_direction(w.delta, 0),  # the sign of the window's delta
        severity=_ladder(w.burst_ratio, t.burst_severity_2, 2 * t.burst_severity_2),
        evidence={
            "burst_ratio": w.burst_ratio,
            "trade_count": w.trade_count,
            "burst_severity_2": t.burst_severity_2,
        },
    )


def detect_imbalance(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """One side has >= imbalance_ratio of the last 1m volume over >= imbalance_min_trades trades."""
    m = flows.minute
    if m is None or not m.volume or m.trade_count < t.imbalance_min_trades:
        return None
    buy_share = Decimal(m.buy_volume) / Decimal(m.volume)
    sell_share = Decimal(m.sell_volume) / Decimal(m.volume)
    share, direction = (buy_share, "buy") if buy_share >= sell_share else (sell_share, "sell")
    ratio = _dec(t.imbalance_ratio)
    if share < ratio:
        return None
    return Finding(
        direction=direction,
        severity=_ladder(share, (1 + ratio) / 2, NEAR_TOTAL_SHARE),
        evidence={
            "share": _ratio(share),
            "buy_share": _ratio(buy_share),
            "sell_share": _ratio(sell_share),
            "volume_1m": _price(m.volume),
            "trade_count_1m": m.trade_count,
            "imbalance_ratio": t.imbalance_ratio,
            "imbalance_min_trades": t.imbalance_min_trades,
        },
    )


def detect_cvd_divergence(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """Over 5m, price moves >= divergence_min_price_pct one way while delta/volume <= -min share the other."""
    f = flows.five
    if f is None or not f.volume:
        return None
    pct = _pct_change(f)
    share = Decimal(f.delta) / Decimal(f.volume)
    min_pct, min_share = _dec(t.divergence_min_price_pct), _dec(t.divergence_min_delta_share)
    if pct >= min_pct and share <= -min_share:
        direction = "sell"
    elif pct <= -min_pct and share >= min_share:
        direction = "buy"
    else:
        return None

    def both_reach(multiple: int) -> bool:
        return abs(pct) >= multiple * min_pct and abs(share) >= multiple * min_share

    return Finding(
        direction=direction,
        severity=3 if both_reach(4) else 2 if both_reach(2) else 1,
        evidence={
            "price_change_pct_5m": _ratio(pct),
            "delta_share_5m": _ratio(share),
            "delta_5m": _price(f.delta),
            "volume_5m": _price(f.volume),
            "divergence_min_price_pct": t.divergence_min_price_pct,
            "divergence_min_delta_share": t.divergence_min_delta_share,
        },
    )


ABSORPTION_MIN_HISTORY_MS = 15 * 60_000  # the hour's mean means little over a shorter history


def detect_absorption(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """One side >= absorption_min_share of 1m volume, price flat, 1m volume >= N x the 1h mean per minute."""
    m = flows.minute
    if m is None or not m.volume:
        return None
    buy_share = Decimal(m.buy_volume) / Decimal(m.volume)
    sell_share = Decimal(m.sell_volume) / Decimal(m.volume)
    pct = _pct_change(m)
    if max(buy_share, sell_share) < _dec(t.absorption_min_share) or abs(pct) > _dec(t.absorption_max_price_pct):
        return None  # decided by the minute alone: the hour is not needed
    h = flows.hour
    if h is None or not h.volume or h.end - h.first_start < ABSORPTION_MIN_HISTORY_MS:
        return None
    mean_per_minute = Decimal(h.volume) * 60_000 / Decimal(h.end - h.first_start)  # over the time data covers
    volume_ratio = Decimal(m.volume) / mean_per_minute
    min_ratio = _dec(t.absorption_min_volume_ratio)
    share = max(buy_share, sell_share)
    if share < _dec(t.absorption_min_share) or abs(pct) > _dec(t.absorption_max_price_pct) or volume_ratio < min_ratio:
        return None
    return Finding(
        # The heavy side is being absorbed by the other: selling held by buyers is "buy", and vice versa.
        direction=_direction(m.sell_volume, m.buy_volume),
        severity=_ladder(volume_ratio, 2 * min_ratio, 4 * min_ratio),
        evidence={
            "buy_share_1m": _ratio(buy_share),
            "sell_share_1m": _ratio(sell_share),
            "price_change_pct_1m": _ratio(pct),
            "volume_1m": _price(m.volume),
            "mean_volume_per_minute_1h": _price(mean_per_minute),
            "volume_ratio": _ratio(volume_ratio),
            "windows_1h": h.windows,
            "absorption_min_share": t.absorption_min_share,
            "absorption_max_price_pct": t.absorption_max_price_pct,
            "absorption_min_volume_ratio": t.absorption_min_volume_ratio,
        },
    )


Detector = Callable[[WindowFeatures, Flows, SignalThresholds], Finding | None]
DETECTORS: dict[str, Detector] = {
    "whale": detect_whale,
    "burst": detect_burst,
    "imbalance": detect_imbalance,
    "cvd_divergence": detect_cvd_divergence,
    "absorption": detect_absorption,
}


class SignalDetector:
    """Runs every detector on each closed window, with a per (symbol, kind) cooldown in data time."""

    def __init__(self, thresholds: SignalThresholds, clock: Callable[[], float] = time.time) -> None:
        self.thresholds = thresholds
        self.clock = clock
        self.cooldown_ms = int(thresholds.cooldown_s * 1000)
        self.last_emitted: dict[tuple[str, str], int] = {}  # (symbol, kind) -> window_end of the last signal
        self.suppressed: Counter[tuple[str, str]] = Counter()

    def detect(self, features: WindowFeatures, context: SymbolContext) -> list[Signal]:
        """The signals of a window; call after `context.add(features)`."""
        return self.judge(features, _flows(features, context), DETECTORS)

    def judge(self, features: WindowFeatures, flows: Flows, kinds: Iterable[str]) -> list[Signal]:
        """The signals of a window from the detectors of `kinds` (in DETECTORS order), after cooldown."""
        signals = []
        for kind in kinds:
            finding = DETECTORS[kind](features, flows, self.thresholds)
            if finding is not None and self._cooled_down(features, kind):
                signals.append(self.signal(features, kind, finding))
        return signals

    def cooling(self, symbol: str, kind: str, window_end: int) -> bool:
        """True while a signal of this symbol and kind would be held back at window_end."""
        last = self.last_emitted.get((symbol, kind))
        return last is not None and window_end - last < self.cooldown_ms

    def _cooled_down(self, features: WindowFeatures, kind: str) -> bool:
        """Record an emission and answer True, unless the last one was < cooldown_s of data time ago (counted)."""
        key = (features.symbol, kind)
        last = self.last_emitted.get(key)
        if last is not None and features.window_end - last < self.cooldown_ms:
            self.suppressed[key] += 1
            return False
        self.last_emitted[key] = features.window_end
        return True

    def signal(self, w: WindowFeatures, kind: str, finding: Finding) -> Signal:
        """The Signal event of a finding, with the window's close, delta and cvd added to its evidence."""
        evidence = {**finding.evidence, "close": _price(w.close), "delta": _price(w.delta), "cvd": _price(w.cvd)}
        return Signal(
            id=f"{w.symbol}-{kind}-{w.window_start}",
            symbol=w.symbol,
            kind=kind,
            direction=finding.direction,
            severity=finding.severity,
            window_start=w.window_start,
            window_end=w.window_end,
            evidence=evidence,
            created_at=self.clock(),
        )


def _flows(features: WindowFeatures, context: SymbolContext) -> Flows:
    """The 1m, 5m and 1h summaries ending at this window's end (so a corrected older window is judged as of then)."""
    end = features.window_end

    def span(name: str) -> FlowSummary | None:
        if context.latest is not None and context.latest.window_end == end:
            return context.summary(name)  # the usual case: running sums, no re-summing
        return summarize(context.symbol, name, end - CONTEXT_SPANS[name], end, context.windows)

    return Flows(span)
