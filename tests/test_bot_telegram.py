"""The Telegram adapter end to end: the real python-telegram-bot Application against the fake Bot API."""

from __future__ import annotations

import asyncio
import html
import re
import socket
from pathlib import Path

import aiohttp
import pytest
from alert_groups import merge_groups

from ai.ask import Asker
from ai.providers import ProviderChain
from bot.handlers.commands import COMMANDS
from bot.models import Destination, Message
from bot.service import BotService
from bot.telegram.format import split_html
from core.events import Signal
from core.settings import Settings
from fakes.telegram_api import FakeTelegram
from flowbot.bot_config import bot_config
from storage.feature_store import FeatureStore

MERGE_S = 30
ADMIN = 42
SPAN_LINE = re.compile(r"^\d\d:\d\d:\d\d to \d\d:\d\d:\d\d UTC: ", re.MULTILINE)


@pytest.fixture(autouse=True)
def _timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


def expected_messages(signals: list[Signal]) -> list[list[str]]:
    """Signal ids per alert message, by the merge rule."""
    return [[s.id for s in group] for group in merge_groups(signals, MERGE_S)]


def make_service(fake: FakeTelegram, data_dir: Path, store_dir: Path, **overrides: str) -> BotService:
    settings = Settings(
        _env_file=None, DATA_DIR=str(data_dir), SYMBOLS="BTCUSDT,ETHUSDT", TELEGRAM_BOT_TOKEN=fake.token,
        TELEGRAM_API_BASE_URL=fake.url, TELEGRAM_ADMIN_IDS=str(ADMIN), TELEGRAM_CHAT_INTERVAL="0",
        ALERT_MERGE_WINDOW=str(MERGE_S), **overrides,
    )
    store = FeatureStore(store_dir)
    asker = Asker(ProviderChain([], timeout=1).answer, store, symbols=settings.symbols)
    return BotService(bot_config(settings), store=store, signal_store=None, asker=asker, retry_base_s=0.05)


async def reply_to(fake: FakeTelegram, chat_id: int, text: str, **push) -> str:
    """Push a message from a user and return the text of the bot's answer in that chat."""
    before = len(fake.sent)
    fake.push_message(chat_id, text, **push)
    await fake.wait_until(lambda: any(m.chat_id == chat_id for m in fake.sent[before:]))
    return next(m for m in fake.sent[before:] if m.chat_id == chat_id).text or ""


async def test_commands_menu_replies_topics_and_errors(fake: FakeTelegram, btc_data_dir: Path, tmp_path: Path):
    service = make_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        assert [c["command"] for c in fake.commands] == [c.name for c in COMMANDS if not c.admin]
        assert "Welcome to Flowbot" in await reply_to(fake, 1001, "/start")
        assert await reply_to(fake, 1001, "/subscribe btc whale") == (
            "<b>Subscribed to BTCUSDT (whale).</b>\n"
            "Alerts arrive as the market moves; /settings tunes them, /unsubscribe stops them."
        )
        assert await reply_to(fake, 1001, "/subscribe <script>") == (
            "<b>I don't follow '&lt;script&gt;'.</b>\nSymbols I follow: BTCUSDT, ETHUSDT."
        )
        assert "Unknown command /frobnicate." in await reply_to(fake, 1001, "/frobnicate")
        assert "for the bot's admins" in await reply_to(fake, 1001, "/admin")
        assert "Chats: 1 (1 active), subscriptions: 1" in await reply_to(fake, ADMIN, "/admin")

        in_topic = await reply_to(fake, -100777, "/subscribe ETHUSDT", chat_type="supergroup", thread_id=7)
        assert "Subscribed to ETHUSDT" in in_topic
        assert fake.sent[-1].thread_id == 7
        assert "ETHUSDT: all kinds" in await reply_to(fake, -100777, "/list", chat_type="supergroup", thread_id=7)
        assert "No subscriptions yet" in await reply_to(fake, -100777, "/list", chat_type="supergroup", thread_id=8)
    finally:
        await service.stop()


