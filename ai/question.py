"""Reading a question: which symbols, which span of time, which language."""

from __future__ import annotations

import re
from dataclasses import dataclass

from presentation.symbols import NAMES, QUOTES

PORTUGUESE_WORDS = frozenset([
    "está", "estão", "sendo", "comprado", "comprada", "vendido", "vendida", "agora", "hoje", "últimos",
    "última", "minutos", "horas", "hora", "qual", "quais", "compare", "comparar", "baleias", "houve", "teve",
    "pressão", "compradora", "vendedora", "meus", "minhas", "o", "a", "os", "as", "de", "do", "da", "em", "no",
    "na", "não", "sim", "como", "por", "que", "quando",
])
_DURATION = re.compile(
    r"(?:last|past|últim[oa]s?|nos|nas)\s+(?:(?P<n>\d{1,3})\s*)?(?P<unit>min(?:ute|uto)?s?|m\b|h(?:ours?|oras?)?\b)",
    re.IGNORECASE,
)
SPAN_CHOICES_MIN = (5, 15, 60, 240, 1440)  # what the store summarises: 5m, 15m, 1h, 4h, 24h


@dataclass(frozen=True)
class Question:
    text: str
    symbols: list[str]  # as the engine names them, e.g. BTCUSDT
    unknown: list[str]  # coins named that the engine does not follow
    span: str  # 5m | 15m | 1h | 4h | 24h
    language: str  # en | pt


def language_of(text: str) -> str:
    words = re.findall(r"[^\W\d_]+", text.lower())
    portuguese = sum(word in PORTUGUESE_WORDS for word in words)
    return "pt" if portuguese >= 2 or any(c in text for c in "ãõçáéêó") else "en"


def _span(text: str) -> str:
    lowered = text.lower()
    if any(word in lowered for word in ("today", "hoje", "24h", "24 h", "day", "dia")):
        return "24h"
    match = _DURATION.search(lowered)
    if match:
        minutes = int(match["n"] or 1) * (60 if match["unit"].startswith("h") else 1)
        return _nearest(minutes)
    if re.search(r"\b(\d{1,2})\s*h\b", lowered):
        return _nearest(int(re.search(r"\b(\d{1,2})\s*h\b", lowered)[1]) * 60)  # type: ignore[index]
    if any(word in lowered for word in ("hour", "hora")):
        return "1h"
    return "5m" if any(word in lowered for word in ("now", "agora", "right now", "currently")) else "15m"


def _nearest(minutes: int) -> str:
    chosen = min(SPAN_CHOICES_MIN, key=lambda choice: (abs(choice - minutes), choice))
    return {5: "5m", 15: "15m", 60: "1h", 240: "4h", 1440: "24h"}[chosen]


def read_question(text: str, known_symbols: list[str]) -> Question:
    """Symbols (BTC, bitcoin, BTCUSDT), the span ("right now" = 5m, "last hour" = 1h, "today" = 24h) and language."""
    lowered = text.lower()
    tokens = set(re.findall(r"[a-z0-9]+", lowered))
    found: list[str] = []
    unknown: list[str] = []
    for symbol in known_symbols:
        base = _base(symbol)
        names = {symbol.lower(), base.lower(), *NAMES.get(base, ())}
        if tokens & names or any(" " in name and name in lowered for name in names):
            found.append(symbol)
    for token in tokens:
        upper = token.upper()
        looks_like_pair = upper.endswith(QUOTES) and len(upper) > 5
        named_coin = any(token in names for names in NAMES.values())
        if (looks_like_pair or named_coin) and not any(token in {s.lower(), _base(s).lower()} for s in found) and not (
            named_coin and any(token in NAMES.get(_base(s), ()) for s in found)
        ):
            unknown.append(upper)
    return Question(text, found, sorted(set(unknown)), _span(text), language_of(text))


def _base(symbol: str) -> str:
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol
