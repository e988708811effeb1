"""Trade bursts: a window with several times the symbol's usual trade rate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import numpy as np

from core.events import Direction, SignalKind
from core.features import WindowFeatures
from engine.signals.amounts import direction_of, ladder
from engine.signals.flows import Flows
from engine.signals.kind import FactFormat, Finding, KindSpec, Wording
from engine.signals.span_sums import SpanSums
from engine.signals.thresholds import SignalThresholds


class BurstEvidence(TypedDict):
    burst_ratio: float
    trade_count: int
    burst_severity_2: float


def rule(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """The window is a trade burst; direction from its delta, severity up at burst_severity_2 and twice it."""
    if not w.burst:
        return None
    return Finding(
        direction=direction_of(w.delta, 0),  # the sign of the window's delta
        severity=ladder(w.burst_ratio, t.burst_severity_2, 2 * t.burst_severity_2),
        evidence=BurstEvidence(burst_ratio=w.burst_ratio, trade_count=w.trade_count,
                               burst_severity_2=t.burst_severity_2),
    )


def pre_filter(sums: SpanSums, t: SignalThresholds, margin: float) -> np.ndarray:
    """The rule itself, on columns: the window alone decides."""
    return sums.windows.burst


def facts(e: Mapping[str, Any], direction: Direction, say: FactFormat) -> dict[str, Any]:
    return {"trades": say.number(e["trade_count"]), "ratio": say.number(e["burst_ratio"], 1)}


# The move each direction implies, said in the alert.
EN_MEANING = {
    "buy": "a burst of buying: bullish",
    "sell": "a burst of selling: bearish",
    "neutral": "a burst with no side: no move implied",
}
PT_MEANING = {
    "buy": "uma rajada de compras: altista",
    "sell": "uma rajada de vendas: baixista",
    "neutral": "uma rajada sem lado: sem movimento implícito",
}


KIND = KindSpec(
    name=SignalKind("burst"),
    order=20,
    doc="a window with several times the symbol's usual trade rate (BURST_FACTOR)",
    rule=rule,
    pre_filter=pre_filter,
    thresholds=("burst_severity_2",),
    wording={
        "en": Wording("Trade burst", "{trades} trades in the window, {ratio}x the usual rate",
                      EN_MEANING),
        "pt": Wording("Rajada de negócios", "{trades} negócios na janela, {ratio}x o ritmo habitual",
                      PT_MEANING),
    },
    facts=facts,
    offline="a burst of trades",
)
