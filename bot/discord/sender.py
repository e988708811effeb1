"""Sends and edits alerts in Discord channels through the bot, turning discord.py's errors into delivery errors."""

from __future__ import annotations

import aiohttp
import discord

from bot.discord.embeds import embed_of, send_kwargs
from bot.errors import DeliveryError, DestinationGone, Rejected, RetryLater, TemporaryFailure
from bot.models import Destination, Message

UNKNOWN_MESSAGE = 10008  # the message was deleted: its channel is still there
CANNOT_EDIT = 50005  # a message by someone else
DEFAULT_RETRY_S = 1.0
SENDING_ERRORS = (discord.DiscordException, aiohttp.ClientError, TimeoutError, OSError)


def _retry_after(exc: discord.HTTPException) -> float:
    """The wait a 429 that discord.py did not sit out asks for (its Retry-After header)."""
    try:
        return float(exc.response.headers.get("Retry-After", DEFAULT_RETRY_S))
    except ValueError:
        return DEFAULT_RETRY_S


def delivery_error(exc: Exception) -> DeliveryError:
    """What a discord.py or network error means for the outbox; reasons never carry URLs (webhook tokens)."""
    if isinstance(exc, discord.RateLimited):
        return RetryLater(f"429 retry after {exc.retry_after:g} s", exc.retry_after, whole_platform=False)
    if isinstance(exc, discord.HTTPException):
        reason = f"{exc.status} (code {exc.code}): {exc.text[:200]}"
        if exc.status == 429:
            seconds = _retry_after(exc)
            return RetryLater(f"429 retry after {seconds:g} s", seconds, whole_platform=False)
        if isinstance(exc, discord.Forbidden | discord.NotFound):
            return Rejected(reason) if exc.code in (UNKNOWN_MESSAGE, CANNOT_EDIT) else DestinationGone(reason)
        if isinstance(exc, discord.DiscordServerError) or exc.status >= 500:
            return TemporaryFailure(reason)
        return Rejected(reason)
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return TemporaryFailure(type(exc).__name__)
    return Rejected(type(exc).__name__)


class DiscordSender:
    """The outbox's Sender for Discord channels (a server's alert channel, or DISCORD_ALERT_CHANNEL_ID)."""

    platform = "discord"

    def __init__(self, client: discord.Client) -> None:
        self.client = client

    async def send(self, destination: Destination, message: Message) -> str:
        channel = self.client.get_partial_messageable(int(destination.chat_id))
        try:
            sent = await channel.send(silent=message.silent, **send_kwargs(message))
        except SENDING_ERRORS as exc:
            raise delivery_error(exc) from exc
        return str(sent.id)

    async def edit(self, destination: Destination, message_id: str, message: Message) -> None:
        channel = self.client.get_partial_messageable(int(destination.chat_id))
        try:
            await channel.get_partial_message(int(message_id)).edit(embed=embed_of(message))
        except SENDING_ERRORS as exc:
            raise delivery_error(exc) from exc
