"""Alerts as messages: the symbol, what happened and the numbers, then the AI explanation once it is ready."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.i18n import t
from bot.models import Message
from bot.outbox import AlertItem

MAX_LINES = 12  # signals shown in one merged alert; the rest are counted
MAX_EXPLANATION_CHARS = 900


def number(value: Any, places: int = 2) -> str:
    """A readable number: thousands separated, trailing zeros dropped."""
    if isinstance(value, int):
        return f"{value:,}"
    text = f"{float(value):,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _percent(ratio: Any) -> str:
    return number(float(ratio) * 100, 1)


def facts(item_evidence: dict[str, Any], kind: str, direction: str, language: str) -> str:
    """One line of the numbers that triggered a signal of this kind."""
    e = item_evidence
    side = t(language, "buyers" if direction == "buy" else "sellers")
    if kind == "whale":
        return t(language, "fact.whale", count=e["whale_count"], buy=number(e["whale_buy_quote"]),
                 sell=number(e["whale_sell_quote"]), threshold=number(e["whale_threshold_quote"]))
    if kind == "burst":
        return t(language, "fact.burst", trades=number(e["trade_count"]), ratio=number(e["burst_ratio"], 1))
    if kind == "imbalance":
        return t(language, "fact.imbalance", side=side, share=_percent(e["share"]), volume=number(e["volume_1m"], 4),
                 trades=number(e["trade_count_1m"]))
    if kind == "cvd_divergence":
        return t(language, "fact.cvd_divergence", pct=number(e["price_change_pct_5m"], 3),
                 share=_percent(e["delta_share_5m"]), delta=number(e["delta_5m"], 4))
    if kind == "absorption":
        heavy = "sellers" if direction == "buy" else "buyers"
        share = e["sell_share_1m"] if direction == "buy" else e["buy_share_1m"]
        return t(language, "fact.absorption", side=t(language, heavy), share=_percent(share),
                 pct=number(e["price_change_pct_1m"], 3), ratio=number(e["volume_ratio"], 1))
    return ", ".join(f"{key} {value}" for key, value in e.items())


def _headline(item: AlertItem, language: str) -> str:
    s = item.signal
    return (f"{t(language, f'kind.{s.kind}')} · {t(language, f'direction.{s.direction}')} · "
            f"{t(language, 'severity')} {s.severity}/3")


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S UTC")


def _direction(items: list[AlertItem]) -> str:
    directions = {item.signal.direction for item in items}
    return directions.pop() if len(directions) == 1 else "neutral"


def render_alert(items: list[AlertItem], language: str) -> Message:
    """The alert for one symbol's signals (one, or several merged), with explanations where they are ready."""
    symbol = items[0].signal.symbol
    lines: list[str] = []
    if len(items) == 1:
        title = f"{symbol} · {_headline(items[0], language)}"
    else:
        title = f"{symbol} · {len(items)} {t(language, 'signals')}"
    for item in items[:MAX_LINES]:
        s = item.signal
        evidence = s.evidence
        if len(items) > 1:
            lines.append(f"• {_headline(item, language)}")
        lines.append(f"{_time(s.window_start)[:8]} to {_time(s.window_end)}: "
                     f"{facts(evidence, s.kind, s.direction, language)}")
        if {"close", "delta", "cvd"} <= evidence.keys():
            lines.append(t(language, "fact.close", close=number(evidence["close"], 8),
                           delta=number(evidence["delta"], 4), cvd=number(evidence["cvd"], 4)))
    if len(items) > MAX_LINES:
        lines.append(t(language, "more", count=len(items) - MAX_LINES))
    explained = [item for item in items if item.explanation]
    if explained:
        for item in explained[-2:]:
            text = item.explanation or ""
            if len(text) > MAX_EXPLANATION_CHARS:
                text = text[: MAX_EXPLANATION_CHARS - 1] + "…"
            lines.append("")
            lines.append(f"{t(language, 'explanation')} ({item.provider}): {text}")
    else:
        lines.append("")
        lines.append(t(language, "explanation_pending"))
    return Message(title, "\n".join(lines), direction=_direction(items))
