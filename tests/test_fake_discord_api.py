"""Tests of the fake Discord API itself, driven by the real discord.py client over sockets."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket

from fakes.discord_api import (
    ALERTS_CHANNEL_ID,
    APPLICATION_ID,
    BOT_USER_ID,
    EPHEMERAL,
    GENERAL_CHANNEL_ID,
    GUILD_ID,
    MANAGE_CHANNELS,
    MODERATOR_ID,
    TRADER_ID,
    FakeDiscord,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


class FlowClient(discord.Client):
    """A discord.py client with the slash commands these tests drive."""

    def __init__(self, intents: discord.Intents | None = None) -> None:
        super().__init__(intents=intents or discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.resumed = asyncio.Event()
        _register(self.tree)

    async def on_resumed(self) -> None:
        self.resumed.set()


def _register(tree: app_commands.CommandTree[FlowClient]) -> None:
    """/watch (autocomplete, Manage Channels), /chart (deferred), /setup (channel option), /alerts mute."""

    @tree.command(description="Watch a symbol")
    @app_commands.default_permissions(manage_channels=True)
    async def watch(interaction: discord.Interaction, symbol: str, threshold: float = 1.0) -> None:
        await interaction.response.send_message(f"Watching {symbol} above {threshold}", ephemeral=True)

    @watch.autocomplete("symbol")
    async def symbols(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=s, value=s) for s in SYMBOLS if current.upper() in s]

    @tree.command(description="Chart a symbol")
    async def chart(interaction: discord.Interaction, symbol: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send(file=discord.File(io.BytesIO(PNG), "chart.png"))
        await interaction.edit_original_response(content=f"Chart for {symbol}")

    @tree.command(description="Choose the alert channel")
    @app_commands.default_permissions(manage_channels=True)
    async def setup(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        await interaction.response.send_message(f"Alerts go to {channel.mention} in {channel.guild.name}")

    alerts = app_commands.Group(name="alerts", description="Alert settings")

    @alerts.command(description="Mute alerts")
    async def mute(interaction: discord.Interaction, minutes: int) -> None:
        await interaction.response.send_message(f"Muted for {minutes} minutes")

    tree.add_command(alerts)


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """A started fake, with discord.py's REST base and gateway pointed at it."""
    async with FakeDiscord() as server:
        monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url))
        yield server


async def _run(bot: FlowClient, token: str) -> AsyncIterator[FlowClient]:
    """Log in, sync the commands globally, connect until ready; close cleanly afterwards."""
    await bot.login(token)
    await bot.tree.sync()
    runner = asyncio.create_task(bot.connect())
    try:
        await asyncio.wait_for(bot.wait_until_ready(), 5)
        yield bot
    finally:
        await bot.close()
        await runner


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[FlowClient]:
    """A ready client with default intents."""
    async for bot in _run(FlowClient(), fake.token):
        yield bot


