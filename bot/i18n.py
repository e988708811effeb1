"""The bot's words in English and Portuguese; numbers and symbols stay as the engine writes them."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "direction.buy": "buy",
        "direction.sell": "sell",
        "direction.neutral": "neutral",
        "severity": "severity",
        "signals": "signals",
        "more": "and {count} more",
        "explanation": "Analysis",
        "explanation_pending": "Analysis: on its way…",
        "fact.close": "close {close}, delta {delta}, CVD {cvd}",
        "fact.late": "Late: trades that arrived after this window was first judged changed it.",
        "buyers": "buyers",
        "sellers": "sellers",
        "digest.title": "Daily digest, {date} UTC",
        "digest.none": "{symbol}: no stored flow",
        "digest.line": "{symbol}: {change}% in 24h, buyers {share}% of volume, delta {delta}, {signals} signal(s)",
    },
    "pt": {
        "direction.buy": "compra",
        "direction.sell": "venda",
        "direction.neutral": "neutro",
        "severity": "severidade",
        "signals": "sinais",
        "more": "e mais {count}",
        "explanation": "Análise",
        "explanation_pending": "Análise: a caminho…",
        "fact.close": "fecho {close}, delta {delta}, CVD {cvd}",
        "fact.late": "Atrasado: negócios que chegaram depois da primeira avaliação desta janela mudaram-na.",
        "buyers": "compradores",
        "sellers": "vendedores",
        "digest.title": "Resumo diário, {date} UTC",
        "digest.none": "{symbol}: sem fluxo guardado",
        "digest.line": "{symbol}: {change}% em 24h, compradores {share}% do volume, delta {delta}, {signals} sinal(is)",
    },
}


def translate(texts: dict[str, dict[str, str]], language: str, key: str, /, **values: object) -> str:
    """The text of `key` in `language` from the catalogue `texts` (English when missing), formatted with `values`."""
    text = texts.get(language, texts["en"]).get(key) or texts["en"][key]
    return text.format(**values) if values else text


def t(language: str, key: str, **values: object) -> str:
    """The text of `key` in `language` (English when missing), formatted with `values`."""
    return translate(TEXTS, language, key, **values)
