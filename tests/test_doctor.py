"""`flowbot doctor` against the fakes and the real Redis: a table of checks, what to fix, and never a secret."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from core.settings import Settings
from fakes.binance import FakeBinance
from fakes.chat_completions import FakeChatServer
from fakes.discord_api import TOKEN as DISCORD_TOKEN
from fakes.discord_api import FakeDiscord
from fakes.recordings import load_ws_recording
from fakes.telegram_api import FakeTelegram
from flowbot.doctor import doctor

TELEGRAM_TOKEN = "123456789:AAFakeTelegramTokenForFlowbotTests0000"
AI_KEYS = {"GROQ_API_KEY": "gsk_doctor_groq_key", "DASHSCOPE_API_KEY": "sk-doctor-dashscope-key",
           "OPENAI_API_KEY": "sk-doctor-openai-key"}
WEBHOOK_ID, WEBHOOK_TOKEN = "1310000000000000777", "doctor-webhook-token-xyz"


pytestmark = pytest.mark.usefixtures("redis_url")  # skips without Redis, fails when REQUIRE_REDIS=1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rows(output: str) -> dict[str, tuple[str, str]]:
    """check -> (status, detail) from the table, a wrapped detail joined again."""
    found: dict[str, tuple[str, str]] = {}
    last = ""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) != 3 or line.lstrip().startswith("┃"):
            continue
        name, status, detail = cells
        if name:
            last = name
            found[name] = (status, detail)
        elif last:
            found[last] = (found[last][0], f"{found[last][1]} {detail}")
    return found


@pytest.fixture
async def services() -> AsyncIterator[tuple[FakeBinance, FakeTelegram, FakeDiscord, FakeChatServer]]:
    async with FakeBinance([]) as binance, FakeTelegram(TELEGRAM_TOKEN) as telegram, FakeDiscord() as discord, \
            FakeChatServer() as chat:
        yield binance, telegram, discord, chat


def configured(services: tuple[FakeBinance, FakeTelegram, FakeDiscord, FakeChatServer], tmp_path: Path,
               **overrides: str) -> Settings:
    binance, telegram, discord, chat = services
    values = {
        "BINANCE_WS_URL": binance.ws_url, "BINANCE_REST_URL": binance.rest_url,
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TELEGRAM_API_BASE_URL": telegram.url,
        "DISCORD_BOT_TOKEN": DISCORD_TOKEN, "DISCORD_API_BASE_URL": discord.api_base,
        "GROQ_BASE_URL": chat.groq_base_url, "DASHSCOPE_BASE_URL": chat.dashscope_base_url,
        "OPENAI_BASE_URL": chat.openai_base_url, **AI_KEYS,
        "BUS_URL": "redis://127.0.0.1:6379/0", "DATA_DIR": str(tmp_path / "data"),
    }
    return Settings(_env_file=None, **(values | overrides))


def assert_no_secret(output: str, *more: str) -> None:
    for secret in (TELEGRAM_TOKEN, DISCORD_TOKEN, WEBHOOK_TOKEN, *AI_KEYS.values(), *more):
        assert secret not in output


async def test_everything_configured_works(services, tmp_path: Path) -> None:
    out = io.StringIO()
    code = await doctor(configured(services, tmp_path), out)
    output = out.getvalue()
    table = rows(output)
    assert code == 0, output
    for check in ("settings", "DATA_DIR", "Binance REST", "Binance WebSocket", "Telegram", "Discord bot", "Groq",
                  "DashScope", "OpenAI", "Redis"):
        assert table[check][0] == "ok", output
    assert table["Discord webhook"] == ("skipped", "DISCORD_WEBHOOK_URL is not set")
    assert "@flowbot_test_bot" in table["Telegram"][1]
    assert "model llama-3.3-70b-versatile listed" in table["Groq"][1]
    assert "PING answered by 127.0.0.1:6379" in table["Redis"][1]
    assert "Everything configured works." in output
    assert_no_secret(output)
    _, telegram, discord, chat = services
    assert [call.method for call in telegram.requests] == ["getMe"]
    assert ("GET", "/users/@me", 200) in discord.rest_calls
    assert {request.provider for request in chat.requests} == {"groq", "dashscope", "openai"}


async def test_wrong_token_unreachable_redis_and_unwritable_data_dir_say_what_to_fix(services, tmp_path: Path) -> None:
    wrong_token = "987654321:AAWrongTelegramTokenNotKnownToTheFake00"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = io.StringIO()
    settings = configured(services, tmp_path, TELEGRAM_BOT_TOKEN=wrong_token,
                          BUS_URL=f"redis://:redis-secret-pw@127.0.0.1:{free_port()}/0",
                          DATA_DIR=str(blocker / "data"))
    code = await doctor(settings, out)
    output = out.getvalue()
    table = rows(output)
    assert code == 1, output
    assert table["Telegram"][0] == "FAIL"
    assert "set TELEGRAM_BOT_TOKEN" in table["Telegram"][1]
    assert table["Redis"][0] == "FAIL"
    assert "check BUS_URL and that Redis runs" in table["Redis"][1]
    assert table["DATA_DIR"][0] == "FAIL"
    assert "set DATA_DIR to a writable folder" in table["DATA_DIR"][1]
    assert table["Binance REST"][0] == table["Discord bot"][0] == table["Groq"][0] == "ok"
    assert "3 check(s) failed" in output
    assert_no_secret(output, wrong_token, "redis-secret-pw")


async def test_nothing_reachable_fails_each_check_with_the_setting_to_fix(tmp_path: Path) -> None:
    port = free_port()
    dead = f"http://127.0.0.1:{port}"
    settings = Settings(
        _env_file=None, BINANCE_WS_URL=f"ws://127.0.0.1:{port}", BINANCE_REST_URL=dead,
        TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN, TELEGRAM_API_BASE_URL=dead,
        DISCORD_BOT_TOKEN=DISCORD_TOKEN, DISCORD_API_BASE_URL=dead,
        GROQ_API_KEY=AI_KEYS["GROQ_API_KEY"], GROQ_BASE_URL=dead, DATA_DIR=str(tmp_path),
    )
    out = io.StringIO()
    assert await doctor(settings, out) == 1
    table = rows(out.getvalue())
    for check, setting in (("Binance REST", "BINANCE_REST_URL"), ("Binance WebSocket", "BINANCE_WS_URL"),
                           ("Telegram", "TELEGRAM_API_BASE_URL"), ("Discord bot", "DISCORD_API_BASE_URL"),
                           ("Groq", "GROQ_BASE_URL")):
        assert table[check][0] == "FAIL"
        assert f"check {setting}" in table[check][1]
    assert table["Redis"][0] == table["OpenAI"][0] == "skipped"
    assert_no_secret(out.getvalue())


@pytest.fixture
async def webhook_api() -> AsyncIterator[str]:
    """Discord's GET /webhooks/{id}/{token}, which FakeDiscord does not serve: an object for the known webhook."""

    async def get_webhook(request: web.Request) -> web.Response:
        if request.match_info["token"] != WEBHOOK_TOKEN:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        return web.json_response({"id": request.match_info["id"], "name": "Flowbot alerts", "type": 1})

    app = web.Application()
    app.router.add_get("/api/v10/webhooks/{id}/{token}", get_webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/api/v10"
    await runner.cleanup()


@pytest.mark.parametrize(("token", "status", "detail"), [
    (WEBHOOK_TOKEN, "ok", "webhook Flowbot alerts"),
    ("deleted-webhook-token", "FAIL", f"Discord does not know webhook {WEBHOOK_ID} (HTTP 404)"),
])
async def test_the_discord_webhook_is_checked(webhook_api: str, tmp_path: Path, token: str, status: str,
                                              detail: str) -> None:
    settings = Settings(_env_file=None, DISCORD_WEBHOOK_URL=f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{token}",
                        DISCORD_API_BASE_URL=webhook_api, DATA_DIR=str(tmp_path))
    out = io.StringIO()
    await doctor(settings, out)
    assert rows(out.getvalue())["Discord webhook"][0] == status
    assert rows(out.getvalue())["Discord webhook"][1].startswith(detail)
    assert_no_secret(out.getvalue(), token)


async def test_usdm_websocket_check_needs_data_on_the_routed_connection(shared_data: Path, tmp_path: Path) -> None:
    tape = load_ws_recording(shared_data / "binance-usdm-aggtrade-ws.jsonl")
    neo = [message for message in tape if message["data"]["s"] == "NEOUSDT"]
    usdm = {"MARKET": "usdm", "SYMBOLS": "NEOUSDT", "DATA_DIR": str(tmp_path / "data")}
    async with FakeBinance(neo, market="usdm", rate=20.0, batch=1) as routed:
        routed.play()
        out = io.StringIO()
        await doctor(Settings(_env_file=None, BINANCE_WS_URL=routed.ws_url, **usdm), out)
        status, detail = rows(out.getvalue())["Binance WebSocket"]
        assert status == "ok"
        assert "/market/stream?streams=neousdt@aggTrade/neousdt@forceOrder/neousdt@markPrice@1s" in detail
        assert "delivered data" in detail
    async with FakeBinance([], market="usdm") as silent:  # a routed connection that never delivers
        out = io.StringIO()
        await doctor(Settings(_env_file=None, BINANCE_WS_URL=silent.ws_url, **usdm), out)
        status, detail = rows(out.getvalue())["Binance WebSocket"]
        assert status == "FAIL" and "no market data arrived" in detail and "/market route" in detail
