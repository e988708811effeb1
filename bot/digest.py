"""The daily digest: per subscribed symbol, the last 24 hours of flow and how many signals there were."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.alert_text import number
from bot.i18n import t
from bot.models import Message
from storage.feature_store import FeatureStore
from storage.flow_query import flow_report
from storage.signal_store import SignalStore


def render_digest(
    symbols: list[str], language: str, store: FeatureStore, signals: SignalStore | None, now_s: float
) -> Message:
    lines = []
    for symbol in symbols:
        report = flow_report(store, symbol, "24h")
        if report is None:
            lines.append(t(language, "digest.none", symbol=symbol))
            continue
        count = len(signals.recent(symbol, since_ms=report.start_ms, limit=10_000)) if signals else 0
        share = report.buy_volume * 100 / report.volume if report.volume else 0
        lines.append(t(language, "digest.line", symbol=symbol, change=report.price_change_pct,
                       share=number(float(share), 1), delta=number(float(report.delta), 4), signals=count))
    date = datetime.fromtimestamp(now_s, UTC).strftime("%Y-%m-%d")
    return Message(t(language, "digest.title", date=date), "\n".join(lines), silent=True)
