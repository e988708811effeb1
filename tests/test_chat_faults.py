"""Issue 14, point 8: chat input that once broke a command or was stored wrongly."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai.ask import Asker
from ai.providers import ProviderChain
from bot.database import open_database
from bot.handlers.commands import Commands
from bot.models import Caller, Destination
from bot.outbox import Outbox
from bot.service import BotService
from bot.subscriptions import Subscriptions
from core.settings import Settings
from fakes.telegram_api import FakeTelegram
from flowbot.bot_config import bot_config
from storage.feature_store import FeatureStore

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
ALICE = Caller(Destination("telegram", "1001"), user_id="1001")


@pytest.fixture
def commands(tmp_path: Path) -> Commands:
    db = open_database(tmp_path / "flowbot.db")
    store = FeatureStore(tmp_path / "store")
    asker = Asker(ProviderChain([], timeout=1).answer, store, symbols=SYMBOLS)
    return Commands(subscriptions=Subscriptions(db), outbox=Outbox(db, 30), store=store, symbols=SYMBOLS,
                    asker=asker)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["digest", "²"], "The digest hour is 0 to 23 (UTC), or off."),
        (["digest", "٣"], "The digest hour is 0 to 23 (UTC), or off."),
        (["quiet", "²-3"], "Quiet hours look like 22-7 (UTC hours), or off."),
        (["quiet", "1-³"], "Quiet hours look like 22-7 (UTC hours), or off."),
    ],
)
async def test_unicode_digits_get_the_allowed_values_not_a_failure(commands: Commands, args, expected) -> None:
    reply = await commands.run(ALICE, "settings", args)
    assert reply.title == expected
    settings = commands.subscriptions.settings(ALICE.destination)
    assert (settings.digest_hour, settings.quiet_start, settings.quiet_end) == (None, None, None)


async def test_unicode_digits_are_refused_in_portuguese_too(commands: Commands) -> None:
    await commands.run(ALICE, "settings", ["language", "pt"])
    reply = await commands.run(ALICE, "settings", ["digest", "²"])
    assert reply.title == "A hora do resumo vai de 0 a 23 (UTC), ou off."


async def test_a_kind_repeated_400_times_is_stored_once(commands: Commands) -> None:
    reply = await commands.run(ALICE, "subscribe", ["BTCUSDT", *["whale"] * 400, "btc", "BTCUSDT"])
    assert reply.title == "Subscribed to BTCUSDT (whale)."
    assert commands.subscriptions.symbols(ALICE.destination) == [("BTCUSDT", ("whale",))]
    assert (await commands.run(ALICE, "list", [])).body == "BTCUSDT: whale"


@pytest.fixture
async def fake_telegram():
    async with FakeTelegram() as server:
        yield server


async def test_commands_addressed_to_another_bot_in_a_group_are_left_to_it(fake_telegram, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path), SYMBOLS="BTCUSDT,ETHUSDT",
                        TELEGRAM_BOT_TOKEN=fake_telegram.token, TELEGRAM_API_BASE_URL=fake_telegram.url,
                        TELEGRAM_CHAT_INTERVAL="0")
    store = FeatureStore(tmp_path / "store")
    service = BotService(bot_config(settings), store=store, signal_store=None,
                         asker=Asker(ProviderChain([], timeout=1).answer, store, symbols=SYMBOLS))
    await service.start()
    try:
        group = -100900
        for text in ("/help@some_other_bot", "/flow@some_other_bot BTCUSDT", "/frobnicate@some_other_bot"):
            fake_telegram.push_message(group, text, chat_type="supergroup")
        fake_telegram.push_message(group, "/list@flowbot_test_bot", chat_type="supergroup")
        await fake_telegram.wait_until(lambda: any(m.chat_id == group for m in fake_telegram.sent))
        fake_telegram.push_message(group, "/Help@FLOWBOT_TEST_BOT", chat_type="supergroup")
        await fake_telegram.wait_until(lambda: len([m for m in fake_telegram.sent if m.chat_id == group]) >= 2)
        replies = [m.text or "" for m in fake_telegram.sent if m.chat_id == group]
        assert len(replies) == 2
        assert replies[0].startswith("<b>No subscriptions yet.</b>")
        assert "/subscribe" in replies[1]
    finally:
        await service.stop()
