"""The platform-neutral commands on a store replayed from the real BTCUSDT dump."""

from __future__ import annotations

import struct
from decimal import Decimal
from pathlib import Path

import pytest
from expected_flow import load_csv

from ai.ask import Asker
from ai.providers import ProviderChain
from bot.database import open_database
from bot.handlers.commands import Commands
from bot.models import Caller, Destination
from bot.outbox import Outbox
from bot.subscriptions import Subscriptions
from storage.feature_store import FeatureStore

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
ALICE = Caller(Destination("telegram", "1001"), user_id="1001")
ADMIN = Caller(Destination("telegram", "42"), user_id="42", is_admin=True)
GROUP_TOPIC = Caller(Destination("telegram", "-100500", thread_id=7), user_id="1001", is_private=False)


@pytest.fixture
def commands(btc_data_dir: Path, tmp_path: Path) -> Commands:
    db = open_database(tmp_path / "flowbot.db")
    store = FeatureStore(btc_data_dir)
    asker = Asker(ProviderChain([], timeout=1).answer, store, symbols=SYMBOLS)
    return Commands(
        subscriptions=Subscriptions(db), outbox=Outbox(db, 30), store=store, symbols=SYMBOLS, asker=asker,
        feed_health=lambda: {
            "healthy": True,
            "symbols": {"BTCUSDT": {"last_trade_age_s": 1.4, "lag_ms": 120, "gaps_found": 2, "gaps_filled": 1,
                                    "gaps_unfilled": 1, "missing_ids": 3}},
            "connections": {"spot-0": {"connected": True, "reconnects": 4}},
        },
    )


async def test_subscribe_list_and_unsubscribe_per_chat_and_topic(commands: Commands) -> None:
    reply = await commands.run(ALICE, "subscribe", ["btc", "whale", "ETHUSDT"])
    assert reply.title == "Subscribed to BTCUSDT, ETHUSDT (whale)."
    await commands.run(GROUP_TOPIC, "subscribe", ["ETHUSDT"])

    assert (await commands.run(ALICE, "list", [])).body == "BTCUSDT: whale\nETHUSDT: whale"
    assert (await commands.run(GROUP_TOPIC, "list", [])).body == "ETHUSDT: all kinds"

    assert (await commands.run(ALICE, "unsubscribe", ["btcusdt"])).title == "Unsubscribed from BTCUSDT."
    assert (await commands.run(ALICE, "unsubscribe", ["all"])).title == "Unsubscribed from ETHUSDT."
    assert (await commands.run(ALICE, "list", [])).title == "No subscriptions yet."
    assert (await commands.run(GROUP_TOPIC, "list", [])).body == "ETHUSDT: all kinds"


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("subscribe", ["DOGEUSDT"], "I don't follow 'DOGEUSDT'."),
        ("subscribe", [], "Usage: /subscribe SYMBOL... [kinds]"),
        ("subscribe", ["whale"], "Which symbols?"),
        ("flow", ["BTCUSDT", "2d"], "Unknown window '2d'."),
        ("flow", [], "Usage: /flow SYMBOL [5m|15m|1h|4h|24h]"),
        ("chart", ["XRP"], "I don't follow 'XRP'."),
        ("unsubscribe", ["ETHUSDT"], "You were not subscribed to that."),
        ("frobnicate", [], "Unknown command /frobnicate."),
        ("admin", [], "That command is for the bot's admins."),
        ("broadcast", ["hello"], "That command is for the bot's admins."),
        ("settings", ["severity", "7"], "Severity is 1, 2 or 3."),
        ("settings", ["quiet", "25-3"], "Quiet hours look like 22-7 (UTC hours), or off."),
        ("settings", ["colour", "red"], "Unknown option 'colour': severity, a kind (whale, burst, imbalance, "
                                        "cvd_divergence, absorption, liquidation_cascade, oi_shift, funding_extreme),"
                                        " quiet, language, digest, positive."),
        ("settings", ["positive", "maybe"], "positive is on (only kinds whose alerts on the symbol were right on"
                                            " average over the last 30 days, 10 measured at least) or off."),
    ],
)
async def test_bad_arguments_get_a_short_helpful_reply(commands: Commands, name, args, expected) -> None:
    reply = await commands.run(ALICE, name, args)
    assert reply.title == expected


async def test_unknown_symbol_reply_lists_the_followed_symbols(commands: Commands) -> None:
    reply = await commands.run(ALICE, "subscribe", ["DOGEUSDT"])
    assert reply.body == "Symbols I follow: BTCUSDT, ETHUSDT."


async def test_flow_reports_the_dump_as_computed_from_the_raw_rows(commands: Commands, shared_data: Path) -> None:
    rows = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    buy = sum((r["q"] for r in rows if not r["m"]), Decimal(0))
    reply = await commands.run(ALICE, "flow", ["BTCUSDT", "1h"])
    assert reply.title.startswith("BTCUSDT flow, last 1h")
    assert f"Buy volume: {buy.quantize(Decimal('0.0001')):,}" in reply.body
    assert f"Trades: {len(rows):,} in " in reply.body
    assert (await commands.run(ALICE, "flow", ["ETHUSDT"])).title == "No flow stored for ETHUSDT yet."


