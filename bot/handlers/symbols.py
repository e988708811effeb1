"""Reading the symbols users type: BTCUSDT, btcusdt, or a coin's name when one followed pair has it."""

from __future__ import annotations

from ai.question import NAMES, QUOTES


def _base(symbol: str) -> str:
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


def resolve_symbol(text: str, known: list[str]) -> str | None:
    """The followed symbol meant by `text` (BTCUSDT, btc, bitcoin), or None."""
    word = text.strip().upper().lstrip("$#")
    if word in known:
        return word
    matches = [s for s in known if _base(s) == word or word.lower() in NAMES.get(_base(s), ())]
    return matches[0] if len(matches) == 1 else None
