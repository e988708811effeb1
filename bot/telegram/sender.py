"""Sends and edits alerts through python-telegram-bot, turning its errors into the outbox's delivery errors."""

from __future__ import annotations

import warnings

from telegram import Bot, LinkPreviewOptions
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.warnings import PTBDeprecationWarning

from bot.errors import DeliveryError, DestinationGone, Rejected, RetryLater, TemporaryFailure
from bot.models import Destination, Message
from bot.telegram.format import caption, keyboard, split_html

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
GONE_PHRASES = ("chat not found", "bot was kicked", "not enough rights", "topic_deleted", "thread not found")


def delivery_error(exc: TelegramError) -> DeliveryError:
    """What a Telegram error means for the outbox."""
    if isinstance(exc, RetryAfter):
        with warnings.catch_warnings():  # PTB warns that the int form is deprecated; both forms are read
            warnings.simplefilter("ignore", PTBDeprecationWarning)
            wait = exc.retry_after
        seconds = wait if isinstance(wait, int | float) else wait.total_seconds()
        return RetryLater(f"429 retry after {seconds:g} s", float(seconds), whole_platform=True)
    if isinstance(exc, Forbidden | ChatMigrated):
        return DestinationGone(exc.message)
    if isinstance(exc, BadRequest):
        if any(phrase in exc.message.lower() for phrase in GONE_PHRASES):
            return DestinationGone(exc.message)
        return Rejected(exc.message)
    if isinstance(exc, TimedOut | NetworkError):
        return TemporaryFailure(exc.message)
    return Rejected(exc.message)


class TelegramSender:
    """The outbox's Sender for Telegram chats and forum topics."""

    platform = "telegram"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, destination: Destination, message: Message) -> str:
        thread = destination.thread_id or None
        try:
            if message.png is not None:
                sent = await self.bot.send_photo(
                    destination.chat_id, message.png, caption=caption(message), parse_mode="HTML",
                    message_thread_id=thread, disable_notification=message.silent,
                )
            else:
                sent = await self.bot.send_message(
                    destination.chat_id, split_html(message)[0], parse_mode="HTML", message_thread_id=thread,
                    disable_notification=message.silent, link_preview_options=NO_PREVIEW,
                    reply_markup=keyboard(message),
                )
        except TelegramError as exc:
            raise delivery_error(exc) from exc
        return str(sent.message_id)

    async def edit(self, destination: Destination, message_id: str, message: Message) -> None:
        try:
            await self.bot.edit_message_text(
                split_html(message)[0], chat_id=destination.chat_id, message_id=int(message_id), parse_mode="HTML",
                link_preview_options=NO_PREVIEW, reply_markup=keyboard(message),
            )
        except BadRequest as exc:
            if "message is not modified" in exc.message.lower():
                return
            raise delivery_error(exc) from exc
        except TelegramError as exc:
            raise delivery_error(exc) from exc
