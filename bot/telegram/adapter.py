"""The Telegram adapter: python-telegram-bot's Application, long polling (or a webhook), commands in, replies out."""

from __future__ import annotations

import hashlib
import logging
from functools import partial

from telegram import BotCommand, Update
from telegram.constants import ChatAction, ChatType
from telegram.error import InvalidToken, TelegramError
from telegram.ext import AIORateLimiter, Application, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler
from telegram.ext import filters as tg_filters

from bot.config import TelegramConfig
from bot.errors import PlatformStartError
from bot.handlers.commands import COMMANDS, Commands
from bot.handlers.registry import CommandSpec
from bot.models import Caller, Destination, Message
from bot.telegram.format import caption, keyboard, split_html
from bot.telegram.request import AiohttpRequest
from bot.telegram.sender import TelegramSender

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 10


def webhook_secret(config: TelegramConfig) -> str:
    """The secret Telegram sends with each webhook call, derived from the token (never the token itself)."""
    return hashlib.sha256(b"flowbot-webhook:" + config.token.get_secret_value().encode()).hexdigest()


def build_application(config: TelegramConfig) -> Application:
    """The Application with the configured API base, Telegram's flood limits and our rate settings."""
    base = config.api_base_url.rstrip("/")
    limiter = AIORateLimiter(  # one request per 1/rate seconds: paced, not bursts of `rate` at once
        overall_max_rate=1, overall_time_period=1 / config.rate_limit,
        group_max_rate=config.group_per_minute, group_time_period=60, max_retries=1,
    )
    return (
        Application.builder()
        .token(config.token.get_secret_value())
        .base_url(f"{base}/bot")
        .base_file_url(f"{base}/file/bot")
        .rate_limiter(limiter)
        .request(AiohttpRequest(pool_size=config.concurrency + 4))
        .get_updates_request(AiohttpRequest(pool_size=1))
        .build()
    )


class TelegramAdapter:
    """Long polling by default; `TELEGRAM_WEBHOOK_URL` switches to a webhook served on the configured port."""

    def __init__(self, config: TelegramConfig, commands: Commands) -> None:
        self.config = config
        self.commands = commands
        self.admins = set(config.admin_ids)
        self.allowed = set(config.allowed_chat_ids)
        self.app = build_application(config)
        self.sender = TelegramSender(self.app.bot)
        for spec in COMMANDS:
            self.app.add_handler(CommandHandler(spec.name, partial(self._command, spec)))
        self.app.add_handler(MessageHandler(tg_filters.COMMAND, self._unknown))
        self.app.add_handler(CallbackQueryHandler(self._button))
        self.app.add_error_handler(self._error)

    async def start(self) -> None:
        """Start polling (or the webhook); PlatformStartError with one safe line when Telegram cannot be used."""
        try:
            await self._start()
        except InvalidToken:
            await self._reset()
            raise PlatformStartError(
                f"TELEGRAM_BOT_TOKEN was rejected by {self.config.api_base_url} (401/404): check the token and "
                "TELEGRAM_API_BASE_URL", rejected=True,
            ) from None
        except TelegramError as exc:
            await self._reset()
            raise PlatformStartError(
                f"cannot reach TELEGRAM_API_BASE_URL={self.config.api_base_url}: {type(exc).__name__}: {exc.message}"
            ) from None

    async def _reset(self) -> None:
        """Undo a failed start, so that the next start begins afresh."""
        try:
            await self.stop()
        except Exception as exc:  # a half-started Application: nothing more to undo
            log.debug("telegram: undoing a failed start: %s", type(exc).__name__)

    async def _start(self) -> None:
        await self.app.initialize()
        await self.app.bot.set_my_commands(
            [BotCommand(c.name, c.summary[:256]) for c in COMMANDS if not c.admin]
        )
        await self.app.start()
        assert self.app.updater is not None
        if self.config.webhook_url:
            await self.app.updater.start_webhook(
                listen=self.config.webhook_listen, port=self.config.webhook_port,
                url_path="telegram", webhook_url=self.config.webhook_url,
                allowed_updates=Update.ALL_TYPES, secret_token=webhook_secret(self.config),
            )
        else:
            await self.app.updater.start_polling(timeout=POLL_TIMEOUT_S, allowed_updates=Update.ALL_TYPES)
        log.info("telegram: started as @%s", self.app.bot.username)

    async def stop(self) -> None:
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()
        await self.app.bot.shutdown()  # its HTTP sessions, also after an initialize that failed half way

    def _caller(self, update: Update) -> Caller | None:
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None:
            return None
        message = update.effective_message
        thread = message.message_thread_id if message is not None and message.is_topic_message else None
        return Caller(
            destination=Destination("telegram", str(chat.id), thread or 0), user_id=str(user.id),
            is_admin=str(user.id) in self.admins, is_private=chat.type == ChatType.PRIVATE,
        )

    def _refused(self, caller: Caller) -> bool:
        return bool(self.allowed) and caller.destination.chat_id not in self.allowed

    async def _command(self, spec: CommandSpec[Commands], update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        caller = self._caller(update)
        chat, message = update.effective_chat, update.effective_message
        if caller is None or chat is None or message is None or not message.text:
            return
        if self._refused(caller):
            say = self.commands.say_for(caller)
            await self._reply(update, Message(say("private"), say("private.hint")))
            return
        if spec.slow:
            await chat.send_action(ChatAction.TYPING, message_thread_id=message.message_thread_id)
        reply = await self.commands.run(caller, spec.name, list(context.args or []))
        await self._reply(update, reply)

    async def _unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        caller = self._caller(update)
        message = update.effective_message
        if caller is None or message is None or not message.text or self._refused(caller):
            return
        name, _, addressee = message.text.split()[0][1:].partition("@")
        if addressee and addressee.lower() != (self.app.bot.username or "").lower():
            return  # /help@some_other_bot in a group is that bot's to answer
        await self._reply(update, await self.commands.run(caller, name.lower(), []))

    async def _button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        caller = self._caller(update)
        if query is None or caller is None:
            return
        if self._refused(caller):
            await query.answer(self.commands.say_for(caller)("private"))
            return
        reply = await self.commands.on_button(caller, query.data or "")
        await query.answer(reply.title[:200])
        if query.message is not None:
            try:
                await query.edit_message_text(split_html(reply)[0], parse_mode="HTML", reply_markup=keyboard(reply))
            except TelegramError as exc:
                log.info("telegram: could not update the settings message: %s", exc.message)

    async def _reply(self, update: Update, reply: Message) -> None:
        message = update.effective_message
        if message is None:
            return
        if reply.png is not None:
            await message.reply_photo(reply.png, caption=caption(reply), parse_mode="HTML", do_quote=False)
            return
        texts = split_html(reply)
        for index, text in enumerate(texts):
            last = index == len(texts) - 1
            await message.reply_text(
                text, parse_mode="HTML", do_quote=False, reply_markup=keyboard(reply) if last else None
            )

    async def _error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.warning("telegram: handling an update failed: %s", type(context.error).__name__, exc_info=context.error)
