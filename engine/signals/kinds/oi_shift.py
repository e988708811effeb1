"""Open interest shifting (USD-M): the last 15 minutes' change of open interest far beyond the symbol's own norm,
read together with price and CVD: new longs, new shorts, a short squeeze or a long flush. Judged by
engine.signals.open_interest on each window's open interest, not by the trade-window rules: its `rule` never fires."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from core.events import Direction, SignalKind
from core.features import WindowFeatures
from engine.signals.flows import Flows
from engine.signals.kind import FactFormat, Finding, KindSpec, Wording
from engine.signals.thresholds import SignalThresholds


class OiShiftEvidence(TypedDict):
    shift: str  # "new longs", "new shorts", "short squeeze" or "long flush"
    oi_change_pct: float  # over the span, in percent
    price_change_pct: float
    delta: float  # aggressive buy minus sell volume over the span (base units)
    norm_pct: float  # the symbol's own percentile of such changes (absolute) over the last day
    span_minutes: int


def rule(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """Trade windows alone never show open interest (see engine.signals.open_interest)."""
    return None


def facts(e: Mapping[str, Any], direction: Direction, say: FactFormat) -> dict[str, Any]:
    return {"shift": e["shift"], "oi": say.number(e["oi_change_pct"], 2), "price": say.number(e["price_change_pct"], 2),
            "delta": say.number(e["delta"], 4), "norm": say.number(e["norm_pct"], 2), "minutes": e["span_minutes"]}


def offline_detail(e: Mapping[str, Any], number: Callable[[Any], str]) -> str | None:
    if "oi_change_pct" not in e:
        return None
    return (f"Open interest {number(e['oi_change_pct'])}% and price {number(e['price_change_pct'])}% in "
            f"{e['span_minutes']} minutes: {e['shift']}.")


EN_MEANING = {
    "buy": "positions moving the price up (new longs, or shorts closing): bullish",
    "sell": "positions moving the price down (new shorts, or longs closing): bearish",
}
PT_MEANING = {
    "buy": "posições empurrando o preço para cima (novos comprados, ou vendidos saindo): altista",
    "sell": "posições empurrando o preço para baixo (novos vendidos, ou comprados saindo): baixista",
}

KIND = KindSpec(
    name=SignalKind("oi_shift"),
    order=65,
    doc="USD-M: open interest surging or flushing far beyond the symbol's norm, with price and CVD: which side moved",
    rule=rule,
    pre_filter=lambda sums, t, margin: sums.windows.whale_count < 0,  # never: judged on open interest
    thresholds=("oi_shift_percentile", "oi_shift_multiple", "oi_shift_min_pct", "oi_shift_min_history"),
    wording={
        "en": Wording("Open interest shift",
                      "{shift}: open interest {oi}%, price {price}%, delta {delta} in {minutes} min (the symbol's norm"
                      " {norm}%)", EN_MEANING),
        "pt": Wording("Mudança de open interest",
                      "{shift}: open interest {oi}%, preço {price}%, delta {delta} em {minutes} min (norma do símbolo"
                      " {norm}%)", PT_MEANING),
    },
    facts=facts,
    offline="an open interest shift",
    offline_detail=offline_detail,
)
