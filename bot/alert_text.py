"""Alerts as messages: the symbol, what happened and the numbers, then the AI explanation once it is ready."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.i18n import t
from bot.models import Message
from bot.outbox import AlertItem
from core.events import Direction
from engine.signals import registry
from presentation.track_record_text import no_record, record_line
from storage.track_record import Record

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


class _Format:
    """Numbers and sides as the bot writes them, in one language (engine.signals.kind.FactFormat)."""

    def __init__(self, language: str) -> None:
        self.language = language

    def number(self, value: Any, places: int = 2) -> str:
        return number(value, places)

    def percent(self, ratio: Any) -> str:
        return _percent(ratio)

    def side(self, word: str) -> str:
        return t(self.language, word)


def facts(item_evidence: dict[str, Any], kind: str, direction: str, language: str) -> str:
    """One line of the numbers that triggered a signal of this kind."""
    spec = registry.find(kind)
    if spec is None:
        return ", ".join(f"{key} {value}" for key, value in item_evidence.items())
    values = spec.facts(item_evidence, Direction(direction), _Format(language))
    return spec.words(language).fact.format(**values)


def meaning(kind: str, direction: str, language: str) -> str | None:
    """The move the signal implies ("absorption of selling: buyers are absorbing, bullish"), if its kind says one."""
    spec = registry.find(kind)
    return None if spec is None else spec.words(language).meaning.get(direction)


def _title(kind: str, language: str) -> str:
    spec = registry.find(kind)
    return kind if spec is None else spec.words(language).title


def _headline(item: AlertItem, language: str) -> str:
    s = item.signal
    return (f"{_title(s.kind, language)} · {t(language, f'direction.{s.direction}')} · "
            f"{t(language, 'severity')} {s.severity}/3")


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S UTC")


def _direction(items: list[AlertItem]) -> str:
    directions = {item.signal.direction for item in items}
    return directions.pop() if len(directions) == 1 else "neutral"


def _record(item: AlertItem, language: str) -> str:
    """The track record line: the kind's past signals on the symbol and how prices moved after them."""
    line = record_line(Record(**item.record) if item.record else None, language=language)
    return line[0].upper() + line[1:] + "." if line == no_record(language) else line


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
        implied = meaning(s.kind, s.direction, language)
        if implied:
            lines.append(implied[0].upper() + implied[1:] + ".")
        if {"close", "delta", "cvd"} <= evidence.keys():
            lines.append(t(language, "fact.close", close=number(evidence["close"], 8),
                           delta=number(evidence["delta"], 4), cvd=number(evidence["cvd"], 4)))
        if evidence.get("late"):
            lines.append(t(language, "fact.late"))
        lines.append(_record(item, language))
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
