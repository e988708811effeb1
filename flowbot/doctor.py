"""`flowbot doctor`: checks the settings and every service they name, and says what to fix; never prints a secret."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
import groq
import openai
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from rich.console import Console
from rich.table import Table

from core.logs import Masker, secret_values
from core.settings import Market, Settings
from flowbot.feed_config import venue_from
from storage.feature_store import FeatureStore
from storage.quarantine import QUARANTINE, quarantined_files

CHECK_TIMEOUT = 3.0  # seconds for each check; they run at the same time
USDM_DATA_MARGIN = 0.5  # seconds of the check left for saying that no USD-M data came
OK, FAIL, SKIPPED = "ok", "FAIL", "skipped"
_STYLES = {OK: "green", FAIL: "bold red", SKIPPED: "dim"}
_BINANCE_PING = {Market.SPOT: "/api/v3/ping", Market.USDM: "/fapi/v1/ping"}


@dataclass
class Result:
    check: str
    status: str  # ok | FAIL | skipped
    detail: str


class Problem(Exception):
    """A failed check; the message says what is wrong and what to fix."""


class Skip(Exception):
    """A check of something not configured; the message says which setting would configure it."""


Check = Callable[[], Awaitable[str]]  # the detail of a passed check; raises Problem or Skip


async def doctor(settings: Settings, out: TextIO) -> int:
    """Run every check, print a table of them on `out`; 0 when everything configured works, else 1."""
    mask = Masker(secret_values(settings))
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        checks: list[tuple[str, Check]] = [
            ("settings", lambda: _settings(settings)),
            ("DATA_DIR", lambda: _data_dir(settings)),
            ("feature store", lambda: asyncio.to_thread(_feature_store, settings)),
            ("Binance REST", lambda: _binance_rest(session, settings)),
            ("Binance WebSocket", lambda: _binance_ws(session, settings)),
            ("Telegram", lambda: _telegram(session, settings)),
            ("Discord bot", lambda: _discord_bot(session, settings)),
            ("Discord webhook", lambda: _discord_webhook(session, settings)),
            *_ai_checks(settings),
            ("Redis", lambda: _redis(settings)),
        ]
        results = await asyncio.gather(*(_run(name, check, mask) for name, check in checks))
    _print(results, out)
    return 1 if any(r.status == FAIL for r in results) else 0


async def _run(name: str, check: Check, mask: Masker) -> Result:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            detail = await check()
    except TimeoutError:
        return Result(name, FAIL, f"no answer within {CHECK_TIMEOUT:g} s: check the address and the network")
    except Skip as exc:
        return Result(name, SKIPPED, str(exc))
    except Problem as exc:
        return Result(name, FAIL, mask(str(exc)))
    except Exception as exc:  # any other failure is a finding, not a crash of the doctor
        return Result(name, FAIL, mask(f"{type(exc).__name__}: {exc}"))
    return Result(name, OK, mask(detail))


def _print(results: list[Result], out: TextIO) -> None:
    console = Console(file=out, width=None if out.isatty() else 160, highlight=False)
    table = Table("check", "status", "detail / what to fix", title="flowbot doctor")
    for result in results:
        table.add_row(result.check, f"[{_STYLES[result.status]}]{result.status}[/]", result.detail)
    console.print(table)
    failed = sum(r.status == FAIL for r in results)
    console.print("Everything configured works." if not failed else f"{failed} check(s) failed: see FAIL above.")


async def _settings(settings: Settings) -> str:
    bots = [name for name, on in (("Telegram", settings.telegram_bot_token), ("Discord", settings.discord_bot_token),
                                  ("Discord webhook", settings.discord_webhook_url)) if on is not None]
    ai = [name for name, key in (("Groq", settings.groq_api_key), ("DashScope", settings.dashscope_api_key),
                                 ("OpenAI", settings.openai_api_key)) if key is not None]
    followed = "every trading symbol (SYMBOLS=ALL)" if settings.all_symbols else f"{len(settings.symbols)} symbols"
    return (f"{settings.market.value} {settings.stream.value}, {followed}; "
            f"bots: {', '.join(bots) or 'none (alerts on the console)'}; "
            f"AI: {', '.join(ai) or 'none (offline explanations)'}")


async def _data_dir(settings: Settings) -> str:
    path = Path(settings.data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        raise Problem(f"cannot write {path}: {exc.strerror or exc}: set DATA_DIR to a writable folder") from exc
    return f"{path.resolve()} is writable"


def _feature_store(settings: Settings) -> str:
    """Every stored file read; unreadable ones are moved aside, and any file set aside (now or before) reported."""
    store = FeatureStore(Path(settings.data_dir))
    symbols = store.symbols()
    windows = sum(store.read(symbol).num_rows for symbol in symbols)
    aside = quarantined_files(store.root)
    if aside:
        shown = ", ".join(str(p.relative_to(store.root / QUARANTINE)) for p in aside[:5])
        more = f" and {len(aside) - 5} more" if len(aside) > 5 else ""
        raise Problem(f"{len(aside)} unreadable file(s) moved aside to {store.root / QUARANTINE}: {shown}{more}; "
                      f"their windows are missing (replay the days to restore them), then delete the folder")
    return f"{windows:,} windows of {len(symbols)} symbol(s) read"


async def _binance_rest(session: aiohttp.ClientSession, settings: Settings) -> str:
    url = settings.rest_url + _BINANCE_PING[settings.market]
    started = time.monotonic()
    try:
        async with session.get(url) as response:
            status = response.status
    except aiohttp.ClientError as exc:
        raise Problem(f"cannot reach {url}: {_reason(exc)}: check BINANCE_REST_URL and the network") from exc
    if status != 200:
        raise Problem(f"{url} answered HTTP {status}: check BINANCE_REST_URL and MARKET")
    return f"{url} answered in {_ms(started)}"


async def _binance_ws(session: aiohttp.ClientSession, settings: Settings) -> str:
    """Open the first symbol's connection; on USD-M also wait for its first message (an unrouted one gets none)."""
    venue = venue_from(settings)
    url = venue.connection_url(settings.ws_url, venue.stream_names(["BTCUSDT" if settings.all_symbols else
                                                                    settings.symbols[0]]))
    started = time.monotonic()
    try:
        async with session.ws_connect(url, autoping=False) as ws:
            if settings.market is not Market.USDM:
                return f"connected to {url} in {_ms(started)}"
            wait = CHECK_TIMEOUT - USDM_DATA_MARGIN - (time.monotonic() - started)
            if not await _first_data(ws, wait):
                raise Problem(f"connected to {url} but no market data arrived within {max(wait, 0):.1f} s: USD-M "
                              "serves market streams only on the /market route of BINANCE_WS_URL (set it to the "
                              "base, e.g. wss://fstream.binance.com)")
    except (aiohttp.ClientError, aiohttp.WSServerHandshakeError) as exc:
        raise Problem(f"cannot open {url}: {_reason(exc)}: check BINANCE_WS_URL and the network") from exc
    return f"{url} delivered data in {_ms(started)}"


