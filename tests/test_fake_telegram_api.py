"""Tests of the fake Telegram Bot API server itself, driven by the real python-telegram-bot over sockets."""

from __future__ import annotations

import html
import struct
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageEntity,
    Update,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import AIORateLimiter, Application, CallbackQueryHandler, CommandHandler, ContextTypes, ExtBot

from fakes.telegram_api import FakeTelegram, parse_html

CHAT = 4242
GROUP = -1001234567890
PNG = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", 64, 32, 8, 2, 0, 0, 0)
KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("Mute BTC", callback_data="mute:BTCUSDT")]])


@pytest.fixture(autouse=True)
def timedelta_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB's coming time periods as timedelta (RetryAfter.retry_after), which also silences its deprecation warning."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """A started fake Bot API, closed after the test."""
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    """A real, initialized telegram.Bot pointed at the fake."""
    async with Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) as client:
        yield client


async def post(fake: FakeTelegram, method: str, token: str | None = None, **body: Any) -> tuple[int, str, Any]:
    """A raw JSON call: status, content type and decoded body."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}{token or fake.token}/{method}", json=body) as response,
    ):
        return response.status, response.content_type, await response.json()


async def test_initialize_gets_me_and_the_bot_knows_itself(fake: FakeTelegram, bot: Bot) -> None:
    """Bot.initialize() calls getMe; id comes from the token, username from the fake."""
    assert (bot.id, bot.username) == (123456789, "flowbot_test_bot")
    [call] = fake.requests
    assert (call.method, call.status) == ("getMe", 200)


async def test_wrong_token_is_unauthorized(fake: FakeTelegram) -> None:
    """A token the fake was not created with answers 401, which PTB raises as InvalidToken."""
    with pytest.raises(InvalidToken, match="rejected"):
        async with Bot("42:wrong", base_url=fake.base_url):
            pass
    assert fake.requests[0].status == 401
    assert await post(fake, "getMe", token="42:wrong") == (
        401,
        "application/json",
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )


async def test_unknown_method_is_not_found(fake: FakeTelegram, bot: Bot) -> None:
    """An unserved method answers Telegram's JSON 404; PTB's do_api_request raises EndPointNotFound."""
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("getBananas", api_kwargs={"chat_id": CHAT})
    assert await post(fake, "getBananas", chat_id=CHAT) == (
        404,
        "application/json",
        {"ok": False, "error_code": 404, "description": "Not Found"},
    )


async def test_json_bodies_are_served_like_form_bodies(fake: FakeTelegram) -> None:
    """A JSON-encoded call (as other clients send) gets a Bot API Message with typed fields."""
    markup = {"inline_keyboard": [[{"text": "Open", "url": "https://example.com"}]]}
    status, content_type, body = await post(fake, "sendMessage", chat_id=str(CHAT), text="hi", reply_markup=markup)
    assert (status, content_type, body["ok"]) == (200, "application/json", True)
    assert body["result"]["chat"] == {"id": CHAT, "type": "private", "first_name": "Tester"}
    assert body["result"]["reply_markup"] == markup
    assert fake.sent[0].reply_markup == markup


async def test_send_message_returns_a_message_and_records_what_was_sent(fake: FakeTelegram, bot: Bot) -> None:
    """HTML, thread, inline keyboard and link preview all reach the record; the answer is plain text with entities."""
    message = await bot.send_message(
        GROUP,
        "<b>BTCUSDT</b> whale &amp; co",
        parse_mode=ParseMode.HTML,
        message_thread_id=7,
        reply_markup=KEYBOARD,
        disable_web_page_preview=True,
    )
    assert (message.message_id, message.chat_id, message.chat.type) == (1, GROUP, "supergroup")
    assert message.text == "BTCUSDT whale & co"
    assert message.entities == (MessageEntity(MessageEntity.BOLD, 0, 7),)
    assert message.text_html == "<b>BTCUSDT</b> whale &amp; co"
    assert message.message_thread_id == 7
    assert message.from_user is not None and message.from_user.id == bot.id
    assert message.reply_markup == KEYBOARD
    [sent] = fake.sent
    assert (sent.chat_id, sent.thread_id, sent.message_id) == (GROUP, 7, 1)
    assert (sent.text, sent.parse_mode, sent.photo, sent.link_preview_disabled) == (
        "<b>BTCUSDT</b> whale &amp; co",
        "HTML",
        None,
        True,
    )
    assert sent.reply_markup == KEYBOARD.to_dict()
    assert fake.calls("sendMessage")[0]["message_thread_id"] == 7


async def test_message_ids_increase_per_chat(bot: Bot) -> None:
    """Each chat numbers its own messages from 1."""
    ids = [(await bot.send_message(chat, "x")).message_id for chat in (CHAT, GROUP, CHAT, CHAT, GROUP)]
    assert ids == [1, 1, 2, 3, 2]


@pytest.mark.parametrize(
    ("text", "parse_mode", "reason"),
    [
        ("x" * 4097, None, "Message is too long"),
        ("", None, "Message text is empty"),
        ("  \n ", None, "Message text is empty"),
        ("<b></b>", ParseMode.HTML, "Message text is empty"),
        ("<b>open", ParseMode.HTML, "Can't parse entities: can't find end tag corresponding to start tag \"b\""),
        ("<b>x</i>", ParseMode.HTML, "Unmatched end tag at byte offset 4"),
        ("<div>x</div>", ParseMode.HTML, 'Unsupported start tag "div" at byte offset 0'),
        ("1 < 2", ParseMode.HTML, 'Unsupported start tag "" at byte offset 2'),
        ("<span>x</span>", ParseMode.HTML, 'Tag "span" must have class "tg-spoiler"'),
        ("x</b>", ParseMode.HTML, "Unexpected end tag at byte offset 1"),
        ("hi", "Bogus", "Unsupported parse_mode"),
    ],
)
async def test_invalid_text_is_a_bad_request_and_sends_nothing(
    fake: FakeTelegram, bot: Bot, text: str, parse_mode: str | None, reason: str
) -> None:
    """Telegram's text rules give BadRequest (PTB capitalises the reason) and no message is recorded."""
    with pytest.raises(BadRequest) as caught:
        await bot.send_message(CHAT, text, parse_mode=parse_mode)
    assert reason.lower() in caught.value.message.lower()
    assert fake.sent == []
    assert (await bot.send_message(CHAT, "next")).message_id == 1


