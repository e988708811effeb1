"""The Discord adapter end to end: the real discord.py client, through BotService, against the fake Discord."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import discord
import pytest
from alert_groups import merge_groups
from discord.gateway import DiscordWebSocket

import bot.discord.adapter as discord_adapter
from ai.ask import Asker
from ai.providers import ProviderChain
from bot.discord.embeds import DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT, TITLE_LIMIT, embed_of
from bot.discord.sender import delivery_error
from bot.errors import DeliveryError, DestinationGone, Rejected, RetryLater, TemporaryFailure
from bot.handlers.commands import COMMANDS
from bot.models import Destination, Message
from bot.service import BotService
from core.events import Signal
from core.settings import Settings
from fakes.discord_api import (
    ALERTS_CHANNEL_ID,
    GENERAL_CHANNEL_ID,
    GUILD_ID,
    MANAGE_CHANNELS,
    MODERATOR_ID,
    TRADER_ID,
    DispatchedInteraction,
    FakeDiscord,
    SentMessage,
)
from flowbot.bot_config import bot_config
from storage.feature_store import FeatureStore

MERGE_S = 30
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GREEN, RED, GREY = (discord.Colour.green().value, discord.Colour.red().value, discord.Colour.light_grey().value)
SERVER = Destination("discord", str(GUILD_ID))


@pytest.fixture(autouse=True)
def _fast_ready_and_restored_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """discord.py's endpoints are process-wide: put them back after each test; and a short guild-ready wait."""
    monkeypatch.setattr(discord_adapter, "GUILD_READY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", DiscordWebSocket.DEFAULT_GATEWAY)


@pytest.fixture
async def fake():
    async with FakeDiscord() as server:
        yield server




def make_service(data_dir: Path, store_dir: Path, **settings: str) -> BotService:
    config = Settings(_env_file=None, DATA_DIR=str(data_dir), SYMBOLS="BTCUSDT,ETHUSDT",
                      ALERT_MERGE_WINDOW=str(MERGE_S), **settings)
    store = FeatureStore(store_dir)
    asker = Asker(ProviderChain([], timeout=1).answer, store, symbols=config.symbols)
    return BotService(bot_config(config), store=store, signal_store=None, asker=asker, retry_base_s=0.05)


def bot_service(fake: FakeDiscord, data_dir: Path, store_dir: Path, **settings: str) -> BotService:
    return make_service(data_dir, store_dir, DISCORD_BOT_TOKEN=fake.token, DISCORD_API_BASE_URL=fake.api_base,
                        DISCORD_GATEWAY_URL=fake.gateway_url, DISCORD_ADMIN_IDS=str(MODERATOR_ID), **settings)


async def interact(fake: FakeDiscord, command: str, options: dict | None = None, **where) -> DispatchedInteraction:
    """Run a slash command and wait for the bot's final answer (a deferred one once it is edited in)."""
    interaction_id = await fake.dispatch_interaction(command, options, **where)
    answered = await fake.wait_for_response(interaction_id)
    await fake.wait_until(lambda: answered.type != 5 or bool(answered.original and answered.original.edits))
    return answered


async def reply_title(fake: FakeDiscord, command: str, options: dict | None = None, **where) -> str:
    answered = await interact(fake, command, options, **where)
    assert answered.original is not None
    return answered.original.embeds[0]["title"]


async def choices(fake: FakeDiscord, command: str, options: dict, focused: str) -> list[str]:
    interaction_id = await fake.dispatch_interaction(command, options, focused=focused)
    answered = await fake.wait_for_response(interaction_id)
    assert answered.type == 8
    return [choice["value"] for choice in answered.data["choices"]]


def final_embeds(fake: FakeDiscord, channel_id: int) -> list[dict]:
    """The embed of each message in a channel, as it reads now (after edits)."""
    return [m.embeds[0] for m in fake.messages if m.channel_id == channel_id]


def colour_of(group: list[Signal]) -> int:
    directions = {s.direction for s in group}
    return {"buy": GREEN, "sell": RED}.get(directions.pop(), GREY) if len(directions) == 1 else GREY