async def test_settings_keyboard_and_chart_photo(fake: FakeTelegram, btc_data_dir: Path, tmp_path: Path):
    service = make_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        await reply_to(fake, 1001, "/settings")
        shown = fake.sent[-1]
        buttons = [b for row in shown.reply_markup["inline_keyboard"] for b in row]
        whale = next(b for b in buttons if b["text"] == "whale: on")
        fake.push_callback(1001, 1001, whale["callback_data"], shown.message_id)
        await fake.wait_until(lambda: fake.edits and fake.callback_answers)
        assert fake.callback_answers[-1].text == "Saved."
        assert "whale: silent" in fake.edits[-1].text
        assert service.subscriptions.settings(_chat(1001)).mode("whale") == "silent"

        before = len(fake.sent)
        fake.push_message(1001, "/chart BTCUSDT 15m")
        photo = (await fake.wait_for_sent(before + 1))[-1]
        assert photo.photo is not None and photo.photo[:8] == b"\x89PNG\r\n\x1a\n"
        assert photo.caption.startswith("<b>BTCUSDT, last 15m</b>")
    finally:
        await service.stop()


def _chat(chat_id: int) -> Destination:
    return Destination("telegram", str(chat_id))


def subscribe(service: BotService, *chat_ids: int) -> None:
    for chat_id in chat_ids:
        service.subscriptions.ensure_chat(_chat(chat_id), is_private=True)
        service.subscriptions.subscribe(_chat(chat_id), ["BTCUSDT"])


def final_texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    """The texts of the bot's messages in a chat as they read now (after edits)."""
    return [fake.message(m.chat_id, m.message_id)["text"] for m in fake.sent if m.chat_id == chat_id]


async def test_real_signals_reach_each_subscriber_once_then_gain_their_explanation(
    fake: FakeTelegram, btc_data_dir: Path, tmp_path: Path, real_signals: list[Signal]
) -> None:
    service = make_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        subscribe(service, 2001, 2002, 2003)
        for signal in real_signals:
            await service.on_signal(signal)
            await service.on_signal(signal)  # delivered twice by the bus: alerted once
        assert await service.dispatchers["telegram"].drain(10)
        groups = expected_messages(real_signals)
        for chat_id in (2001, 2002, 2003):
            texts = final_texts(fake, chat_id)
            assert len(texts) == len(groups)
            assert sum(len(SPAN_LINE.findall(text)) for text in texts) == len(real_signals)
            assert all(text.startswith("BTCUSDT · ") for text in texts)
            assert all("Analysis: on its way" in text for text in texts)

        for signal in real_signals:
            await service.on_explanation(signal.id, f"Why {signal.id} happened.", "groq")
        assert await service.dispatchers["telegram"].drain(10)
        for chat_id in (2001, 2002, 2003):
            texts = final_texts(fake, chat_id)
            assert len(texts) == len(groups)
            for text, ids in zip(texts, groups, strict=True):
                assert f"Analysis (groq): Why {ids[-1]} happened." in text
        assert len(fake.sent) == 3 * len(groups)
    finally:
        await service.stop()


async def test_flood_control_pauses_all_sending_and_loses_nothing(
    fake: FakeTelegram, btc_data_dir: Path, tmp_path: Path, real_signals: list[Signal]
) -> None:
    service = make_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        subscribe(service, *range(3001, 3011))
        fake.fail_next("sendMessage", 2, status=429, retry_after=1)
        await service.on_signal(real_signals[0])
        assert await service.dispatchers["telegram"].drain(10)
        limited = [c for c in fake.requests if c.method == "sendMessage" and c.status == 429]
        assert len(limited) == 2
        asked_at = limited[0].at  # sends already on the wire may still arrive; then a second of silence
        during_wait = [c for c in fake.requests if c.method == "sendMessage" and asked_at + 0.2 < c.at < asked_at + 1]
        assert during_wait == []
        assert sorted(m.chat_id for m in fake.sent) == list(range(3001, 3011))
    finally:
        await service.stop()


async def test_server_errors_are_retried_and_a_blocked_chat_is_deactivated(
    fake: FakeTelegram, btc_data_dir: Path, tmp_path: Path, real_signals: list[Signal]
) -> None:
    service = make_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        subscribe(service, 4001, 4002)
        fake.block(4002)
        fake.fail_next("sendMessage", 2, status=502)
        await service.on_signal(real_signals[0])
        assert await service.dispatchers["telegram"].drain(10)
        assert [m.chat_id for m in fake.sent] == [4001]
        assert not service.subscriptions.is_active(_chat(4002))

        later = next(s for s in real_signals if s.window_start >= real_signals[0].window_start + MERGE_S * 1000)
        await service.on_signal(later)
        assert await service.dispatchers["telegram"].drain(10)
        assert [m.chat_id for m in fake.sent] == [4001, 4001]
        assert len([c for c in fake.requests if c.status == 403]) == 1  # never tried the blocked chat again
    finally:
        await service.stop()