async def _first_data(ws: aiohttp.ClientWebSocketResponse, within: float) -> bool:
    """Whether a stream message (a text frame with "data") arrives within `within` seconds."""
    try:
        async with asyncio.timeout(max(within, 0.0)):
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT and '"data"' in message.data:
                    return True
    except TimeoutError:
        pass
    return False


async def _telegram(session: aiohttp.ClientSession, settings: Settings) -> str:
    if settings.telegram_bot_token is None:
        raise Skip("TELEGRAM_BOT_TOKEN is not set")
    base = settings.telegram_api_base_url.rstrip("/")
    url = f"{base}/bot{settings.telegram_bot_token.get_secret_value()}/getMe"
    status, body = await _get_json(session, url, "TELEGRAM_API_BASE_URL", shown=f"{base}/bot***/getMe")
    if status in (401, 404):
        raise Problem(f"Telegram refused the token (HTTP {status}): set TELEGRAM_BOT_TOKEN to the token @BotFather "
                      "gave")
    if status != 200 or not body.get("ok"):
        raise Problem(f"getMe answered HTTP {status}: {body.get('description', 'no description')}")
    return f"bot @{body['result'].get('username', '?')}"


async def _discord_bot(session: aiohttp.ClientSession, settings: Settings) -> str:
    if settings.discord_bot_token is None:
        raise Skip("DISCORD_BOT_TOKEN is not set")
    url = settings.discord_api_base_url.rstrip("/") + "/users/@me"
    headers = {"Authorization": f"Bot {settings.discord_bot_token.get_secret_value()}"}
    status, body = await _get_json(session, url, "DISCORD_API_BASE_URL", headers=headers)
    if status == 401:
        raise Problem("Discord refused the token (HTTP 401): set DISCORD_BOT_TOKEN to the bot token of the "
                      "Developer Portal (Bot page)")
    if status != 200:
        raise Problem(f"GET /users/@me answered HTTP {status}: {body.get('message', 'no message')}")
    return f"bot {body.get('username', '?')}"


