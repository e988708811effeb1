"""The bot's words in English and Portuguese; numbers and symbols stay as the engine writes them."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "kind.whale": "Whale trades",
        "kind.burst": "Trade burst",
        "kind.imbalance": "Flow imbalance",
        "kind.cvd_divergence": "CVD divergence",
        "kind.absorption": "Absorption",
        "direction.buy": "buy",
        "direction.sell": "sell",
        "direction.neutral": "neutral",
        "severity": "severity",
        "signals": "signals",
        "more": "and {count} more",
        "explanation": "Analysis",
        "explanation_pending": "Analysis: on its way…",
        "fact.whale": "{count} whale trade(s): bought {buy} / sold {sell} (quote), threshold {threshold}",
        "fact.burst": "{trades} trades in the window, {ratio}x the usual rate",
        "fact.imbalance": "{side} {share}% of the last minute's volume ({volume}, {trades} trades)",
        "fact.cvd_divergence": "price {pct}% over 5m while delta is {share}% of volume ({delta})",
        "fact.absorption": "{side} {share}% of 1m volume, price {pct}%, volume {ratio}x the hourly mean",
        "fact.close": "close {close}, delta {delta}, CVD {cvd}",
        "buyers": "buyers",
        "sellers": "sellers",
        "digest.title": "Daily digest, {date} UTC",
        "digest.none": "{symbol}: no stored flow",
        "digest.line": "{symbol}: {change}% in 24h, buyers {share}% of volume, delta {delta}, {signals} signal(s)",
    },
    "pt": {
        "kind.whale": "Negócios de baleia",
        "kind.burst": "Rajada de negócios",
        "kind.imbalance": "Desequilíbrio de fluxo",
        "kind.cvd_divergence": "Divergência de CVD",
        "kind.absorption": "Absorção",
        "direction.buy": "compra",
        "direction.sell": "venda",
        "direction.neutral": "neutro",
        "severity": "severidade",
        "signals": "sinais",
        "more": "e mais {count}",
        "explanation": "Análise",
        "explanation_pending": "Análise: a caminho…",
        "fact.whale": "{count} negócio(s) de baleia: compras {buy} / vendas {sell} (cotação), limiar {threshold}",
        "fact.burst": "{trades} negócios na janela, {ratio}x o ritmo habitual",
        "fact.imbalance": "{side} {share}% do volume do último minuto ({volume}, {trades} negócios)",
        "fact.cvd_divergence": "preço {pct}% em 5m enquanto o delta é {share}% do volume ({delta})",
        "fact.absorption": "{side} {share}% do volume de 1m, preço {pct}%, volume {ratio}x a média horária",
        "fact.close": "fecho {close}, delta {delta}, CVD {cvd}",
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