def _alerts(client: FlowClient) -> discord.TextChannel:
    """The cached #alerts channel."""
    channel = client.get_channel(ALERTS_CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_client_logs_in_and_receives_ready_and_the_guild(fake: FakeDiscord, client: FlowClient) -> None:
    """READY and GUILD_CREATE give the user, application, guild, channels, roles and the bot member."""
    assert client.user is not None and client.user.id == BOT_USER_ID and client.user.bot
    assert client.application_id == APPLICATION_ID
    guild = client.get_guild(GUILD_ID)
    assert guild is not None and not guild.unavailable
    assert [c.name for c in guild.text_channels] == ["alerts", "general"]
    assert {r.name for r in guild.roles} == {"@everyone", "Moderator", "Flowbot"}
    assert guild.me is not None and guild.me.guild_permissions.attach_files
    assert fake.gateway_queries == [{"v": "10", "encoding": "json", "compress": "zlib-stream"}]
    [identify] = fake.identifies
    assert identify["token"] == fake.token and identify["intents"] == discord.Intents.default().value
    await fake.wait_until(lambda: fake.heartbeats >= 1)


async def test_members_intent_gets_all_members_with_their_permissions(fake: FakeDiscord) -> None:
    """With GUILD_MEMBERS the guild arrives with every member; role permissions resolve in discord.py."""
    async for bot in _run(FlowClient(discord.Intents.default() | discord.Intents(members=True)), fake.token):
        guild = bot.get_guild(GUILD_ID)
        assert guild is not None and guild.member_count == len(guild.members) == 3
        moderator, trader = guild.get_member(MODERATOR_ID), guild.get_member(TRADER_ID)
        assert moderator is not None and moderator.guild_permissions.manage_channels
        assert trader is not None and not trader.guild_permissions.manage_channels


async def test_rest_answers_are_exactly_application_json(fake: FakeDiscord) -> None:
    """discord.py compares Content-Type verbatim: no charset may be appended."""
    headers = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as session, session.get(f"{fake.api_base}/users/@me", headers=headers) as r:
        assert r.headers["Content-Type"] == "application/json"
        assert (await r.json())["id"] == str(BOT_USER_ID)


async def test_wrong_token_is_a_login_failure(fake: FakeDiscord) -> None:
    """GET /users/@me with a wrong token answers 401, which discord.py reports as LoginFailure."""
    bot = FlowClient()
    with pytest.raises(discord.LoginFailure):
        await bot.login("not-the-token")
    await bot.close()


async def test_gateway_speaks_plain_json_and_closes_4004_on_a_wrong_token(fake: FakeDiscord) -> None:
    """Without compress= the frames are JSON text: HELLO, a heartbeat ACK, then 4004 for a bad IDENTIFY."""
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws:
        hello = await ws.receive_json()
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 41250
        await ws.send_json({"op": 1, "d": None})
        assert (await ws.receive_json())["op"] == 11
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0, "properties": {}}})
        closing = await ws.receive()
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4004
    assert fake.identifies == []


async def test_sync_records_commands_with_options_autocomplete_and_permissions(
    fake: FakeDiscord, client: FlowClient
) -> None:
    """Global and guild bulk overwrites are stored as sent; ids stay stable across syncs."""
    by_name = {c["name"]: c for c in fake.commands_for()}
    assert set(by_name) == {"watch", "chart", "setup", "alerts"}
    watch = by_name["watch"]
    assert watch["default_member_permissions"] == str(MANAGE_CHANNELS)
    assert [(o["name"], o["type"], o.get("autocomplete", False)) for o in watch["options"]] == [
        ("symbol", 3, True),
        ("threshold", 10, False),
    ]
    assert by_name["alerts"]["options"][0]["name"] == "mute"
    synced = await client.tree.sync()
    assert {c.name: c.id for c in synced} == {name: int(c["id"]) for name, c in by_name.items()}
    guild = discord.Object(GUILD_ID)
    client.tree.copy_global_to(guild=guild)
    in_guild = await client.tree.sync(guild=guild)
    assert {c.guild_id for c in in_guild} == {GUILD_ID}
    assert {c["name"] for c in fake.commands_for(GUILD_ID)} == set(by_name)


async def test_slash_command_answer_is_recorded(fake: FakeDiscord, client: FlowClient) -> None:
    """INTERACTION_CREATE reaches the tree; the type 4 callback and its message are recorded."""
    interaction_id = await fake.dispatch_interaction("watch", {"symbol": "BTCUSDT", "threshold": 2.5})
    reply = await fake.wait_for_response(interaction_id)
    assert reply.type == 4 and reply.user_id == MODERATOR_ID
    assert reply.data["content"] == "Watching BTCUSDT above 2.5"
    assert reply.original is not None and reply.original.flags & EPHEMERAL


async def test_autocomplete_choices_are_recorded(fake: FakeDiscord, client: FlowClient) -> None:
    """A type 4 interaction with the focused option gets the client's choices (callback type 8)."""
    interaction_id = await fake.dispatch_interaction("watch", {"symbol": "eth"}, focused="symbol")
    reply = await fake.wait_for_response(interaction_id)
    assert reply.type == 8
    assert reply.data["choices"] == [{"name": "ETHUSDT", "value": "ETHUSDT"}]