async def _discord_webhook(session: aiohttp.ClientSession, settings: Settings) -> str:
    """GET the webhook through DISCORD_API_BASE_URL, where the bots send to it (as discord.py does)."""
    if settings.discord_webhook_url is None:
        raise Skip("DISCORD_WEBHOOK_URL is not set")
    parts = urlsplit(settings.discord_webhook_url.get_secret_value()).path.rstrip("/").split("/")
    if len(parts) < 3 or parts[-3] != "webhooks" or not parts[-2].isdigit():
        raise Problem("DISCORD_WEBHOOK_URL does not look like https://discord.com/api/webhooks/ID/TOKEN: copy it "
                      "from the channel's Integrations > Webhooks")
    webhook_id, token = parts[-2], parts[-1]
    url = f"{settings.discord_api_base_url.rstrip('/')}/webhooks/{webhook_id}/{token}"
    status, body = await _get_json(session, url, "DISCORD_API_BASE_URL", shown=f"webhook {webhook_id}")
    if status in (401, 404):
        raise Problem(f"Discord does not know webhook {webhook_id} (HTTP {status}): it was deleted or its URL is "
                      "wrong; copy DISCORD_WEBHOOK_URL again")
    if status != 200:
        raise Problem(f"GET webhook {webhook_id} answered HTTP {status}")
    return f"webhook {body.get('name', webhook_id)}"


def _ai_checks(settings: Settings) -> list[tuple[str, Check]]:
    providers: list[tuple[str, str, Any, str, str, Any]] = [
        ("Groq", "GROQ", settings.groq_api_key, settings.groq_base_url, settings.groq_model, groq.AsyncGroq),
        ("DashScope", "DASHSCOPE", settings.dashscope_api_key, settings.dashscope_base_url, settings.dashscope_model,
         openai.AsyncOpenAI),
        ("OpenAI", "OPENAI", settings.openai_api_key, settings.openai_base_url, settings.openai_model,
         openai.AsyncOpenAI),
    ]
    return [
        (name, _ai_check(prefix, key.get_secret_value() if key else None, base_url, model, client))
        for name, prefix, key, base_url, model, client in providers
    ]


def _ai_check(prefix: str, key: str | None, base_url: str, model: str, client_class: Any) -> Check:
    async def check() -> str:
        if key is None:
            raise Skip(f"{prefix}_API_KEY is not set")
        sdk = groq if client_class is groq.AsyncGroq else openai
        client = client_class(api_key=key, base_url=base_url, max_retries=0, timeout=CHECK_TIMEOUT)
        try:
            models = [m.id for m in (await client.models.list()).data]
        except sdk.AuthenticationError as exc:
            raise Problem(f"the key was refused (HTTP 401): check {prefix}_API_KEY") from exc
        except sdk.APIStatusError as exc:
            raise Problem(f"listing models answered HTTP {exc.status_code}: check {prefix}_BASE_URL") from exc
        except sdk.APIConnectionError as exc:  # timeouts included
            raise Problem(f"cannot reach {base_url}: check {prefix}_BASE_URL and the network") from exc
        finally:
            await client.close()
        listed = "listed" if model in models else f"not among the {len(models)} listed: check {prefix}_MODEL"
        return f"{base_url} answered; model {model} {listed}"

    return check


async def _redis(settings: Settings) -> str:
    url = settings.bus_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise Skip("BUS_URL is not redis://: the in-process bus")
    where = urlsplit(url)
    shown = f"{where.hostname}:{where.port or 6379}" if where.hostname else where.path
    client = redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT,
                            retry=Retry(NoBackoff(), 0))
    try:
        await client.ping()
    except redis.AuthenticationError as exc:
        raise Problem(f"Redis at {shown} refused the password: check BUS_URL") from exc
    except (redis.ConnectionError, OSError) as exc:
        raise Problem(f"cannot reach Redis at {shown} ({exc}): check BUS_URL and that Redis runs") from exc
    finally:
        await client.aclose()
    return f"PING answered by {shown}"


async def _get_json(
    session: aiohttp.ClientSession, url: str, setting: str, *, shown: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Status and JSON object of a GET; a failure to connect names the setting to check."""
    try:
        async with session.get(url, headers=headers) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = {}
            return response.status, body if isinstance(body, dict) else {}
    except aiohttp.ClientError as exc:
        raise Problem(f"cannot reach {shown or url}: {_reason(exc)}: check {setting} and the network") from exc


def _reason(exc: Exception) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return str(exc.os_error.strerror or exc.os_error)
    return str(exc) or type(exc).__name__


def _ms(started: float) -> str:
    return f"{(time.monotonic() - started) * 1000:.0f} ms"
