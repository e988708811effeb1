"""Funding at an extreme for the symbol (USD-M): the funding rate of its mark price updates beyond its own recent
range. Judged by engine.signals.funding on each window's mark price data, not by the trade-window rules: its `rule`
here never fires."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from core.events import Direction, SignalKind
from core.features import WindowFeatures
from engine.signals.flows import Flows
from engine.signals.kind import FactFormat, Finding, KindSpec, Wording
from engine.signals.thresholds import SignalThresholds


class FundingExtremeEvidence(TypedDict):
    funding_rate_pct: float  # the window's last funding rate, in percent
    bound_pct: float  # the symbol's own percentile it went beyond (high for positive, low for negative)
    percentile: float
    samples: int  # minutes of funding the bound was read from (up to three days)


def rule(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """Trade windows alone never show funding (see engine.signals.funding)."""
    return None


def facts(e: Mapping[str, Any], direction: Direction, say: FactFormat) -> dict[str, Any]:
    return {"rate": say.number(e["funding_rate_pct"], 4), "bound": say.number(e["bound_pct"], 4),
            "percentile": say.number(e["percentile"], 1), "samples": e["samples"]}


def offline_detail(e: Mapping[str, Any], number: Callable[[Any], str]) -> str | None:
    if "funding_rate_pct" not in e:
        return None
    return f"Funding {number(e['funding_rate_pct'])}%, beyond the symbol's recent {number(e['bound_pct'])}%."


EN_MEANING = {
    "buy": "shorts pay an extreme funding: crowded shorts, bullish",
    "sell": "longs pay an extreme funding: crowded longs, bearish",
}
PT_MEANING = {
    "buy": "vendidos pagam um funding extremo: vendidos lotados, altista",
    "sell": "comprados pagam um funding extremo: comprados lotados, baixista",
}

KIND = KindSpec(
    name=SignalKind("funding_extreme"),
    order=70,
    doc="USD-M: the funding rate beyond the symbol's own range of the last days (and at least a set size)",
    rule=rule,
    pre_filter=lambda sums, t, margin: sums.windows.whale_count < 0,  # never: judged on mark price data
    thresholds=("funding_extreme_percentile", "funding_extreme_min_pct", "funding_extreme_min_history"),
    wording={
        "en": Wording("Funding extreme",
                      "funding {rate}%, beyond the symbol's {percentile}th percentile {bound}% ({samples} minutes)",
                      EN_MEANING),
        "pt": Wording("Funding extremo",
                      "funding {rate}%, além do percentil {percentile} do símbolo, {bound}% ({samples} minutos)",
                      PT_MEANING),
    },
    facts=facts,
    offline="funding at an extreme",
    offline_detail=offline_detail,
)
