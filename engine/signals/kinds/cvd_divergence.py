"""CVD divergence: over five minutes, price moves one way while the delta leans the other."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypedDict

import numpy as np

from core.events import Direction, SignalKind
from core.features import WindowFeatures
from engine.signals.amounts import dec, pct_change, price, ratio
from engine.signals.flows import Flows
from engine.signals.kind import FactFormat, Finding, KindSpec, Wording
from engine.signals.span_sums import SpanSums
from engine.signals.thresholds import SignalThresholds


class CvdDivergenceEvidence(TypedDict):
    price_change_pct_5m: float
    delta_share_5m: float
    delta_5m: float
    volume_5m: float
    divergence_min_price_pct: float
    divergence_min_delta_share: float


def rule(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """Over 5m, price moves >= divergence_min_price_pct one way while delta/volume <= -min share the other."""
    f = flows.five
    if f is None or not f.volume:
        return None
    pct = pct_change(f)
    share = Decimal(f.delta) / Decimal(f.volume)
    min_pct, min_share = dec(t.divergence_min_price_pct), dec(t.divergence_min_delta_share)
    if pct >= min_pct and share <= -min_share:
        direction = Direction.SELL
    elif pct <= -min_pct and share >= min_share:
        direction = Direction.BUY
    else:
        return None

    def both_reach(multiple: int) -> bool:
        return abs(pct) >= multiple * min_pct and abs(share) >= multiple * min_share

    return Finding(
        direction=direction,
        severity=3 if both_reach(4) else 2 if both_reach(2) else 1,
        evidence=CvdDivergenceEvidence(
            price_change_pct_5m=ratio(pct),
            delta_share_5m=ratio(share),
            delta_5m=price(f.delta),
            volume_5m=price(f.volume),
            divergence_min_price_pct=t.divergence_min_price_pct,
            divergence_min_delta_share=t.divergence_min_delta_share,
        ),
    )


def pre_filter(sums: SpanSums, t: SignalThresholds, margin: float) -> np.ndarray:
    volume = sums.total("volume", "5m")
    pct, share = sums.pct_change("5m"), sums.total("delta", "5m") / np.maximum(volume, 1)
    min_pct, min_share = t.divergence_min_price_pct, t.divergence_min_delta_share
    return (volume > 0) & (
        ((pct >= min_pct - margin) & (share <= -min_share + margin))
        | ((pct <= -min_pct + margin) & (share >= min_share - margin))
    )


def facts(e: Mapping[str, Any], direction: Direction, say: FactFormat) -> dict[str, Any]:
    return {"pct": say.number(e["price_change_pct_5m"], 3), "share": say.percent(e["delta_share_5m"]),
            "delta": say.number(e["delta_5m"], 4)}


# The move each direction implies, said in the alert.
EN_MEANING = {
    "buy": "price fell while buyers led: a bullish reversal",
    "sell": "price rose while sellers led: a bearish reversal",
}
PT_MEANING = {
    "buy": "o preço caiu enquanto compradores lideravam: reversão altista",
    "sell": "o preço subiu enquanto vendedores lideravam: reversão baixista",
}


KIND = KindSpec(
    name=SignalKind("cvd_divergence"),
    order=40,
    doc="over 5 minutes, price moves one way while the delta leans the other",
    rule=rule,
    pre_filter=pre_filter,
    spans=("5m",),
    thresholds=("divergence_min_price_pct", "divergence_min_delta_share"),
    wording={
        "en": Wording("CVD divergence", "price {pct}% over 5m while delta is {share}% of volume ({delta})",
                      EN_MEANING),
        "pt": Wording("Divergência de CVD", "preço {pct}% em 5m enquanto o delta é {share}% do volume ({delta})",
                      PT_MEANING),
    },
    facts=facts,
    offline="price and CVD diverging",
)
