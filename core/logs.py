"""Logging: plain text or one JSON object per line, and no secret from the settings in any log line."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote, unquote, urlsplit

import orjson

from core.settings import Settings

MASK = "***"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines are chatter to an operator (APScheduler's "Adding job tentatively", every HTTP request of
# httpx, discord.py's gateway, aiohttp's access log...): they log at WARNING and above unless LOG_LEVEL=DEBUG.
QUIET_LIBRARIES = ("apscheduler", "httpx", "httpcore", "discord", "telegram", "aiohttp.access", "aiohttp.server",
                   "openai", "groq", "urllib3", "asyncio")
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, with the parts that travel on their own (a webhook's token, a password)."""
    values: list[str] = []
    for secret in (
        settings.telegram_bot_token, settings.discord_bot_token, settings.discord_webhook_url,
        settings.groq_api_key, settings.dashscope_api_key, settings.openai_api_key,
    ):
        if secret is not None:
            values.append(secret.get_secret_value())
    if settings.discord_webhook_url is not None:
        values.append(settings.discord_webhook_url.get_secret_value().rstrip("/").rpartition("/")[2])
    password = urlsplit(settings.bus_url).password
    if password:
        values.append(unquote(password))
    return values


class Masker:
    """Replaces each secret (as given, and URL-quoted) with ***; the longest first, so none leaves a tail."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for secret in secrets if secret for form in (secret, quote(secret, safe=""), quote(secret))}
        self.secrets = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class SecretFilter(logging.Filter):
    """A handler filter: masks secrets in a record's message, args, exception and stack text and extra fields."""

    def __init__(self, mask: Masker) -> None:
        super().__init__()
        self.mask = mask

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        for name, value in list(vars(record).items()):
            if name in _RECORD_FIELDS or value is None or isinstance(value, bool | int | float):
                continue
            text = value if isinstance(value, str) else str(value)
            masked = self.mask(text)
            if masked != text:
                setattr(record, name, masked)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, exception and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and name not in entry:
                entry[name] = value
        return orjson.dumps(entry, default=str).decode()


@dataclass(frozen=True)
class LogConfig:
    """LOG_LEVEL, LOG_FORMAT and the secrets every line is masked of (a process of ours configures itself with it)."""

    level: str
    format: str  # text | json
    secrets: tuple[str, ...]


def log_config(settings: Settings) -> LogConfig:
    return LogConfig(settings.log_level, settings.log_format, tuple(secret_values(settings)))


def configure_logging(settings: Settings | LogConfig, stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one on `stream` (stderr) in LOG_FORMAT that masks every secret."""
    config = settings if isinstance(settings, LogConfig) else log_config(settings)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if config.format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(SecretFilter(Masker(config.secrets)))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level.upper())
    quiet = logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
    _log_uncaught()
    return handler


def _log_uncaught() -> None:
    """Errors nobody caught, in the main thread or another, go through the masking handler, not straight to stderr."""
    log = logging.getLogger("flowbot")

    def main_thread(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        log.critical("uncaught %s", kind.__name__, exc_info=(kind, error, trace))

    def other_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            log.critical("uncaught %s in thread %s", args.exc_type.__name__,
                         args.thread.name if args.thread else "?",
                         exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = main_thread
    threading.excepthook = other_thread
