"""Alerts without a bot: a channel's incoming webhook (DISCORD_WEBHOOK_URL), with its own HTTP session."""

from __future__ import annotations

import logging

import aiohttp
import discord

from bot.discord.connection import DEFAULT_API_BASE, point_discord_at
from bot.discord.embeds import embed_of, send_kwargs
from bot.discord.sender import SENDING_ERRORS, delivery_error
from bot.models import Destination, Message

WEBHOOK_LOG = "discord.webhook.async_"  # its debug lines show request URLs, which hold the webhook's token


class WebhookSender:
    """The outbox's Sender for Destination("webhook", "default"); the URL holds the webhook's token: never logged."""

    platform = "webhook"

    def __init__(self, url: str, api_base: str = DEFAULT_API_BASE) -> None:
        self._url = url
        self._api_base = api_base
        self._session: aiohttp.ClientSession | None = None
        self._webhook: discord.Webhook | None = None
        logger = logging.getLogger(WEBHOOK_LOG)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))

    def _hook(self) -> discord.Webhook:
        """The webhook, made on first use (the session needs the running loop)."""
        if self._webhook is None:
            point_discord_at(self._api_base, None)
            self._session = aiohttp.ClientSession()
            self._webhook = discord.Webhook.from_url(self._url, session=self._session)
        return self._webhook

    async def send(self, destination: Destination, message: Message) -> str:
        try:
            sent = await self._hook().send(wait=True, silent=message.silent, **send_kwargs(message))
        except SENDING_ERRORS as exc:
            raise delivery_error(exc) from exc
        return str(sent.id)

    async def edit(self, destination: Destination, message_id: str, message: Message) -> None:
        try:
            await self._hook().edit_message(int(message_id), embed=embed_of(message))
        except SENDING_ERRORS as exc:
            raise delivery_error(exc) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = self._webhook = None
