"""Liquidation cascades (USD-M): one side's liquidations in the last minute far above the symbol's own norm, with
price moving through them. Judged by engine.signals.liquidations on each window's liquidation data, not by the
trade-window rules: its `rule` here never fires."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from core.events import Direction, SignalKind
from core.features import WindowFeatures
from engine.signals.flows import Flows
from engine.signals.kind import FactFormat, Finding, KindSpec, Wording
from engine.signals.thresholds import SignalThresholds


class LiquidationCascadeEvidence(TypedDict):
    side: str  # "longs" (SELL orders: longs forced out) or "shorts"
    liq_quote_1m: float  # that side's liquidated notional in the minute ending with the window (at least)
    liq_orders_1m: int
    norm_quote: float  # the symbol's own norm: its percentile of such minutes over the last day
    times_norm: float
    first_price: float  # the side's first and last liquidation average price in the minute
    last_price: float
    price_move_pct: float


def rule(w: WindowFeatures, flows: Flows, t: SignalThresholds) -> Finding | None:
    """Trade windows alone never show a cascade (see engine.signals.liquidations)."""
    return None


def facts(e: Mapping[str, Any], direction: Direction, say: FactFormat) -> dict[str, Any]:
    return {"orders": e["liq_orders_1m"], "quote": say.number(e["liq_quote_1m"]), "side": e["side"],
            "times": say.number(e["times_norm"], 1), "norm": say.number(e["norm_quote"]),
            "first": say.number(e["first_price"], 8), "last": say.number(e["last_price"], 8),
            "move": say.number(e["price_move_pct"], 2)}


def offline_detail(e: Mapping[str, Any], number: Callable[[Any], str]) -> str | None:
    if "liq_quote_1m" not in e:
        return None
    return (f"{e['liq_orders_1m']} liquidation orders of {e['side']} in a minute, {number(e['liq_quote_1m'])} in "
            f"quote value (at least), price {number(e['price_move_pct'])}% across them.")


EN_MEANING = {
    "buy": "shorts forced out: a short squeeze, bullish",
    "sell": "longs forced out: forced selling, bearish",
}
PT_MEANING = {
    "buy": "vendidos liquidados: um short squeeze, altista",
    "sell": "comprados liquidados: venda forçada, baixista",
}

KIND = KindSpec(
    name=SignalKind("liquidation_cascade"),
    order=60,
    doc="USD-M: one side's liquidations in a minute far above the symbol's own norm, price moving through them",
    rule=rule,
    pre_filter=lambda sums, t, margin: sums.windows.whale_count < 0,  # never: judged on liquidation data
    thresholds=("liq_cascade_percentile", "liq_cascade_multiple", "liq_cascade_min_orders",
                "liq_cascade_min_move_pct", "liq_cascade_min_history"),
    wording={
        "en": Wording("Liquidation cascade",
                      "{orders} {side} liquidated in a minute: {quote} (quote, at least), {times}x the symbol's norm"
                      " of {norm}; price {move}% from {first} to {last}", EN_MEANING),
        "pt": Wording("Cascata de liquidações",
                      "{orders} liquidações de {side} em um minuto: {quote} (cotação, no mínimo), {times}x a norma"
                      " do símbolo de {norm}; preço {move}% de {first} a {last}", PT_MEANING),
    },
    facts=facts,
    offline="a liquidation cascade",
    offline_detail=offline_detail,
)
