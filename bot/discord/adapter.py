"""The Discord adapter: a discord.py Client with slash commands; each interaction becomes a Caller and a command,
its reply an embed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aiohttp
import discord
from discord import app_commands
from discord.utils import MISSING

from bot.config import DiscordConfig
from bot.discord.connection import (
    DEFAULT_API_BASE,
    Endpoints,
    discover_gateway,
    point_discord_at,
    restore_endpoints,
)
from bot.discord.embeds import send_kwargs
from bot.discord.sender import DiscordSender
from bot.discord.slash import add_commands
from bot.errors import PlatformStartError
from bot.handlers.commands import Commands
from bot.handlers.registry import CommandSpec
from bot.models import Caller, Destination, Message

log = logging.getLogger(__name__)

GUILD_READY_TIMEOUT_S = 2.0  # discord.py waits this long after the last GUILD_CREATE before it is ready
READY_TIMEOUT_S = 30.0


class DiscordAdapter:
    """Slash commands over the gateway; alerts to channels through `sender`."""

    def __init__(self, config: DiscordConfig, commands: Commands, symbols: Sequence[str]) -> None:
        self.config = config
        self.commands = commands
        self.admins = set(config.admin_ids)
        self.client = discord.Client(intents=discord.Intents(guilds=True), guild_ready_timeout=GUILD_READY_TIMEOUT_S)
        self.tree = app_commands.CommandTree(self.client)
        self.tree.error(self._on_error)
        add_commands(self.tree, symbols, self._answer, self._alerts_here)
        self.sender = DiscordSender(self.client)
        self._runner: asyncio.Task[None] | None = None
        self._endpoints: Endpoints | None = None

    async def start(self) -> None:
        """Log in, sync the slash commands globally, connect to the gateway and wait until ready; PlatformStartError
        with one safe line when Discord cannot be used."""
        try:
            await self._start()
        except discord.LoginFailure:
            raise PlatformStartError(
                f"DISCORD_BOT_TOKEN was rejected by {self.config.api_base_url}: check the token and "
                "DISCORD_API_BASE_URL", rejected=True,
            ) from None
        except (OSError, aiohttp.ClientError, discord.DiscordException) as exc:
            raise PlatformStartError(
                f"cannot reach DISCORD_API_BASE_URL={self.config.api_base_url}: {type(exc).__name__}: {exc}"
            ) from None

    async def _start(self) -> None:
        config = self.config
        if self.client.is_closed():  # a start that failed before: begin afresh, with a new HTTP connection pool
            self.client.clear()
            if self.client.http.connector is not MISSING and self.client.http.connector.closed:
                self.client.http.connector = MISSING
        self._endpoints = point_discord_at(config.api_base_url, config.gateway_url)
        try:
            await self.client.login(config.token.get_secret_value())
            if config.gateway_url is None and config.api_base_url.rstrip("/") != DEFAULT_API_BASE:
                await discover_gateway(self.client.http)
            await self.tree.sync()
            self._runner = asyncio.create_task(self.client.connect(), name="discord-gateway")
            self._runner.add_done_callback(_gateway_ended)
            await self._wait_until_ready(self._runner)
        except BaseException:
            await self.stop()
            raise
        log.info("discord: started as %s", self.client.user)

    async def _wait_until_ready(self, runner: asyncio.Task[None]) -> None:
        """Until READY and the guilds arrived; the gateway's error if it ends first (a rejected token)."""
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait({ready, runner}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            return
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready
        if runner in done:
            runner.result()
            raise RuntimeError("discord: the gateway connection ended before it was ready")
        log.warning("discord: not ready after %.0f s; still connecting", READY_TIMEOUT_S)

    async def stop(self) -> None:
        await self.client.close()
        if self._runner is not None:
            with contextlib.suppress(Exception):  # already logged by _gateway_ended
                await self._runner
            self._runner = None
        if self._endpoints is not None:
            restore_endpoints(self._endpoints)
            self._endpoints = None

    def _caller(self, interaction: discord.Interaction) -> Caller:
        user_id = str(interaction.user.id)
        return Caller(
            destination=Destination("discord", str(interaction.channel_id)), user_id=user_id,
            is_admin=user_id in self.admins, is_private=interaction.guild_id is None,
            guild_id=None if interaction.guild_id is None else str(interaction.guild_id),
            can_manage_channels=interaction.permissions.manage_channels,
        )

    async def _answer(self, interaction: discord.Interaction, spec: CommandSpec[Commands], args: list[str]) -> None:
        if spec.slow:  # may take longer than the 3 s Discord allows: deferred first
            await interaction.response.defer(thinking=True)
        await self._reply(interaction, await self.commands.run(self._caller(interaction), spec.name, args))

    async def _alerts_here(self, interaction: discord.Interaction) -> None:
        await self._reply(interaction, await self.commands.alerts_here(self._caller(interaction)))

    async def _reply(self, interaction: discord.Interaction, reply: Message) -> None:
        """The reply as the interaction's response, or as the edit of a deferred one."""
        kwargs = send_kwargs(reply)
        if not interaction.response.is_done():
            await interaction.response.send_message(**kwargs)
            return
        chart = kwargs.pop("file", None)
        await interaction.edit_original_response(attachments=[] if chart is None else [chart], **kwargs)

    async def _on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """Commands Discord still lists but we no longer have, arguments we cannot read, and failures."""
        caller = self._caller(interaction)
        say = self.commands.say_for(caller)
        if isinstance(error, app_commands.CommandNotFound):
            reply = await self.commands.run(caller, error.name, [])
        elif isinstance(error, app_commands.TransformerError):
            reply = Message(say("unreadable", text=repr(str(error.value)[:20])), say("unreadable.hint"))
        elif isinstance(error, app_commands.NoPrivateMessage):
            reply = Message(say("server_only"))
        else:
            log.warning("discord: a command failed: %s", type(error).__name__, exc_info=error)
            reply = Message(say("failed"), say("failed.hint"))
        try:
            await self._reply(interaction, reply)
        except discord.HTTPException as exc:
            log.warning("discord: could not answer an interaction: %s", exc)


def _gateway_ended(task: asyncio.Task[None]) -> None:
    """Log why the gateway connection stopped, unless it was closed on purpose."""
    if not task.cancelled() and task.exception() is not None:
        log.error("discord: the gateway connection failed: %s", type(task.exception()).__name__,
                  exc_info=task.exception())
