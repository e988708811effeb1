"""The offline explainer: deterministic templates, always available, and marked as such."""

from __future__ import annotations

from typing import Any

OFFLINE_MARK = "(offline summary)"

_KIND_TEXT = {
    "whale": "whale trades",
    "burst": "a burst of trades",
    "imbalance": "one-sided flow",
    "cvd_divergence": "price and CVD diverging",
    "absorption": "absorption: heavy one-sided volume with little price move",
}


def _number(value: float) -> str:
    return f"{value:,.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else f"{value:,}"


def explain_offline(snapshot: dict[str, Any]) -> str:
    """A short explanation built only from the snapshot's numbers."""
    signal = snapshot["signal"]
    symbol = snapshot["symbol"]
    parts = [f"{OFFLINE_MARK} {symbol}: {_KIND_TEXT.get(signal['kind'], signal['kind'])}, "
             f"{signal['direction']} side, severity {signal['severity']}."]
    five = snapshot["context"].get("5m")
    if five:
        parts.append(
            f"Last 5m: price {_number(five['price_change_pct'])}%, buyers {_number(five['buy_share_pct'])}% of "
            f"volume, delta {_number(five['delta'])}, CVD today {_number(five['cvd_today'])}."
        )
    evidence = signal["evidence"]
    if signal["kind"] == "whale" and "whale_count" in evidence:
        parts.append(
            f"{evidence['whale_count']} whale trade(s): buys {_number(evidence['whale_buy_quote'])}, "
            f"sells {_number(evidence['whale_sell_quote'])} in quote value."
        )
    parts.append("Aggressive flow shows who is paying the spread; it is not advice.")
    return " ".join(parts)