async def test_commands_are_synced_with_hints_choices_and_autocomplete(
    fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path
) -> None:
    service = bot_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        synced = {c["name"]: c for c in fake.commands_for()}
        assert set(synced) == {c.name for c in COMMANDS} | {"alerts"}
        options = {name: [(o["name"], o.get("required", False), o.get("autocomplete", False))
                          for o in c["options"]] for name, c in synced.items()}
        assert options["subscribe"] == [("symbols", True, True), ("kinds", False, True)]
        assert options["unsubscribe"] == [("symbols", True, True)]
        assert options["flow"] == options["chart"] == [("symbol", True, True), ("window", False, False)]
        assert options["ask"] == [("question", True, False)]
        assert options["settings"] == [("option", False, False), ("value", False, True)]
        assert options["broadcast"] == [("text", True, False)]
        assert all(options[name] == [] for name in ("start", "help", "list", "status", "admin"))
        assert all(o["description"] for c in synced.values() for o in c["options"])
        assert [c["value"] for c in synced["flow"]["options"][1]["choices"]] == ["5m", "15m", "1h", "4h", "24h"]
        assert synced["alerts"]["default_member_permissions"] == str(MANAGE_CHANNELS)
        assert [(o["name"], o["type"]) for o in synced["alerts"]["options"]] == [("here", 1)]
        assert options["alert"] == [("rule", True, True)]

        assert await choices(fake, "flow", {"symbol": "bt"}, "symbol") == ["BTCUSDT"]
        assert await choices(fake, "subscribe", {"symbols": "BTCUSDT e"}, "symbols") == ["BTCUSDT ETHUSDT"]
        assert "all" in await choices(fake, "unsubscribe", {"symbols": ""}, "symbols")
        assert await choices(fake, "settings", {"option": "whale", "value": ""}, "value") == ["on", "silent", "off"]
        assert await choices(fake, "alert", {"rule": "et"}, "rule") == ["ETHUSDT"]
        assert await choices(fake, "alert", {"rule": "ETHUSDT buy"}, "rule") == ["ETHUSDT buy_share"]
        assert await choices(fake, "alert", {"rule": "BTCUSDT delta 5"}, "rule") == ["BTCUSDT delta 5m"]
    finally:
        await service.stop()


async def test_replies_and_helpful_answers_to_mistakes(fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path) -> None:
    service = bot_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        assert await reply_title(fake, "start") == "Welcome to Flowbot: order-flow alerts for Binance markets."
        help_reply = await interact(fake, "help")
        assert "/alerts here" in help_reply.data["embeds"][0]["description"]
        assert await reply_title(fake, "subscribe", {"symbols": "DOGE"}) == "I don't follow 'DOGE'."
        assert await reply_title(fake, "flow", {"symbol": "BTCUSDT", "window": "7m"}) == "Unknown window '7m'."
        assert await reply_title(fake, "settings", {"option": "severity", "value": "9"}) == "Severity is 1, 2 or 3."
        flow = await interact(fake, "flow", {"symbol": "btc", "window": "15m"})
        assert flow.data["embeds"][0]["title"].startswith("BTCUSDT")

        assert await reply_title(fake, "admin", user_id=TRADER_ID) == "That command is for the bot's admins."
        assert await reply_title(fake, "admin", user_id=MODERATOR_ID) == "Flowbot admin"

        stale = {**fake.commands_for()[0], "id": "1", "name": "frobnicate", "options": []}
        fake.commands[None].append(stale)  # still listed by Discord, gone from the bot
        assert await reply_title(fake, "frobnicate") == "Unknown command /frobnicate."
    finally:
        await service.stop()


async def test_alerts_here_needs_manage_channels(fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path,
                                                 real_signals: list[Signal]) -> None:
    service = bot_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        await interact(fake, "subscribe", {"symbols": "BTCUSDT"}, channel_id=ALERTS_CHANNEL_ID)
        with pytest.raises(PermissionError):  # Discord hides the command from members without the permission
            await fake.dispatch_interaction("alerts here", user_id=TRADER_ID, channel_id=GENERAL_CHANNEL_ID)
        alerts = next(c for c in fake.commands_for() if c["name"] == "alerts")
        alerts["default_member_permissions"] = None  # a server that opened the command to everyone
        refused = await reply_title(fake, "alerts here", user_id=TRADER_ID, channel_id=GENERAL_CHANNEL_ID)
        assert refused == "You need the Manage Channels permission for that."
        moved = await reply_title(fake, "alerts here", user_id=MODERATOR_ID, channel_id=GENERAL_CHANNEL_ID)
        assert moved == f"This server's alerts now arrive in <#{GENERAL_CHANNEL_ID}>."

        await service.on_signal(real_signals[0])
        assert await service.dispatchers["discord"].drain(10)
        [alert] = [m for m in fake.messages if m.type == 0]
        assert alert.channel_id == GENERAL_CHANNEL_ID
    finally:
        await service.stop()


