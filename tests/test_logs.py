"""Log lines: text or JSON, and never a secret from the settings, whoever logs it (httpx logs Telegram's token)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from urllib.parse import quote

import orjson
import pytest
from telegram import Bot

from core.logs import configure_logging
from core.settings import Settings
from fakes.telegram_api import FakeTelegram

TELEGRAM_TOKEN = "123456789:AAFakeTelegramTokenForFlowbotTests0000"
SECRETS = {
    "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
    "DISCORD_BOT_TOKEN": "MTMxMDAwMDAwMDAwMDAwMDAwMQ.GfAkEd.discord-secret-token",
    "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1310000000000000555/webhook-secret-token-abc",
    "GROQ_API_KEY": "gsk_groq_secret_key_123",
    "DASHSCOPE_API_KEY": "sk-dashscope-secret-456",
    "OPENAI_API_KEY": "sk-openai-secret-789",
    "BUS_URL": "redis://:redis-pass-w0rd@127.0.0.1:6379/0",
}
SECRET_TEXTS = [*list(SECRETS.values())[:-1], "webhook-secret-token-abc", "redis-pass-w0rd"]


@pytest.fixture
def restore_root() -> Iterator[None]:
    """configure_logging replaces the root logger's handlers: give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def settings(**values: str) -> Settings:
    base = {**SECRETS, "TELEGRAM_API_BASE_URL": "http://127.0.0.1:1"}
    return Settings(_env_file=None, **(base | values))


def assert_no_secret(text: str) -> None:
    for secret in SECRET_TEXTS:
        assert secret not in text, f"{secret!r} leaked into:\n{text}"


@pytest.mark.usefixtures("restore_root")
def test_text_lines_by_default() -> None:
    out = io.StringIO()
    configure_logging(settings(), out)
    logging.getLogger("flowbot.test").warning("feed %s stalled", "conn-0")
    line = out.getvalue().strip()
    assert line.endswith("WARNING flowbot.test: feed conn-0 stalled")


@pytest.mark.usefixtures("restore_root")
def test_json_lines_carry_time_level_logger_message_exception_and_extras() -> None:
    out = io.StringIO()
    configure_logging(settings(LOG_FORMAT="json", LOG_LEVEL="DEBUG"), out)
    log = logging.getLogger("flowbot.test")
    log.debug("window closed for %s", "BTCUSDT", extra={"symbol": "BTCUSDT", "trades": 42})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("delivery failed")
    first, second = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "DEBUG"
    assert first["logger"] == "flowbot.test"
    assert first["message"] == "window closed for BTCUSDT"
    assert first["symbol"] == "BTCUSDT"
    assert first["trades"] == 42
    assert first["time"].endswith("+00:00")
    assert "exception" not in first
    assert second["level"] == "ERROR"
    assert second["message"] == "delivery failed"
    assert "RuntimeError: boom" in second["exception"]
    assert "Traceback" in second["exception"]


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.usefixtures("restore_root")
def test_secrets_are_masked_in_messages_args_exceptions_and_extras(log_format: str) -> None:
    out = io.StringIO()
    configure_logging(settings(LOG_FORMAT=log_format), out)
    log = logging.getLogger("flowbot.test")
    log.info("token is " + TELEGRAM_TOKEN)
    log.info("calling %s with key %s", SECRETS["DISCORD_WEBHOOK_URL"], SECRETS["GROQ_API_KEY"])
    log.info("webhook token %s", "webhook-secret-token-abc", extra={"key": SECRETS["OPENAI_API_KEY"],
                                                                    "headers": {"auth": SECRETS["DISCORD_BOT_TOKEN"]}})
    log.warning("quoted: %s", quote(SECRETS["DISCORD_WEBHOOK_URL"], safe=""))
    try:
        raise ConnectionError(f"cannot reach {SECRETS['BUS_URL']}")
    except ConnectionError:
        log.exception("redis down")
    text = out.getvalue()
    assert_no_secret(text)
    assert text.count("***") >= 6
    assert "https%3A" not in text
    assert "ConnectionError: cannot reach redis://:***@127.0.0.1:6379/0" in text


async def telegram_calls_logged(level: str) -> str:
    """What the log says while the real python-telegram-bot (over httpx) calls the fake Bot API twice."""
    out = io.StringIO()
    async with FakeTelegram(TELEGRAM_TOKEN) as telegram:
        configure_logging(settings(LOG_LEVEL=level, TELEGRAM_API_BASE_URL=telegram.url), out)
        async with Bot(TELEGRAM_TOKEN, base_url=telegram.base_url) as bot:
            await bot.get_me()
            await bot.send_message(chat_id=42, text="hello")
    assert telegram.sent[0].text == "hello"
    return out.getvalue()


@pytest.mark.usefixtures("restore_root")
async def test_the_telegram_token_in_httpx_request_urls_is_masked() -> None:
    text = await telegram_calls_logged("DEBUG")
    assert "/bot***/getMe" in text
    assert "/bot***/sendMessage" in text
    assert_no_secret(text)


@pytest.mark.usefixtures("restore_root")
async def test_third_party_info_chatter_is_left_out_unless_debugging() -> None:
    text = await telegram_calls_logged("INFO")
    info = [line for line in text.splitlines() if " INFO " in line]  # an earlier test's leaked client may log an ERROR
    assert "HTTP Request" not in text and not [line for line in info if "httpx" in line], info
    assert_no_secret(text)

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    for level, shown in (("INFO", False), ("DEBUG", True)):
        out = io.StringIO()
        configure_logging(settings(LOG_LEVEL=level), out)
        scheduler = AsyncIOScheduler()
        scheduler.add_job(print, "interval", hours=1)  # APScheduler logs "Adding job tentatively" at INFO
        assert ("Adding job tentatively" in out.getvalue()) is shown, level
        logging.getLogger("flowbot.test").info("our own INFO line")
        assert "our own INFO line" in out.getvalue(), level