async def test_deferred_answer_follow_up_and_edit_of_the_original(fake: FakeDiscord, client: FlowClient) -> None:
    """defer (type 5), a follow-up with a file via the webhook route, then PATCH @original."""
    interaction_id = await fake.dispatch_interaction("chart", {"symbol": "SOLUSDT"}, user_id=TRADER_ID)
    reply = await fake.wait_for_response(interaction_id, followups=1)
    assert reply.type == 5
    [followup] = reply.followups
    assert [(f.filename, f.content_type, f.data) for f in followup.files] == [("chart.png", "image/png", PNG)]
    original = reply.original
    assert original is not None
    await fake.wait_until(lambda: bool(original.edits))
    assert original.content == "Chart for SOLUSDT"


async def test_channel_option_and_subcommand(fake: FakeDiscord, client: FlowClient) -> None:
    """A channel option arrives resolved (discord.py hands the cached TextChannel); subcommands nest."""
    setup = await fake.dispatch_interaction("setup", {"channel": GENERAL_CHANNEL_ID})
    mute = await fake.dispatch_interaction("alerts mute", {"minutes": 15})
    assert (await fake.wait_for_response(setup)).data[
        "content"
    ] == f"Alerts go to <#{GENERAL_CHANNEL_ID}> in Flow Traders"
    assert (await fake.wait_for_response(mute)).data["content"] == "Muted for 15 minutes"


async def test_dispatch_refuses_what_discord_would_not_send(fake: FakeDiscord, client: FlowClient) -> None:
    """Commands hidden by default_member_permissions, unsynced commands and missing required options."""
    with pytest.raises(PermissionError):
        await fake.dispatch_interaction("watch", {"symbol": "BTCUSDT"}, user_id=TRADER_ID)
    with pytest.raises(LookupError):
        await fake.dispatch_interaction("unknown")
    with pytest.raises(ValueError, match="required"):
        await fake.dispatch_interaction("chart")
    assert fake.interactions == {}


async def test_send_with_embed_and_file_then_edit(fake: FakeDiscord, client: FlowClient) -> None:
    """channel.send (multipart) records content, embed and attachment bytes; message.edit is recorded too."""
    embed = discord.Embed(title="Whale buy", description="BTCUSDT 120 BTC", colour=0x2ECC71)
    embed.add_field(name="Notional", value="$11.9M").set_footer(text="flowbot")
    message = await _alerts(client).send("BTCUSDT whale", embed=embed, file=discord.File(io.BytesIO(PNG), "flow.png"))
    [sent] = await fake.wait_for_messages(1)
    assert (sent.id, sent.channel_id, sent.content) == (message.id, ALERTS_CHANNEL_ID, "BTCUSDT whale")
    assert sent.embeds[0]["title"] == "Whale buy" and sent.embeds[0]["fields"][0]["value"] == "$11.9M"
    assert [(f.filename, f.data) for f in sent.files] == [("flow.png", PNG)]
    assert message.embeds[0].footer.text == "flowbot" and message.attachments[0].size == len(PNG)
    edited = await message.edit(content="BTCUSDT whale (updated)")
    assert sent.content == edited.content == "BTCUSDT whale (updated)" and edited.edited_at is not None
    assert [f.filename for f in sent.files] == ["flow.png"] and len(sent.edits) == 1