async def test_the_text_limit_counts_the_parsed_text(bot: Bot) -> None:
    """4096 characters of text pass even with markup around them."""
    message = await bot.send_message(CHAT, "<i>" + "y" * 4096 + "</i>", parse_mode=ParseMode.HTML)
    assert message.text == "y" * 4096


def test_parse_html_gives_telegram_entities_in_utf16_offsets() -> None:
    """Every supported tag maps to its entity; offsets count emoji as two units; entities decode."""
    text, entities = parse_html(
        "🐋 <strong>a</strong><em>b</em><ins>c</ins><del>d</del><a href='https://x.io/?a=1&amp;b=2'>e</a>"
        '<tg-spoiler>f</tg-spoiler><span class="tg-spoiler">g</span><pre><code class="language-py">h</code></pre>'
        "<blockquote expandable>i</blockquote> &lt;&gt;&quot;&#39;&#x41; & done"
    )
    assert text == "🐋 abcdefghi <>\"'A & done"
    kinds = [(e["type"], e["offset"], e["length"]) for e in entities]
    assert kinds == [
        ("bold", 3, 1),
        ("italic", 4, 1),
        ("underline", 5, 1),
        ("strikethrough", 6, 1),
        ("text_link", 7, 1),
        ("spoiler", 8, 1),
        ("spoiler", 9, 1),
        ("pre", 10, 1),
        ("expandable_blockquote", 11, 1),
    ]
    assert entities[4]["url"] == "https://x.io/?a=1&b=2"
    assert entities[7]["language"] == "py"


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_escaped_text_parses_back_to_itself(text: str) -> None:
    """Whatever an adapter escapes with html.escape comes back unchanged and without entities."""
    assert parse_html(html.escape(text)) == (text, [])


