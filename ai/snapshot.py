"""The facts an explanation may cite: a signal's evidence plus its symbol's 1m..1h context, derived figures included."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.events import Signal
from core.features import PRICE_SCALE, QUOTE_SCALE
from engine.analysis.context import FlowSummary, SymbolContext


def _amount(value: int, scale: int = PRICE_SCALE, places: str = "0.0001") -> float:
    return float((Decimal(value) / scale).quantize(Decimal(places)))


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def summary_facts(summary: FlowSummary) -> dict[str, Any]:
    """One context span as plain numbers, with the derived figures a reader would want (percent, shares)."""
    sell_share = Decimal(100) - summary.buy_share_pct if summary.volume else Decimal(0)
    return {
        "price_open": _amount(summary.open, places="0.00000001"),
        "price_close": _amount(summary.close, places="0.00000001"),
        "price_high": _amount(summary.high, places="0.00000001"),
        "price_low": _amount(summary.low, places="0.00000001"),
        "price_change_pct": float(summary.price_change_pct),
        "vwap": float(summary.vwap),
        "volume": _amount(summary.volume),
        "buy_volume": _amount(summary.buy_volume),
        "sell_volume": _amount(summary.sell_volume),
        "buy_share_pct": float(summary.buy_share_pct),
        "sell_share_pct": float(sell_share),
        "delta": _amount(summary.delta),
        "cvd_today": _amount(summary.cvd_end),
        "quote_volume": _amount(summary.quote_volume, QUOTE_SCALE, "0.01"),
        "trades": summary.trade_count,
        "whale_trades": summary.whale_count,
        "whale_buy_quote": _amount(summary.whale_buy_quote, QUOTE_SCALE, "0.01"),
        "whale_sell_quote": _amount(summary.whale_sell_quote, QUOTE_SCALE, "0.01"),
        "bursts": summary.bursts,
        "missing_ids": summary.missing_ids,
    }


def record_facts(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A track record (storage.track_record.Record as a dict) as the numbers an explanation may cite."""
    if not record or record.get("hit_rate") is None or record.get("median_signed_ret") is None:
        return None
    return {
        "period": "30 days", "horizon": "15 minutes", "alerts": record["alerts"], "measured": record["measured"],
        "moved_its_way_pct": round(record["hit_rate"] * 100), "median_signed_ret_pct":
            round(record["median_signed_ret"] * 100, 2),
    }


def signal_snapshot(signal: Signal, context: SymbolContext | None,
                    record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything about a signal that an explanation may state (with its kind's track record on the symbol)."""
    return {
        "symbol": signal.symbol,
        "signal": {
            "kind": signal.kind,
            "direction": signal.direction,
            "severity": signal.severity,
            "window_start": _utc(signal.window_start),
            "window_end": _utc(signal.window_end),
            "window_seconds": (signal.window_end - signal.window_start) // 1000,
            "evidence": signal.evidence,
        },
        "context": {span: summary_facts(s) for span, s in (context.summaries() if context else {}).items()},
        "track_record": record_facts(record),
    }
