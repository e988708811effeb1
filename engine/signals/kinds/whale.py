"""Whale trades: at least one trade at or above the whale threshold in the window."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict

import numpy as np

from core.events import Direction, SignalKind
from core.features import WindowFeatures
from engine.signals.amounts import direction_of, ladder, quote
from engine.signals.flows import Flows
from engine.signals.kind import FactFormat, Finding, KindSpec, Wording
from engine.signals.span_sums import SpanSums
from engine.signals.thresholds import SignalThresholds


class WhaleEvidence(TypedDict):
    whale_count: int
    whale_buy_quote: float
    whale_sell_quote: float
    whale_threshold_quote: float
    whale_cluster: int


def rule(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """At least one whale trade in the window; severity up at whale_cluster and at twice it."""
    if w.whale_count < 1:
        return None
    return Finding(
        direction=direction_of(w.whale_buy_quote, w.whale_sell_quote),
        severity=ladder(w.whale_count, t.whale_cluster, 2 * t.whale_cluster),
        evidence=WhaleEvidence(
            whale_count=w.whale_count,
            whale_buy_quote=quote(w.whale_buy_quote),
            whale_sell_quote=quote(w.whale_sell_quote),
            whale_threshold_quote=quote(w.whale_threshold),
            whale_cluster=t.whale_cluster,
        ),
    )


def pre_filter(sums: SpanSums, t: SignalThresholds, margin: float) -> np.ndarray:
    """The rule itself, on columns: the window alone decides."""
    return sums.windows.whale_count > 0


def facts(e: Mapping[str, Any], direction: Direction, say: FactFormat) -> dict[str, Any]:
    return {"count": e["whale_count"], "buy": say.number(e["whale_buy_quote"]),
            "sell": say.number(e["whale_sell_quote"]), "threshold": say.number(e["whale_threshold_quote"])}


def offline_detail(e: Mapping[str, Any], number: Callable[[Any], str]) -> str | None:
    if "whale_count" not in e:
        return None
    return (f"{e['whale_count']} whale trade(s): buys {number(e['whale_buy_quote'])}, "
            f"sells {number(e['whale_sell_quote'])} in quote value.")


# The move each direction implies, said in the alert.
EN_MEANING = {
    "buy": "whales bought more than they sold: bullish",
    "sell": "whales sold more than they bought: bearish",
    "neutral": "whales bought and sold alike: no side implied",
}
PT_MEANING = {
    "buy": "baleias compraram mais do que venderam: altista",
    "sell": "baleias venderam mais do que compraram: baixista",
    "neutral": "baleias compraram e venderam por igual: sem lado",
}


KIND = KindSpec(
    name=SignalKind("whale"),
    order=10,
    doc="at least one trade at or above the whale threshold in the window",
    rule=rule,
    pre_filter=pre_filter,
    thresholds=("whale_cluster",),
    wording={
        "en": Wording("Whale trades",
                      "{count} whale trade(s): bought {buy} / sold {sell} (quote), threshold {threshold}",
                      EN_MEANING),
        "pt": Wording("Negócios de baleia",
                      "{count} negócio(s) de baleia: compras {buy} / vendas {sell} (cotação), limiar {threshold}",
                      PT_MEANING),
    },
    facts=facts,
    offline="whale trades",
    offline_detail=offline_detail,
)
