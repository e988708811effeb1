"""Which subscribers an alert goes to, and how: severity, kinds, silent kinds, quiet hours, language, merging."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from pathlib import Path

import pytest

from bot.console import CONSOLE, ConsoleSender
from bot.database import migrate, open_database
from bot.delivery import Dispatcher
from bot.models import Destination
from bot.outbox import ROUTE_CHUNK, Outbox
from bot.router import AlertRouter
from bot.subscriptions import ChatSettings, Subscriptions
from core.events import Signal

HOUR_23 = 1_767_308_400.0  # 2026-01-01 23:00 UTC
WHALE = Signal(id="BTCUSDT-whale-1767225600000", symbol="BTCUSDT", kind="whale", direction="buy", severity=2,
               window_start=1_767_225_600_000, window_end=1_767_225_605_000,
               evidence={"whale_count": 2, "whale_buy_quote": 150000.5, "whale_sell_quote": 0.0,
                         "whale_threshold_quote": 100000.0, "close": 87754.07, "delta": 1.25, "cvd": 17.6})


def chat(n: int) -> Destination:
    return Destination("telegram", str(n))


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Subscriptions, Outbox, AlertRouter]:
    db = open_database(tmp_path / "flowbot.db")
    subscriptions, outbox = Subscriptions(db), Outbox(db, merge_window_s=30)
    return subscriptions, outbox, AlertRouter(subscriptions, outbox, clock=lambda: HOUR_23)


def subscribe(subscriptions: Subscriptions, n: int, settings: ChatSettings | None = None, **kw) -> None:
    subscriptions.ensure_chat(chat(n), is_private=True)
    subscriptions.subscribe(chat(n), ["BTCUSDT"], kw.get("kinds", ()))
    if settings is not None:
        subscriptions.save_settings(chat(n), settings)


def queued(outbox: Outbox) -> dict[str, tuple[int, str]]:
    """chat id -> (silent, language) of the queued rows."""
    rows = outbox.db.execute("SELECT chat_id, silent, language FROM outbox").fetchall()
    return {chat_id: (silent, language) for chat_id, silent, language in rows}


async def test_settings_decide_who_gets_an_alert_and_whether_it_rings(parts) -> None:
    subscriptions, outbox, router = parts
    subscribe(subscriptions, 1)
    subscribe(subscriptions, 2, ChatSettings(min_severity=3))
    subscribe(subscriptions, 3, ChatSettings(kind_modes={"whale": "off"}))
    subscribe(subscriptions, 4, ChatSettings(kind_modes={"whale": "silent"}))
    subscribe(subscriptions, 5, ChatSettings(quiet_start=22, quiet_end=7, language="pt"))
    subscribe(subscriptions, 6, ChatSettings(quiet_start=8, quiet_end=20))
    subscribe(subscriptions, 7, kinds=("burst",))
    subscribe(subscriptions, 8, kinds=("burst", "whale"))
    subscriptions.ensure_chat(chat(9), is_private=True)
    subscriptions.subscribe(chat(9), ["ETHUSDT"])
    subscribe(subscriptions, 10)
    subscriptions.deactivate(chat(10), "Forbidden: bot was blocked by the user")

    assert await router.on_signal(WHALE) == 5
    assert queued(outbox) == {"1": (0, "en"), "4": (1, "en"), "5": (1, "pt"), "6": (0, "en"), "8": (0, "en")}


async def test_a_signal_seen_twice_is_queued_once_and_close_signals_merge(parts) -> None:
    subscriptions, outbox, router = parts
    subscribe(subscriptions, 1)
    assert await router.on_signal(WHALE) == 1
    assert await router.on_signal(WHALE) == 0
    burst = replace(WHALE, id="BTCUSDT-burst-1767225625000", kind="burst", window_start=WHALE.window_start + 25_000,
                    evidence={"burst_ratio": 4.5, "trade_count": 900})
    later = replace(burst, id="BTCUSDT-burst-1767225630000", window_start=WHALE.window_start + 30_000)
    assert await router.on_signal(burst) == 1 and await router.on_signal(later) == 1
    rows = outbox.db.execute("SELECT id FROM outbox ORDER BY id").fetchall()
    assert [[i.signal.id for i in outbox.items(row[0])] for row in rows] == [[WHALE.id, burst.id], [later.id]]


async def test_console_prints_the_alert_then_the_explanation(tmp_path: Path) -> None:
    db = open_database(tmp_path / "flowbot.db")
    subscriptions, outbox = Subscriptions(db), Outbox(db, merge_window_s=30)
    out = io.StringIO()
    dispatcher = Dispatcher(ConsoleSender(out), outbox, subscriptions)
    router = AlertRouter(subscriptions, outbox, static=[CONSOLE], on_queued=dispatcher.wake)
    await router.on_signal(WHALE)
    assert await dispatcher.drain(5)
    await router.on_explanation(WHALE.id, "Two large buyers lifted the offer.", "groq")
    assert await dispatcher.drain(5)
    assert out.getvalue().splitlines() == [
        "ALERT #1 BTCUSDT · Whale trades · buy · severity 2/3",
        "    00:00:00 to 00:00:05 UTC: 2 whale trade(s): bought 150,000.5 / sold 0 (quote), threshold 100,000",
        "    Whales bought more than they sold: bullish.",
        "    close 87,754.07, delta 1.25, CVD 17.6",
        "    No track record yet.",
        "    Analysis: on its way…",
        "UPDATE #1 BTCUSDT · Whale trades · buy · severity 2/3",
        "    00:00:00 to 00:00:05 UTC: 2 whale trade(s): bought 150,000.5 / sold 0 (quote), threshold 100,000",
        "    Whales bought more than they sold: bullish.",
        "    close 87,754.07, delta 1.25, CVD 17.6",
        "    No track record yet.",
        "    Analysis (groq): Two large buyers lifted the offer.",
    ]


def test_migrations_run_once_and_in_order(tmp_path: Path) -> None:
    db = open_database(tmp_path / "flowbot.db")
    assert [row["version"] for row in db["bot_migrations"].rows] == [1, 2, 3, 4, 5, 6]
    assert migrate(db) == []
    tables = {"chats", "subscriptions", "outbox", "outbox_signals", "alert_signals", "rules", "rule_levels"}
    assert tables <= set(db.table_names())


async def test_routing_to_thousands_gives_the_loop_back_between_chunks_and_merges_across_them(parts) -> None:
    subscriptions, outbox, router = parts
    count = 2 * ROUTE_CHUNK + 7  # three chunks
    for n in range(count):
        subscribe(subscriptions, n)
    ticks = 0

    async def ticker() -> None:  # stands for the feed: it must run while a signal is being routed
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    later = replace(WHALE, id="BTCUSDT-whale-1767225610000", window_start=WHALE.window_start + 10_000)
    try:
        before = ticks
        assert await router.on_signal(WHALE) == count
        assert ticks - before >= 3
        assert await router.on_signal(WHALE) == 0  # redelivered by the bus: alerted once
        assert await router.on_signal(later) == count  # within the merge window: joins each destination's row
    finally:
        ticking.cancel()
    rows = outbox.db.execute("SELECT chat_id, count(*) FROM outbox_signals GROUP BY outbox_id").fetchall()
    assert sorted(int(chat_id) for chat_id, _ in rows) == list(range(count))
    assert {n for _, n in rows} == {2}