async def test_chart_is_a_png_attachment_shown_in_the_embed(
    fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path
) -> None:
    service = bot_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        answered = await interact(fake, "chart", {"symbol": "BTCUSDT", "window": "15m"})
        assert answered.type == 5  # deferred: rendering may take longer than Discord's 3 s
        assert answered.original is not None
        [chart] = answered.original.files
        assert (chart.filename, chart.content_type, chart.data[:8]) == ("chart.png", "image/png", PNG_MAGIC)
        [embed] = answered.original.embeds
        assert embed["title"] == "BTCUSDT, last 15m" and embed["image"]["url"] == "attachment://chart.png"
    finally:
        await service.stop()


async def test_real_signals_reach_the_servers_alert_channel_once_coloured_then_explained(
    fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path, real_signals: list[Signal]
) -> None:
    service = bot_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        await interact(fake, "subscribe", {"symbols": "BTCUSDT"}, channel_id=ALERTS_CHANNEL_ID)
        for signal in real_signals:
            await service.on_signal(signal)
            await service.on_signal(signal)  # delivered twice by the bus: alerted once
        assert await service.dispatchers["discord"].drain(10)
        groups = merge_groups(real_signals, MERGE_S)
        alerts = [m for m in fake.messages if m.type == 0]
        assert [m.channel_id for m in alerts] == [ALERTS_CHANNEL_ID] * len(groups)
        embeds = final_embeds(fake, ALERTS_CHANNEL_ID)
        assert [e["color"] for e in embeds] == [colour_of(group) for group in groups]
        assert {GREEN, RED} <= {e["color"] for e in embeds}
        assert all(e["title"].startswith("BTCUSDT · ") and "Analysis: on its way" in e["description"] for e in embeds)

        for signal in real_signals:
            await service.on_explanation(signal.id, f"Why {signal.id} happened.", "groq")
        assert await service.dispatchers["discord"].drain(10)
        embeds = final_embeds(fake, ALERTS_CHANNEL_ID)
        assert len(embeds) == len(groups)
        for embed, group in zip(embeds, groups, strict=True):
            assert f"Analysis (groq): Why {group[-1].id} happened." in embed["description"]
        assert all(m.edits for m in alerts)
    finally:
        await service.stop()


@pytest.mark.parametrize("fault", ["forbid", "unknown_channel"])
async def test_a_forbidden_or_deleted_alert_channel_deactivates_the_subscription(
    fault: str, fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path, real_signals: list[Signal]
) -> None:
    service = bot_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        await interact(fake, "subscribe", {"symbols": "BTCUSDT"}, channel_id=ALERTS_CHANNEL_ID)
        assert service.subscriptions.is_active(SERVER)
        getattr(fake, fault)(ALERTS_CHANNEL_ID)
        await service.on_signal(real_signals[0])
        assert await service.dispatchers["discord"].drain(10)
        assert not service.subscriptions.is_active(SERVER)
        later = next(s for s in real_signals if s.window_start >= real_signals[0].window_start + MERGE_S * 1000)
        await service.on_signal(later)
        assert await service.dispatchers["discord"].drain(10)
        posts = [c for c in fake.rest_calls if c.method == "POST" and c.path.startswith("/channels/")]
        assert [c.status for c in posts] == [403 if fault == "forbid" else 404]  # never tried again
        assert [m for m in fake.messages if m.type == 0] == []
    finally:
        await service.stop()


@pytest.mark.parametrize("status", [429, 503])
async def test_a_rate_limited_or_failing_channel_still_gets_the_alert_exactly_once(
    status: int, fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path, real_signals: list[Signal]
) -> None:
    service = bot_service(fake, tmp_path, btc_data_dir, DISCORD_ALERT_CHANNEL_ID=str(ALERTS_CHANNEL_ID))
    await service.start()
    try:
        fake.fail_next(f"POST /channels/{ALERTS_CHANNEL_ID}/messages", 1, status=status, retry_after=0.05)
        await service.on_signal(real_signals[0])
        assert await service.dispatchers["discord"].drain(10)
        posts = [c.status for c in fake.rest_calls if c.path == f"/channels/{ALERTS_CHANNEL_ID}/messages"]
        assert posts == [status, 200]
        assert len(fake.messages) == 1
    finally:
        await service.stop()


async def test_the_alert_channel_setting_gets_every_signal(
    fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path, real_signals: list[Signal]
) -> None:
    service = bot_service(fake, tmp_path, btc_data_dir, DISCORD_ALERT_CHANNEL_ID=str(GENERAL_CHANNEL_ID))
    await service.start()
    try:
        for signal in real_signals:
            await service.on_signal(signal)
        assert await service.dispatchers["discord"].drain(10)
        groups = merge_groups(real_signals, MERGE_S)
        assert [m.channel_id for m in fake.messages] == [GENERAL_CHANNEL_ID] * len(groups)
        assert sum(len(e["description"].split(" UTC: ")) - 1 for e in final_embeds(fake, GENERAL_CHANNEL_ID)) == (
            len(real_signals)
        )
    finally:
        await service.stop()