async def test_chart_is_a_png(commands: Commands) -> None:
    reply = await commands.run(ALICE, "chart", ["BTCUSDT", "15m"])
    assert reply.png is not None and reply.png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", reply.png[16:24])
    assert width > 300 and height > 300


async def test_settings_buttons_change_what_they_say(commands: Commands) -> None:
    shown = await commands.run(ALICE, "settings", [])
    assert "whale: on" in shown.body
    whale = next(b for row in shown.buttons for b in row if b.label == "whale: on")
    assert len(whale.data.encode()) <= 64

    after = await commands.on_button(ALICE, whale.data)
    assert after.title == "Saved." and "whale: silent" in after.body
    after = await commands.on_button(ALICE, "settings quiet 22-7")
    assert "Quiet hours (alerts arrive silently): 22:00 to 07:00 UTC" in after.body
    assert (await commands.on_button(ALICE, "something else")).title == "That button is no longer valid."
    after = await commands.run(ALICE, "settings", ["language", "pt"])
    assert "Language: Português" in after.body
    settings = commands.subscriptions.settings(ALICE.destination)
    chosen = (settings.mode("whale"), settings.quiet_start, settings.quiet_end, settings.language)
    assert chosen == ("silent", 22, 7, "pt")


async def test_status_shows_feed_health(commands: Commands) -> None:
    reply = await commands.run(ALICE, "status", [])
    assert reply.title == "Feed healthy"
    assert "BTCUSDT: last trade 1 s ago, lag 120 ms, gaps 2 found / 1 filled / 1 unfilled (3 ids missing)" in reply.body
    assert "Connection spot-0: connected, 4 reconnects" in reply.body


async def test_admin_sees_counts_and_broadcast_queues_one_row_per_active_chat(commands: Commands) -> None:
    await commands.run(ALICE, "subscribe", ["BTCUSDT"])
    await commands.run(GROUP_TOPIC, "subscribe", ["BTCUSDT", "ETHUSDT"])
    reply = await commands.run(ADMIN, "admin", [])
    assert "Chats: 2 (2 active), subscriptions: 3" in reply.body

    assert (await commands.run(ADMIN, "broadcast", ["Maintenance", "at", "12:00"])).title == (
        "Broadcast queued for 2 chats."
    )
    assert commands.outbox.depth() == {"telegram": 2}
    assert "Outbox waiting: telegram 2" in (await commands.run(ADMIN, "admin", [])).body


async def test_ask_answers_from_the_store(commands: Commands) -> None:
    reply = await commands.run(ALICE, "ask", ["is", "BTC", "being", "bought?"])
    assert "BTCUSDT" in reply.title
    assert (await commands.run(ALICE, "ask", [])).title == "Ask me about the flow."


async def test_discord_alerts_here_needs_manage_channels(commands: Commands) -> None:
    member = Caller(Destination("discord", "300"), user_id="7", is_private=False, guild_id="900")
    manager = Caller(Destination("discord", "301"), user_id="8", is_private=False, guild_id="900",
                     can_manage_channels=True)
    subscribed = await commands.run(member, "subscribe", ["BTCUSDT"])
    assert subscribed.title == "Subscribed to BTCUSDT (all kinds) in <#300>."
    assert (await commands.alerts_here(member)).title == "You need the Manage Channels permission for that."
    assert (await commands.alerts_here(manager)).title == "This server's alerts now arrive in <#301>."
    assert (await commands.run(manager, "list", [])).body == "BTCUSDT: all kinds"


async def test_status_says_how_far_behind_the_market_the_feed_is(btc_data_dir: Path, tmp_path: Path) -> None:
    import time

    from core.health import ConnectionHealth, FeedHealth

    health = FeedHealth()
    health.connections["binance-0"] = ConnectionHealth(
        "binance-0", 2, connected=True, watermark_ms=int(time.time() * 1000) - 12_300, processing_lag_ms=11_800)
    health.symbol("BTCUSDT").connection = "binance-0"
    db = open_database(tmp_path / "flowbot.db")
    store = FeatureStore(btc_data_dir)
    commands = Commands(subscriptions=Subscriptions(db), outbox=Outbox(db, 30), store=store, symbols=SYMBOLS,
                        asker=Asker(ProviderChain([], timeout=1).answer, store, symbols=SYMBOLS),
                        feed_health=health.snapshot)
    reply = await commands.run(ALICE, "status", [])
    assert reply.title == "Feed healthy, behind the market by 12 s"
    assert "Connection binance-0: connected, 0 reconnects, event-time lag 12.3 s, processing lag 11.8 s" in reply.body
    health.connections["binance-0"].watermark_ms = int(time.time() * 1000) - 300
    assert (await commands.run(ALICE, "status", [])).title == "Feed healthy"
