"""The flow summary as text, shared by `flowbot flow` and the bots' /flow."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from storage.flow_query import FlowReport


def _amount(value: Decimal, places: str = "0.0001") -> str:
    return f"{value.quantize(Decimal(places)):,}"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def format_flow(report: FlowReport, now_s: float) -> str:
    """Price change, buy/sell volume, delta and CVD, VWAP, whales, bursts and coverage, one fact per line."""
    end = datetime.fromtimestamp(report.end_ms / 1000, UTC)
    start = datetime.fromtimestamp(report.start_ms / 1000, UTC)
    age = now_s - report.end_ms / 1000
    freshness = "live" if age < 60 else f"data is {_age(age)} old"
    share = (report.buy_volume * 100 / report.volume).quantize(Decimal("0.1")) if report.volume else Decimal(0)
    sign = "+" if report.price_change_pct > 0 else ""
    lines = [
        f"{report.symbol} flow, last {report.span} ({start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC, {freshness})",
        f"Price: {report.open.normalize():f} → {report.close.normalize():f} ({sign}{report.price_change_pct}%), "
        f"high {report.high.normalize():f}, low {report.low.normalize():f}",
        f"Buy volume: {_amount(report.buy_volume)} ({share}%)   Sell volume: {_amount(report.sell_volume)}",
        f"Delta: {_amount(report.delta)}   CVD (UTC day): {_amount(report.cvd)}",
        f"VWAP: {report.vwap:,}   Quote volume: {_amount(report.quote_volume, '0.01')}",
        f"Whale trades: {report.whale_count} (buy {_amount(report.whale_buy_quote, '0.01')}, "
        f"sell {_amount(report.whale_sell_quote, '0.01')})",
        f"Bursts: {report.bursts}   Trades: {report.trades:,} in {report.windows} windows",
        f"Coverage: ids {report.first_id} to {report.last_id}, "
        + ("no missing ids" if not report.missing_ids else f"{report.missing_ids} missing ids (unfilled gaps)"),
    ]
    if report.liq_count is not None and report.liq_long_quote is not None and report.liq_short_quote is not None:
        lines.insert(-2, f"Liquidations (at least: Binance pushes one per symbol per second): longs "
                         f"{_amount(report.liq_long_quote, '0.01')}, shorts {_amount(report.liq_short_quote, '0.01')}"
                         f" ({report.liq_count} orders)")
    first_oi, last_oi = report.open_interest_first, report.open_interest_last
    if first_oi is not None and last_oi is not None:
        change = last_oi - first_oi
        pct = (change * 100 / first_oi).quantize(Decimal("0.01")) if first_oi else Decimal(0)
        lines.insert(-2, f"Open interest: {_amount(last_oi, '0.001')} ({'+' if change >= 0 else ''}"
                         f"{_amount(change, '0.001')}, {'+' if pct >= 0 else ''}{pct}% over the span)")
    if report.funding_rate is not None and report.mark_price is not None and report.next_funding_ms is not None:
        funding_at = datetime.fromtimestamp(report.next_funding_ms / 1000, UTC)
        lines.insert(-2, f"Funding: {(report.funding_rate * 100).quantize(Decimal('0.0001'))}% (next {funding_at:%H:%M}"
                         f" UTC)   Mark: {report.mark_price.normalize():f}")
    return "\n".join(lines)