async def test_the_webhook_gets_every_alert_without_a_bot(
    fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path, real_signals: list[Signal], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    webhook = fake.add_webhook(ALERTS_CHANNEL_ID)
    service = make_service(tmp_path, btc_data_dir, DISCORD_WEBHOOK_URL=webhook.url,
                           DISCORD_API_BASE_URL=fake.api_base)
    assert service.adapters == []
    await service.start()
    try:
        for signal in real_signals:
            await service.on_signal(signal)
        assert await service.dispatchers["webhook"].drain(10)
        groups = merge_groups(real_signals, MERGE_S)
        sent: list[SentMessage] = fake.messages
        assert [(m.channel_id, m.webhook_id) for m in sent] == [(ALERTS_CHANNEL_ID, webhook.id)] * len(groups)
        assert [m.embeds[0]["color"] for m in sent] == [colour_of(group) for group in groups]

        for signal in real_signals:
            await service.on_explanation(signal.id, f"Why {signal.id} happened.", "groq")
        assert await service.dispatchers["webhook"].drain(10)
        for message, group in zip(sent, groups, strict=True):
            assert f"Analysis (groq): Why {group[-1].id} happened." in message.embeds[0]["description"]
    finally:
        await service.stop()
    assert webhook.token not in caplog.text  # the URL holds the webhook's token


async def test_without_a_gateway_setting_the_gateway_is_looked_up_at_the_api_base(
    fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service = make_service(tmp_path, btc_data_dir, DISCORD_BOT_TOKEN=fake.token, DISCORD_API_BASE_URL=fake.api_base)
    await service.start()
    try:
        assert ("GET", "/gateway/bot", 200) in fake.rest_calls
        assert await reply_title(fake, "list") == "No subscriptions yet."
    finally:
        await service.stop()
    assert discord.http.Route.BASE == "https://discord.com/api/v10"  # stop puts discord.py back
    assert fake.token not in caplog.text


def _http_error(kind: type[discord.HTTPException], status: int, code: int, text: str) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason=text, headers={})
    return kind(response, {"code": code, "message": text})  # type: ignore[arg-type]


@pytest.mark.parametrize(("error", "meaning"), [
    (_http_error(discord.Forbidden, 403, 50013, "Missing Permissions"), DestinationGone),
    (_http_error(discord.NotFound, 404, 10003, "Unknown Channel"), DestinationGone),
    (_http_error(discord.NotFound, 404, 10015, "Unknown Webhook"), DestinationGone),
    (_http_error(discord.NotFound, 404, 10008, "Unknown Message"), Rejected),  # deleted alert: channel stays
    (_http_error(discord.HTTPException, 400, 50035, "Invalid Form Body"), Rejected),
    (_http_error(discord.DiscordServerError, 503, 0, "Service Unavailable"), TemporaryFailure),
    (_http_error(discord.HTTPException, 429, 0, "Too Many Requests"), RetryLater),
    (discord.RateLimited(12.5), RetryLater),
    (aiohttp.ServerDisconnectedError(), TemporaryFailure),
    (TimeoutError(), TemporaryFailure),
])
def test_discord_errors_mean_what_the_outbox_expects(error: Exception, meaning: type[DeliveryError]) -> None:
    found = delivery_error(error)
    assert type(found) is meaning
    if isinstance(found, RetryLater):
        assert not found.whole_platform  # Discord's limits are per route


async def test_oversized_messages_are_cut_to_discords_limits_and_accepted(
    fake: FakeDiscord, btc_data_dir: Path, tmp_path: Path
) -> None:
    huge = Message("T" * 400, "line of text\n" * 1000, direction="sell")
    embed = embed_of(huge)
    assert len(embed.title or "") == TITLE_LIMIT and (embed.title or "").endswith("…")
    assert DESCRIPTION_LIMIT - 20 < len(embed.description or "") <= DESCRIPTION_LIMIT
    assert len(embed) <= EMBED_TOTAL_LIMIT
    service = bot_service(fake, tmp_path, btc_data_dir)
    await service.start()
    try:
        sender = service.dispatchers["discord"].sender
        message_id = await sender.send(Destination("discord", str(ALERTS_CHANNEL_ID)), huge)
        await sender.edit(Destination("discord", str(ALERTS_CHANNEL_ID)), message_id, huge)
        [sent] = fake.messages
        assert str(sent.id) == message_id and sent.embeds[0]["color"] == RED and len(sent.edits) == 1
    finally:
        await service.stop()