async def test_a_restart_in_the_middle_of_an_outage_loses_nothing_and_repeats_nothing(
    fake: FakeTelegram, btc_data_dir: Path, tmp_path: Path, real_signals: list[Signal]
) -> None:
    first = make_service(fake, tmp_path, btc_data_dir)
    await first.start()
    subscribe(first, 5001, 5002)
    fake.outage(True)
    for signal in real_signals:
        await first.on_signal(signal)
    await fake.wait_until(lambda: len([c for c in fake.requests if c.status == 502]) >= 4)
    await asyncio.sleep(0.1)
    await first.stop()
    assert fake.sent == []

    fake.outage(False)
    second = make_service(fake, tmp_path, btc_data_dir)
    await second.start()
    try:
        assert await second.dispatchers["telegram"].drain(10)
        groups = expected_messages(real_signals)
        for chat_id in (5001, 5002):
            texts = final_texts(fake, chat_id)
            assert len(texts) == len(groups)
            assert sum(len(SPAN_LINE.findall(text)) for text in texts) == len(real_signals)
        for signal in real_signals:  # the bus redelivers after the restart: still once
            await second.on_signal(signal)
        assert await second.dispatchers["telegram"].drain(10)
        assert len(fake.sent) == 2 * len(groups)
    finally:
        await second.stop()


async def test_webhook_mode_registers_and_answers_updates_posted_with_the_secret(
    fake: FakeTelegram, btc_data_dir: Path, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    public = "https://flowbot.example/telegram"  # TLS ends at a proxy that forwards to the local listener
    url = f"http://127.0.0.1:{port}/telegram"
    service = make_service(fake, tmp_path, btc_data_dir, TELEGRAM_WEBHOOK_URL=public,
                           TELEGRAM_WEBHOOK_PORT=str(port))
    await service.start()
    try:
        assert fake.webhook_url == public
        secret = fake.calls("setWebhook")[-1]["secret_token"]
        assert secret and fake.token not in secret
        update = {"update_id": 1, "message": {
            "message_id": 5, "date": 1_767_225_600, "text": "/list", "chat": {"id": 1001, "type": "private"},
            "from": {"id": 1001, "is_bot": False, "first_name": "Tester"},
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        }}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=update) as refused:
                assert refused.status == 403
            async with session.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}) as ok:
                assert ok.status == 200
        sent = await fake.wait_for_sent(1)
        assert sent[0].chat_id == 1001 and "No subscriptions yet" in (sent[0].text or "")
    finally:
        await service.stop()


async def test_a_private_deployment_answers_only_its_allowed_chats(
    fake: FakeTelegram, btc_data_dir: Path, tmp_path: Path
) -> None:
    service = make_service(fake, tmp_path, btc_data_dir, TELEGRAM_ALLOWED_CHAT_IDS="1001,-100777")
    await service.start()
    try:
        assert "This Flowbot is private." in await reply_to(fake, 2002, "/subscribe BTCUSDT")
        assert not service.subscriptions.symbols(_chat(2002))
        assert "Subscribed to BTCUSDT" in await reply_to(fake, 1001, "/subscribe BTCUSDT")
    finally:
        await service.stop()


def test_long_texts_split_at_4096_characters_between_lines_and_lose_nothing() -> None:
    lines = [f"line {i} <{'x' * (i % 97)}> & more" for i in range(600)]
    parts = split_html(Message("A long reply", "\n".join(lines)))
    assert len(parts) > 1 and all(len(part) <= 4096 for part in parts)
    joined = html.unescape("\n".join(parts))
    assert joined == "<b>A long reply</b>\n" + "\n".join(lines)
    one_huge_line = split_html(Message("t", "&" * 9000))
    assert all(len(part) <= 4096 for part in one_huge_line)
    assert html.unescape("".join(one_huge_line[1:])) == "&" * 9000
