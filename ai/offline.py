"""The offline explainer: deterministic templates, always available, and marked as such."""

from __future__ import annotations

from typing import Any

from engine.signals import registry

OFFLINE_MARK = "(offline summary)"


def _number(value: float) -> str:
    return f"{value:,.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else f"{value:,}"


def explain_offline(snapshot: dict[str, Any]) -> str:
    """A short explanation built only from the snapshot's numbers."""
    signal = snapshot["signal"]
    symbol = snapshot["symbol"]
    spec = registry.find(signal["kind"])
    parts = [f"{OFFLINE_MARK} {symbol}: {signal['kind'] if spec is None else spec.offline}, "
             f"{signal['direction']} side, severity {signal['severity']}."]
    five = snapshot["context"].get("5m")
    if five:
        parts.append(
            f"Last 5m: price {_number(five['price_change_pct'])}%, buyers {_number(five['buy_share_pct'])}% of "
            f"volume, delta {_number(five['delta'])}, CVD today {_number(five['cvd_today'])}."
        )
    detail = spec.offline_detail(signal["evidence"], _number) if spec and spec.offline_detail else None
    if detail:
        parts.append(detail)
    record = snapshot.get("track_record")
    if record:
        parts.append(
            f"Track record: {record['alerts']} such alerts on {symbol} in {record['period']}, "
            f"{record['moved_its_way_pct']}% moved its way after {record['horizon']}, "
            f"median {record['median_signed_ret_pct']:+.2f}%."
        )
    parts.append("Aggressive flow shows who is paying the spread; it is not advice.")
    return " ".join(parts)
