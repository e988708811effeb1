"""A track record as one line ("BTCUSDT absorption, buy, last 30 days: 41 alerts, 59% up after 15 min, median
+0.11%"), in the bot's languages, as alerts, /stats, `flowbot stats` and the dashboard show it."""

from __future__ import annotations

from storage.track_record import RECORD_DAYS, Record

NO_RECORD = "no track record yet"
LINES = {
    "en": ("{symbol} {kind}, {direction}, last {days} days: {alerts} alerts, {hit} {moved} after 15 min, median "
           "{median}",
           {"buy": "buy", "sell": "sell", "neutral": "neutral"}, {"up": "up", "down": "down"}, NO_RECORD),
    "pt": ("{symbol} {kind}, {direction}, últimos {days} dias: {alerts} alertas, {hit} {moved} após 15 min, mediana "
           "{median}", {"buy": "compra", "sell": "venda", "neutral": "neutro"}, {"up": "subiu", "down": "caiu"},
           "ainda sem histórico"),
}


def record_line(record: Record | None, days: int = RECORD_DAYS, language: str = "en") -> str:
    template, directions, moves, none = LINES.get(language, LINES["en"])
    if record is None or record.hit_rate is None or record.median_signed_ret is None:
        return none
    median = f"{record.median_signed_ret * 100:+.2f}%"
    if language == "pt":
        median = median.replace(".", ",")
    return template.format(
        symbol=record.symbol, kind=record.kind, direction=directions.get(record.direction, record.direction),
        days=days, alerts=record.alerts, hit=f"{record.hit_rate:.0%}",
        moved=moves["down" if record.direction == "sell" else "up"], median=median,
    )


def no_record(language: str = "en") -> str:
    return LINES.get(language, LINES["en"])[3]


def record_lines(records: list[Record], language: str = "en") -> list[str]:
    """The lines of the groups that have a record (measured signals), in the order given."""
    none = no_record(language)
    return [line for line in (record_line(r, language=language) for r in records) if line != none]
