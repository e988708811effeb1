"""The bot's commands declared once: name, arguments, who may run them, whether they are slow, and the handler.
The Telegram handlers, the Discord slash commands and /help are all generated from this registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from bot.messages import Say, text
from bot.models import Caller, Message
from storage.flow_query import FLOW_SPANS_MS

Owner = TypeVar("Owner")
Handler = Callable[[Owner, Caller, list[str], Say], Awaitable[Message]]


class ArgumentKind(Enum):
    """What an argument holds, which decides how a platform offers it (autocompletion, fixed choices)."""

    SYMBOLS = "symbols"  # one or more symbols
    SYMBOLS_OR_ALL = "symbols_or_all"
    KINDS = "kinds"  # signal kinds
    SYMBOL = "symbol"
    WINDOW = "window"  # a flow window: 5m ... 24h
    TEXT = "text"  # free text
    SETTING_OPTION = "setting_option"
    SETTING_VALUE = "setting_value"  # a value of the chosen setting option
    RULE = "rule"  # an alert rule: symbol, metric, span, comparison, value


@dataclass(frozen=True)
class Argument:
    name: str
    kind: ArgumentKind
    hint: str  # shown beside the argument by Discord
    required: bool = True


@dataclass(frozen=True)
class CommandSpec(Generic[Owner]):
    """One command; its description and usage line are the messages `command.NAME` and `usage.NAME`."""

    name: str
    handler: Handler[Owner]
    arguments: tuple[Argument, ...] = ()
    admin: bool = False  # only the bot's admins may run it
    slow: bool = False  # may take longer than Discord's 3 s: deferred there, "typing…" on Telegram

    def description(self, say: Say) -> str:
        return say(f"command.{self.name}")

    def usage(self, say: Say) -> str:
        """The arguments as the usage line shows them ("" when the command takes none)."""
        return say(f"usage.{self.name}", windows="|".join(FLOW_SPANS_MS)) if self.arguments else ""

    @property
    def summary(self) -> str:
        """The English description, as the platforms list the command."""
        return text("en", f"command.{self.name}")


class CommandRegistry(Generic[Owner]):
    """Commands in declaration order; `command(...)` declares one on the method that handles it."""

    def __init__(self) -> None:
        self._specs: dict[str, CommandSpec[Owner]] = {}

    def command(
        self, name: str, *arguments: Argument, admin: bool = False, slow: bool = False
    ) -> Callable[[Handler[Owner]], Handler[Owner]]:
        def declare(handler: Handler[Owner]) -> Handler[Owner]:
            assert name not in self._specs, f"/{name} declared twice"
            self._specs[name] = CommandSpec(name, handler, arguments, admin, slow)
            return handler

        return declare

    def get(self, name: str) -> CommandSpec[Owner] | None:
        return self._specs.get(name)

    def __iter__(self) -> Iterator[CommandSpec[Owner]]:
        return iter(self._specs.values())