async def test_send_photo_uploads_bytes_over_multipart(fake: FakeTelegram, bot: Bot) -> None:
    """Uploaded bytes are stored with the caption, answered as a PhotoSize and downloadable via getFile."""
    message = await bot.send_photo(GROUP, PNG, caption="<i>chart</i>", parse_mode=ParseMode.HTML, reply_markup=KEYBOARD)
    assert message.caption == "chart" and message.caption_entities == (MessageEntity(MessageEntity.ITALIC, 0, 5),)
    [size] = message.photo
    assert (size.width, size.height, size.file_size) == (64, 32, len(PNG))
    [sent] = fake.sent
    assert (sent.photo, sent.caption, sent.text, sent.reply_markup) == (PNG, "<i>chart</i>", None, KEYBOARD.to_dict())
    downloaded = await (await bot.get_file(size.file_id)).download_as_bytearray()
    assert bytes(downloaded) == PNG
    again = await bot.send_photo(GROUP, size.file_id)
    assert fake.sent[1].photo == PNG and again.caption is None


@pytest.mark.parametrize(
    ("photo", "caption", "reason"),
    [
        (PNG, "c" * 1025, "Message caption is too long"),
        (b"not an image", None, "Image_process_failed"),
        ("unknown-file-id", None, "Wrong file identifier/http url specified"),
    ],
)
async def test_bad_photos_are_bad_requests(
    fake: FakeTelegram, bot: Bot, photo: bytes | str, caption: str | None, reason: str
) -> None:
    """Long captions, non-image bytes and unknown file ids are refused; nothing is sent."""
    with pytest.raises(BadRequest, match=reason):
        await bot.send_photo(CHAT, photo, caption=caption)
    assert fake.sent == []


