"""python-telegram-bot on our aiohttp backend: calls, markup, uploads, and failures as PTB's own errors."""

from __future__ import annotations

import socket

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import NetworkError, TimedOut

from bot.telegram.request import AiohttpRequest
from fakes.telegram_api import FakeTelegram

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def bot(token: str, base: str, **timeouts: float) -> Bot:
    return Bot(token, base_url=f"{base}/bot", request=AiohttpRequest(**timeouts),
               get_updates_request=AiohttpRequest(pool_size=1))


async def test_messages_markup_edits_and_photos_reach_the_bot_api() -> None:
    buttons = InlineKeyboardMarkup([[InlineKeyboardButton("Severity 2", callback_data="settings:severity:2")]])
    async with FakeTelegram() as fake, bot(fake.token, fake.url) as client:
        assert client.username == fake.bot_user["username"]
        sent = await client.send_message(42, "<b>BTCUSDT</b> bought", parse_mode="HTML", message_thread_id=7,
                                         reply_markup=buttons)
        await client.edit_message_text("<b>BTCUSDT</b> bought, explained", chat_id=42, message_id=sent.message_id,
                                       parse_mode="HTML")
        await client.send_photo(42, PNG, caption="chart")
    first, photo = fake.sent
    assert (first.chat_id, first.thread_id, first.text, first.parse_mode) == (42, 7, "<b>BTCUSDT</b> bought", "HTML")
    assert first.reply_markup == {"inline_keyboard": [[{"text": "Severity 2", "callback_data": "settings:severity:2"}]]}
    assert fake.edits[0].text == "<b>BTCUSDT</b> bought, explained"
    assert photo.photo == PNG and photo.caption == "chart"


async def test_an_unreachable_api_is_a_network_error_without_the_token() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = FakeTelegram().token
    client = bot(token, f"http://127.0.0.1:{port}")
    await client.request.initialize()
    try:
        with pytest.raises(NetworkError) as caught:
            await client.send_message(42, "hello")
    finally:
        await client.request.shutdown()
    assert token not in str(caught.value) and "aiohttp.Client" in str(caught.value)


async def test_an_answer_slower_than_the_read_timeout_is_a_timeout() -> None:
    async with FakeTelegram(delay=2.0) as fake:
        client = bot(fake.token, fake.url, read_timeout=0.1)
        await client.request.initialize()
        try:
            with pytest.raises(TimedOut):
                await client.send_message(42, "hello")
        finally:
            await client.request.shutdown()
