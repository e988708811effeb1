"""Absorption: heavy one-sided volume over the last minute that barely moves the price."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypedDict

import numpy as np

from core.events import Direction, SignalKind
from core.features import WindowFeatures
from engine.signals.amounts import dec, direction_of, ladder, pct_change, price, ratio
from engine.signals.flows import Flows
from engine.signals.kind import FactFormat, Finding, KindSpec, Wording
from engine.signals.span_sums import SpanSums
from engine.signals.thresholds import SignalThresholds

MIN_HISTORY_MS = 15 * 60_000  # the hour's mean means little over a shorter history


class AbsorptionEvidence(TypedDict):
    buy_share_1m: float
    sell_share_1m: float
    price_change_pct_1m: float
    volume_1m: float
    mean_volume_per_minute_1h: float
    volume_ratio: float
    windows_1h: int
    absorption_min_share: float
    absorption_max_price_pct: float
    absorption_min_volume_ratio: float


def rule(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """One side >= absorption_min_share of 1m volume, price flat, 1m volume >= N x the 1h mean per minute."""
    m = flows.minute
    if m is None or not m.volume:
        return None
    buy_share = Decimal(m.buy_volume) / Decimal(m.volume)
    sell_share = Decimal(m.sell_volume) / Decimal(m.volume)
    pct = pct_change(m)
    if max(buy_share, sell_share) < dec(t.absorption_min_share) or abs(pct) > dec(t.absorption_max_price_pct):
        return None  # decided by the minute alone: the hour is not needed
    h = flows.hour
    if h is None or not h.volume or h.end - h.first_start < MIN_HISTORY_MS:
        return None
    mean_per_minute = Decimal(h.volume) * 60_000 / Decimal(h.end - h.first_start)  # over the time data covers
    volume_ratio = Decimal(m.volume) / mean_per_minute
    min_ratio = dec(t.absorption_min_volume_ratio)
    share = max(buy_share, sell_share)
    if share < dec(t.absorption_min_share) or abs(pct) > dec(t.absorption_max_price_pct) or volume_ratio < min_ratio:
        return None
    return Finding(
        # The heavy side is being absorbed by the other: selling held by buyers is "buy", and vice versa.
        direction=direction_of(m.sell_volume, m.buy_volume),
        severity=ladder(volume_ratio, 2 * min_ratio, 4 * min_ratio),
        evidence=AbsorptionEvidence(
            buy_share_1m=ratio(buy_share),
            sell_share_1m=ratio(sell_share),
            price_change_pct_1m=ratio(pct),
            volume_1m=price(m.volume),
            mean_volume_per_minute_1h=price(mean_per_minute),
            volume_ratio=ratio(volume_ratio),
            windows_1h=h.windows,
            absorption_min_share=t.absorption_min_share,
            absorption_max_price_pct=t.absorption_max_price_pct,
            absorption_min_volume_ratio=t.absorption_min_volume_ratio,
        ),
    )


def pre_filter(sums: SpanSums, t: SignalThresholds, margin: float) -> np.ndarray:
    volume, hour_volume, covered = sums.total("volume", "1m"), sums.total("volume", "1h"), sums.covered("1h")
    mean_per_minute = hour_volume * 60_000.0 / np.maximum(covered, 1)
    return (
        (volume > 0) & (hour_volume > 0) & (covered >= MIN_HISTORY_MS)
        & (sums.heavy_share("1m") >= t.absorption_min_share - margin)
        & (np.abs(sums.pct_change("1m")) <= t.absorption_max_price_pct + margin)
        & (volume >= t.absorption_min_volume_ratio * mean_per_minute * (1 - margin))
    )


def facts(e: Mapping[str, Any], direction: Direction, say: FactFormat) -> dict[str, Any]:
    heavy = "sellers" if direction == "buy" else "buyers"
    share = e["sell_share_1m"] if direction == "buy" else e["buy_share_1m"]
    return {"side": say.side(heavy), "share": say.percent(share), "pct": say.number(e["price_change_pct_1m"], 3),
            "ratio": say.number(e["volume_ratio"], 1)}


# The move each direction implies, said in the alert.
EN_MEANING = {
    "buy": "absorption of selling: buyers are absorbing, bullish",
    "sell": "absorption of buying: sellers are absorbing, bearish",
}
PT_MEANING = {
    "buy": "absorção de vendas: compradores absorvem, altista",
    "sell": "absorção de compras: vendedores absorvem, baixista",
}


KIND = KindSpec(
    name=SignalKind("absorption"),
    order=50,
    doc="heavy one-sided volume over the last minute that barely moves the price",
    rule=rule,
    pre_filter=pre_filter,
    spans=("1m", "1h"),
    thresholds=("absorption_min_share", "absorption_max_price_pct", "absorption_min_volume_ratio"),
    wording={
        "en": Wording("Absorption", "{side} {share}% of 1m volume, price {pct}%, volume {ratio}x the hourly mean",
                      EN_MEANING),
        "pt": Wording("Absorção", "{side} {share}% do volume de 1m, preço {pct}%, volume {ratio}x a média horária",
                      PT_MEANING),
    },
    facts=facts,
    offline="absorption: heavy one-sided volume with little price move",
)
