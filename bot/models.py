"""What the bot layer passes around: destinations, callers and platform-neutral messages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a message goes: a Telegram chat (and forum topic) or a Discord channel, webhook or the console."""

    platform: str  # telegram | discord | webhook | console
    chat_id: str
    thread_id: int = 0  # Telegram forum topic (message_thread_id); 0 = none

    def __str__(self) -> str:
        return f"{self.platform}:{self.chat_id}" + (f":{self.thread_id}" if self.thread_id else "")


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    data: str  # callback data, at most 64 bytes (Telegram's limit)


@dataclass(frozen=True, slots=True)
class Message:
    """A reply or an alert: a title line, a body, optionally a PNG chart and rows of buttons."""

    title: str
    body: str = ""
    png: bytes | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()
    direction: str | None = None  # buy | sell | neutral: colours Discord embeds
    silent: bool = False  # deliver without a notification sound

    @property
    def plain(self) -> str:
        return f"{self.title}\n{self.body}" if self.body else self.title


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a command, from where, and what they may do."""

    destination: Destination
    user_id: str
    is_admin: bool = False
    is_private: bool = True
    guild_id: str | None = None  # Discord server
    can_manage_channels: bool = False
