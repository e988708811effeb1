"""What a rule can watch: each metric, how its threshold is written, and how its value is read from a symbol's
trades (price, whale) or from its closed windows and their recent history (everything else)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from core.features import WindowFeatures
from core.schema import FEATURE_SCHEMA

SPANS_MS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "4h": 14_400_000,
                            "1d": 86_400_000}
HOUR_MS = SPANS_MS["1h"]
_SCALES = {column.name: column.unit.scale for column in FEATURE_SCHEMA}


class Source(StrEnum):
    TRADES = "trades"  # judged on every batch of trades
    WINDOWS = "windows"  # judged on every closed window


class Op(StrEnum):
    ABOVE = ">"
    BELOW = "<"
    CROSSES = "crosses"


@dataclass(frozen=True)
class Metric:
    """One metric: where it is judged, whether it takes a span, which suffixes its threshold may carry."""

    name: str
    source: Source
    doc: str  # its unit, as /help alert shows it
    span: str = "never"  # never | optional | required
    suffixes: tuple[str, ...] = ("",)  # "" plain, "%" percent, "x" a multiple of the hour's average
    ops: tuple[Op, ...] = (Op.ABOVE, Op.BELOW, Op.CROSSES)
    futures: bool = False  # needs the futures data (MARKET=usdm)
    default_span: str | None = None


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("price", Source.TRADES, "last trade price, quote currency; judged on every trade"),
    Metric("delta", Source.WINDOWS, "buy minus sell volume over the span (base units; no span: the window)",
           span="optional"),
    Metric("cvd", Source.WINDOWS, "cumulative delta over the span (base units; no span: since 00:00 UTC)",
           span="optional"),
    Metric("buy_share", Source.WINDOWS, "buy volume as a percent of all volume over the span", span="optional",
           suffixes=("%", ""), default_span="5m"),
    Metric("volume", Source.WINDOWS, "volume over the span: base units, or 3x = 3 times the hour's average per"
           " minute", span="optional", suffixes=("", "x"), default_span="1m"),
    Metric("whale", Source.TRADES, "one trade of at least this notional (quote currency)", ops=(Op.ABOVE,)),
    Metric("liquidations", Source.WINDOWS, "liquidated notional over the span (quote currency; futures)",
           span="optional", futures=True, default_span="1m"),
    Metric("oi", Source.WINDOWS, "open interest, or its change over a span in % (futures)", span="optional",
           suffixes=("", "%"), futures=True),
    Metric("funding", Source.WINDOWS, "funding rate in percent (futures)", suffixes=("%", ""), futures=True),
)}


def measure_key(metric: str, span: str | None, suffix: str) -> str:
    """The name of what is measured: rules with the same key share one sorted book per symbol."""
    name = {"x": "volume_x", "%": "oi_pct"}.get(suffix, metric) if metric in ("volume", "oi") else metric
    return f"{name}@{SPANS_MS[span]}" if span else name


def field_value(features: WindowFeatures, name: str) -> Decimal | None:
    """A window field in natural units (None when this market's windows do not carry it, e.g. spot)."""
    value: Any = getattr(features, name, None)
    if value is None:
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value).scaleb(-len(str(_SCALES.get(name, 1))) + 1)


def liquidations(features: WindowFeatures) -> Decimal | None:
    """Liquidated notional of the window, longs and shorts (None without futures data)."""
    long, short = field_value(features, "liq_long_quote"), field_value(features, "liq_short_quote")
    return None if long is None or short is None else long + short