async def test_webhook_send_and_edit(fake: FakeDiscord) -> None:
    """discord.Webhook.from_url with its own session: send (wait and fire-and-forget) and edit."""
    webhook = fake.add_webhook(ALERTS_CHANNEL_ID)
    async with aiohttp.ClientSession() as session:
        hook = discord.Webhook.from_url(webhook.url, session=session)
        message = await hook.send(
            "webhook alert", username="Flow alerts", embed=discord.Embed(title="Delta"), wait=True
        )
        await message.edit(content="webhook alert (edited)")
        assert await hook.send("no wait") is None
    first, second = await fake.wait_for_messages(2)
    assert first.webhook_id == webhook.id and first.author["username"] == "Flow alerts"
    assert first.content == "webhook alert (edited)" and first.embeds[0]["title"] == "Delta"
    assert (second.channel_id, second.content) == (ALERTS_CHANNEL_ID, "no wait")


async def test_rate_limit_is_waited_out_and_the_message_arrives_once(fake: FakeDiscord, client: FlowClient) -> None:
    """A 429 (route-scoped, then global) makes discord.py sleep retry_after and retry; nothing is duplicated."""
    fake.fail_next(f"POST /channels/{ALERTS_CHANNEL_ID}/messages", 1, retry_after=0.05)
    fake.fail_next("POST", 1, retry_after=0.05, global_=True)
    await _alerts(client).send("after the limit")
    assert [m.content for m in fake.messages] == ["after the limit"]
    posts = [call.status for call in fake.rest_calls if call.method == "POST"]
    assert posts == [429, 429, 200]


async def test_forbidden_and_unknown_channels_raise(fake: FakeDiscord, client: FlowClient) -> None:
    """403 50013 is discord.Forbidden, 404 10003 discord.NotFound; restored channels work again."""
    fake.forbid(ALERTS_CHANNEL_ID)
    fake.unknown_channel(GENERAL_CHANNEL_ID)
    with pytest.raises(discord.Forbidden) as forbidden:
        await _alerts(client).send("no")
    with pytest.raises(discord.NotFound) as missing:
        await client.fetch_channel(GENERAL_CHANNEL_ID)
    assert (forbidden.value.code, missing.value.code) == (50013, 10003)
    fake.restore_channel(ALERTS_CHANNEL_ID)
    await _alerts(client).send("yes")
    assert [m.content for m in fake.messages] == ["yes"]


async def test_invalid_messages_are_refused_like_the_real_api(fake: FakeDiscord, client: FlowClient) -> None:
    """Content over 2000, more than 25 fields and embeds over 6000 characters are 400 Invalid Form Body."""
    channel = _alerts(client)
    crowded = discord.Embed(title="fields")
    for index in range(26):
        crowded.add_field(name=f"f{index}", value="v")
    oversized = [discord.Embed(description="x" * 4000), discord.Embed(description="y" * 2500)]
    attempts = [channel.send("x" * 2001), channel.send(embed=crowded), channel.send(embeds=oversized)]
    for attempt in attempts:
        with pytest.raises(discord.HTTPException) as refused:
            await attempt
        assert (refused.value.status, refused.value.code) == (400, 50035)
    assert fake.messages == []


async def test_outage_is_a_server_error_until_it_ends(fake: FakeDiscord, client: FlowClient) -> None:
    """503 (outage or fail_next) is not retried by discord.py: DiscordServerError; afterwards sends work."""
    fake.outage(True)
    with pytest.raises(discord.DiscordServerError):
        await _alerts(client).send("down")
    fake.outage(False)
    fake.fail_next("POST /channels", 1, status=503)
    with pytest.raises(discord.DiscordServerError):
        await _alerts(client).send("still down")
    await _alerts(client).send("up")
    assert [m.content for m in fake.messages] == ["up"]


async def test_reconnect_resumes_the_session(fake: FakeDiscord, client: FlowClient) -> None:
    """op 7 RECONNECT: discord.py RESUMEs at resume_gateway_url and still gets interactions."""
    await fake.request_reconnect()
    await asyncio.wait_for(client.resumed.wait(), 5)
    assert fake.resumes == 1 and len(fake.identifies) == 1 and len(fake.gateway_queries) == 2
    interaction_id = await fake.dispatch_interaction("alerts mute", {"minutes": 5})
    assert (await fake.wait_for_response(interaction_id)).data["content"] == "Muted for 5 minutes"
