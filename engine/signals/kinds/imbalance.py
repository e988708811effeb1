"""Net-flow imbalance: one side takes most of the last minute's volume over enough trades."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypedDict

import numpy as np

from core.events import Direction, SignalKind
from core.features import WindowFeatures
from engine.signals.amounts import dec, ladder, price, ratio
from engine.signals.flows import Flows
from engine.signals.kind import FactFormat, Finding, KindSpec, Wording
from engine.signals.span_sums import SpanSums
from engine.signals.thresholds import SignalThresholds

NEAR_TOTAL_SHARE = Decimal("0.95")  # a share at or above this is severity 3


class ImbalanceEvidence(TypedDict):
    share: float
    buy_share: float
    sell_share: float
    volume_1m: float
    trade_count_1m: int
    imbalance_ratio: float
    imbalance_min_trades: int


def rule(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """One side has >= imbalance_ratio of the last 1m volume over >= imbalance_min_trades trades."""
    m = flows.minute
    if m is None or not m.volume or m.trade_count < t.imbalance_min_trades:
        return None
    buy_share = Decimal(m.buy_volume) / Decimal(m.volume)
    sell_share = Decimal(m.sell_volume) / Decimal(m.volume)
    share, direction = (buy_share, Direction.BUY) if buy_share >= sell_share else (sell_share, Direction.SELL)
    least = dec(t.imbalance_ratio)
    if share < least:
        return None
    return Finding(
        direction=direction,
        severity=ladder(share, (1 + least) / 2, NEAR_TOTAL_SHARE),
        evidence=ImbalanceEvidence(
            share=ratio(share),
            buy_share=ratio(buy_share),
            sell_share=ratio(sell_share),
            volume_1m=price(m.volume),
            trade_count_1m=m.trade_count,
            imbalance_ratio=t.imbalance_ratio,
            imbalance_min_trades=t.imbalance_min_trades,
        ),
    )


def pre_filter(sums: SpanSums, t: SignalThresholds, margin: float) -> np.ndarray:
    volume = sums.total("volume", "1m")
    return (
        (volume > 0) & (sums.total("trade_count", "1m") >= t.imbalance_min_trades)
        & (sums.heavy_share("1m") >= t.imbalance_ratio - margin)
    )


def facts(e: Mapping[str, Any], direction: Direction, say: FactFormat) -> dict[str, Any]:
    return {"side": say.side("buyers" if direction == "buy" else "sellers"), "share": say.percent(e["share"]),
            "volume": say.number(e["volume_1m"], 4), "trades": say.number(e["trade_count_1m"])}


# The move each direction implies, said in the alert.
EN_MEANING = {
    "buy": "buyers dominate the flow: bullish",
    "sell": "sellers dominate the flow: bearish",
}
PT_MEANING = {
    "buy": "compradores dominam o fluxo: altista",
    "sell": "vendedores dominam o fluxo: baixista",
}


KIND = KindSpec(
    name=SignalKind("imbalance"),
    order=30,
    doc="one side takes most of the last minute's volume, over enough trades",
    rule=rule,
    pre_filter=pre_filter,
    spans=("1m",),
    thresholds=("imbalance_ratio", "imbalance_min_trades"),
    wording={
        "en": Wording("Flow imbalance", "{side} {share}% of the last minute's volume ({volume}, {trades} trades)",
                      EN_MEANING),
        "pt": Wording("Desequilíbrio de fluxo",
                      "{side} {share}% do volume do último minuto ({volume}, {trades} negócios)",
                      PT_MEANING),
    },
    facts=facts,
    offline="one-sided flow",
)
