"""The console adapter: alerts and their explanations printed to stdout when no bot token is set."""

from __future__ import annotations

import itertools
from typing import TextIO

from bot.models import Destination, Message

CONSOLE = Destination("console", "stdout")


class ConsoleSender:
    """A Sender that prints: an alert as `ALERT <title>` and its lines, an edit as `UPDATE <title>` likewise."""

    platform = "console"

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._ids = itertools.count(1)

    async def send(self, destination: Destination, message: Message) -> str:
        message_id = str(next(self._ids))
        self._print("ALERT", message_id, message)
        return message_id

    async def edit(self, destination: Destination, message_id: str, message: Message) -> None:
        self._print("UPDATE", message_id, message)

    def _print(self, label: str, message_id: str, message: Message) -> None:
        body = "".join(f"\n    {line}" for line in message.body.splitlines() if line)
        print(f"{label} #{message_id} {message.title}{body}", file=self.out, flush=True)