async def test_editing_text_and_caption(fake: FakeTelegram, bot: Bot) -> None:
    """Edits change the stored message and are recorded; same content and unknown messages are refused."""
    sent = await bot.send_message(CHAT, "<b>v1</b>", parse_mode=ParseMode.HTML, reply_markup=KEYBOARD)
    edited = await bot.edit_message_text("<b>v2</b>", CHAT, sent.message_id, parse_mode=ParseMode.HTML)
    assert edited.text == "v2" and edited.edit_date is not None and edited.reply_markup is None
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("<b>v2</b>", CHAT, sent.message_id, parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("v3", CHAT, 99)
    with pytest.raises(BadRequest, match="There is no caption in the message to edit"):
        await bot.edit_message_caption(CHAT, sent.message_id, caption="c")
    photo = await bot.send_photo(CHAT, PNG, caption="old")
    assert (await bot.edit_message_caption(CHAT, photo.message_id, caption="new")).caption == "new"
    assert [(e.method, e.message_id, e.text, e.caption) for e in fake.edits] == [
        ("editMessageText", 1, "<b>v2</b>", None),
        ("editMessageCaption", 2, None, "new"),
    ]
    stored = fake.message(CHAT, 1)
    assert stored is not None and stored["text"] == "v2"


async def test_delete_message(fake: FakeTelegram, bot: Bot) -> None:
    """A deleted message is gone: deleting or editing it again is a BadRequest."""
    sent = await bot.send_message(CHAT, "bye")
    assert await bot.delete_message(CHAT, sent.message_id) is True
    assert fake.deleted == [(CHAT, 1)] and fake.message(CHAT, 1) is None
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(CHAT, sent.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("again", CHAT, sent.message_id)


async def test_commands_are_set_and_read_back_per_scope(fake: FakeTelegram, bot: Bot) -> None:
    """setMyCommands stores per scope; getMyCommands answers BotCommands; bad names are refused."""
    await bot.set_my_commands([BotCommand("start", "Subscribe"), BotCommand("mute", "Mute a symbol")])
    await bot.set_my_commands([BotCommand("admin", "Admin")], scope=BotCommandScopeChat(GROUP))
    assert [c.command for c in await bot.get_my_commands()] == ["start", "mute"]
    assert [c.command for c in await bot.get_my_commands(scope=BotCommandScopeChat(GROUP))] == ["admin"]
    assert fake.commands == [
        {"command": "start", "description": "Subscribe"},
        {"command": "mute", "description": "Mute a symbol"},
    ]
    assert fake.commands_for({"type": "chat", "chat_id": GROUP}) == [{"command": "admin", "description": "Admin"}]
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Bad-Name", "x")])


async def test_chat_action_and_get_chat(fake: FakeTelegram, bot: Bot) -> None:
    """sendChatAction is recorded; getChat answers a ChatFullInfo PTB can read."""
    assert await bot.send_chat_action(GROUP, ChatAction.UPLOAD_PHOTO, message_thread_id=3) is True
    assert fake.chat_actions == [(GROUP, "upload_photo", 3)]
    chat = await bot.get_chat(GROUP)
    assert (chat.id, chat.type) == (GROUP, "supergroup")


async def test_get_updates_honours_offset_and_does_not_hold_the_poll(fake: FakeTelegram, bot: Bot) -> None:
    """Updates stay until confirmed by a higher offset; an empty long poll returns without using its timeout."""
    first = fake.push_message(CHAT, "/start")
    fake.push_message(GROUP, "hello", user_id=7, chat_type="supergroup", thread_id=5)
    updates = await bot.get_updates(timeout=30)
    assert [u.update_id for u in updates] == [first, first + 1]
    command = updates[0].message
    assert command is not None and command.text == "/start" and command.from_user is not None
    assert command.entities == (MessageEntity(MessageEntity.BOT_COMMAND, 0, 6),)
    assert command.from_user.id == CHAT and not command.from_user.is_bot
    topic = updates[1].message
    assert topic is not None and (topic.message_thread_id, topic.chat.type, topic.from_user.id) == (5, "supergroup", 7)
    assert [u.update_id for u in await bot.get_updates(offset=first + 1)] == [first + 1]
    assert await bot.get_updates(offset=first + 2, timeout=30) == ()


async def test_webhook_calls(fake: FakeTelegram, bot: Bot) -> None:
    """setWebhook blocks getUpdates with a Conflict; deleteWebhook can drop pending updates."""
    fake.push_message(CHAT, "queued")
    assert await bot.set_webhook("https://example.com/hook") is True
    assert (await bot.get_webhook_info()).url == "https://example.com/hook"
    with pytest.raises(Conflict):
        await bot.get_updates()
    assert await bot.delete_webhook(drop_pending_updates=True) is True
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count) == ("", 0)
    assert await bot.get_updates() == ()


async def test_answer_callback_query_needs_a_live_query(fake: FakeTelegram, bot: Bot) -> None:
    """A pushed callback can be answered once; unknown or reused ids are refused."""
    sent = await bot.send_message(CHAT, "alert", reply_markup=KEYBOARD)
    update_id = fake.push_callback(CHAT, CHAT, "mute:BTCUSDT", sent.message_id)
    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None and (query.id, query.data) == (str(update_id), "mute:BTCUSDT")
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await query.answer("Muted", show_alert=True) is True
    assert [(a.callback_query_id, a.text, a.show_alert) for a in fake.callback_answers] == [
        (str(update_id), "Muted", True)
    ]
    with pytest.raises(BadRequest, match="Query is too old"):
        await query.answer()


async def test_injected_faults_raise_ptbs_errors_and_send_nothing(fake: FakeTelegram, bot: Bot) -> None:
    """429 → RetryAfter, 5xx → NetworkError, blocked chat → Forbidden; faulted calls create no message."""
    fake.fail_next("sendMessage", count=2, status=429, retry_after=7)
    fake.fail_next("sendMessage", status=502)
    fake.fail_next("sendmessage", status=500)
    for _ in range(2):
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(CHAT, "x")
        assert caught.value.retry_after == timedelta(seconds=7)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(CHAT, "x")
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(CHAT, "x")
    fake.block(CHAT)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_photo(CHAT, PNG)
    with pytest.raises(Forbidden):
        await bot.send_message(CHAT, "x")
    fake.unblock(CHAT)
    assert (await bot.send_message(CHAT, "through")).message_id == 1
    assert [c.status for c in fake.requests[1:]] == [429, 429, 502, 500, 403, 403, 200]
    assert [s.text for s in fake.sent] == ["through"]


async def test_429_body_is_telegrams(fake: FakeTelegram) -> None:
    """The raw 429 answer carries retry_after in parameters, as Telegram's does."""
    fake.fail_next("getMe", retry_after=3)
    assert await post(fake, "getMe") == (
        429,
        "application/json",
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        },
    )


