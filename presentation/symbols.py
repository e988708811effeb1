"""Reading the symbols users type: BTCUSDT, btcusdt, or a coin's name when one followed pair has it."""

from __future__ import annotations

NAMES = {  # common names and tickers people type, by base asset
    "BTC": ("btc", "bitcoin", "xbt"),
    "ETH": ("eth", "ether", "ethereum"),
    "SOL": ("sol", "solana"),
    "BNB": ("bnb", "binance coin"),
    "XRP": ("xrp", "ripple"),
    "DOGE": ("doge", "dogecoin"),
    "ADA": ("ada", "cardano"),
}
QUOTES = ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB", "EUR", "BRL", "AUD")


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