async def test_outage_fails_every_method_until_cleared(fake: FakeTelegram, bot: Bot) -> None:
    """During an outage every call is a 502 NetworkError; afterwards calls work again."""
    fake.outage(True)
    with pytest.raises(NetworkError):
        await bot.get_me()
    with pytest.raises(NetworkError):
        await bot.send_message(CHAT, "x")
    fake.outage(False)
    assert (await bot.send_message(CHAT, "x")).message_id == 1


async def test_delay_beyond_the_read_timeout_times_out(fake: FakeTelegram, bot: Bot) -> None:
    """A per-request delay longer than the client's read timeout surfaces as TimedOut."""
    fake.delay = 0.5
    with pytest.raises(TimedOut):
        await bot.send_chat_action(CHAT, ChatAction.TYPING, read_timeout=0.05)
    fake.delay = 0.0
    assert await bot.send_chat_action(CHAT, ChatAction.TYPING) is True


async def test_aio_rate_limiter_retries_after_a_429(fake: FakeTelegram) -> None:
    """PTB's AIORateLimiter(max_retries=1) waits out one 429 and the retry is sent once."""
    fake.fail_next("sendMessage", status=429, retry_after=1)
    limiter = AIORateLimiter(max_retries=1)
    async with ExtBot(fake.token, base_url=fake.base_url, rate_limiter=limiter) as bot:
        message = await bot.send_message(CHAT, "eventually")
    assert message.text == "eventually"
    assert [c.status for c in fake.requests if c.method == "sendMessage"] == [429, 200]
    assert [s.text for s in fake.sent] == ["eventually"]


async def test_wait_for_sent_times_out_with_the_count(fake: FakeTelegram) -> None:
    """Waiting for messages that never come raises TimeoutError naming how many came."""
    with pytest.raises(TimeoutError, match="0 of 1 messages"):
        await fake.wait_for_sent(1, timeout=0.05)


def test_hooks_refuse_nonsense() -> None:
    """Typos in method names and impossible chats fail loudly instead of silently never matching."""
    fake = FakeTelegram()
    with pytest.raises(ValueError, match="not served"):
        fake.fail_next("sendMesage")
    with pytest.raises(ValueError, match="positive ids"):
        fake.push_message(-5, "hi")
    with pytest.raises(ValueError, match="chat_type"):
        fake.push_message(-5, "hi", chat_type="channel")


async def test_application_polls_commands_and_callbacks(fake: FakeTelegram) -> None:
    """A real Application polls, answers /start in a topic and answers a button press."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("<b>subscribed</b>", parse_mode=ParseMode.HTML, reply_markup=KEYBOARD)

    async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer(f"ok {update.callback_query.data}")
        await update.callback_query.edit_message_text("muted")

    app = Application.builder().token(fake.token).base_url(fake.base_url).base_file_url(fake.base_file_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(button))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0)
        fake.push_message(GROUP, "/start@flowbot_test_bot", user_id=7, chat_type="supergroup", thread_id=11)
        [sent] = await fake.wait_for_sent(1)
        fake.push_callback(GROUP, 7, "mute:BTCUSDT", sent.message_id)
        await fake.wait_until(lambda: fake.edits)
        await app.updater.stop()
        await app.stop()
    assert (sent.chat_id, sent.thread_id, sent.text) == (GROUP, 11, "<b>subscribed</b>")
    assert sent.message["text"] == "subscribed"
    assert [a.text for a in fake.callback_answers] == ["ok mute:BTCUSDT"]
    assert [(e.message_id, e.text) for e in fake.edits] == [(sent.message_id, "muted")]
    methods = [c.method for c in fake.requests]
    assert methods[0] == "getMe" and "deleteWebhook" in methods
    assert fake.calls("getUpdates")[-1]["offset"] == 3
