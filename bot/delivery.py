"""Delivery: one worker per platform takes due outbox rows and sends or edits them through a Sender.

It honours the platform's pauses (Telegram's retry_after stops every send), spaces messages to one chat,
retries 5xx and timeouts with backoff, and deactivates destinations that are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Protocol

import orjson

from bot.alert_text import render_alert
from bot.errors import DeliveryError, DestinationGone, Rejected, RetryLater, TemporaryFailure
from bot.models import Destination, Message
from bot.outbox import Outbox, OutboxRow
from bot.subscriptions import Subscriptions

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
IDLE_WAIT_S = 0.5
SHUTDOWN_GRACE_S = 5.0


class Sender(Protocol):
    """A platform's way to send and edit messages; raises bot.errors.DeliveryError subclasses."""

    platform: str

    async def send(self, destination: Destination, message: Message) -> str: ...

    async def edit(self, destination: Destination, message_id: str, message: Message) -> None: ...


def text_of(message: Message) -> str:
    return orjson.dumps([message.title, message.body]).decode()


class Dispatcher:
    """Sends a platform's outbox rows: at most `concurrency` at once, one at a time per destination."""

    def __init__(
        self,
        sender: Sender,
        outbox: Outbox,
        subscriptions: Subscriptions,
        *,
        concurrency: int = 16,
        per_destination_interval: float = 0.0,
        retry_base_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sender = sender
        self.platform = sender.platform
        self.outbox = outbox
        self.subscriptions = subscriptions
        self.concurrency = concurrency
        self.per_destination_interval = per_destination_interval
        self.retry_base_s = retry_base_s
        self.clock = clock
        self.paused_until = 0.0
        self.stats: Counter[str] = Counter()  # sent, edited, retried, failed, gone, paused
        self._queue: deque[OutboxRow] = deque()  # due rows fetched, not yet started
        self._claimed: set[int] = set()  # ids queued or in flight
        self._busy: set[Destination] = set()
        self._next_allowed: dict[Destination, float] = {}
        self._rendered: dict[tuple[str, tuple[tuple[str, str | None], ...]], Message] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look for work now (new rows were queued)."""
        self._queue.clear()
        self._claimed.intersection_update(self._in_flight_ids())
        self._wake.set()

    def _in_flight_ids(self) -> set[int]:
        return {int(task.get_name().rpartition("-")[2]) for task in self._tasks}

    def render(self, row: OutboxRow) -> Message:
        """The message a row stands for now (alerts: cached by their signals and explanations, so that ten
        thousand subscribers of one alert cost one rendering)."""
        if row.message is not None:
            return Message(row.message.title, row.message.body, direction=row.message.direction, silent=row.silent)
        key = (row.language, self.outbox.item_keys(row.id))
        alert = self._rendered.get(key)
        if alert is None:
            if len(self._rendered) > 1024:
                self._rendered.clear()
            alert = self._rendered[key] = render_alert(self.outbox.items(row.id), row.language)
        return Message(alert.title, alert.body, direction=alert.direction, silent=row.silent)

    async def run(self) -> None:
        try:
            while True:
                self._start_due()
                self._wake.clear()
                await self._sleep()
        finally:
            await self._finish_in_flight()

    async def _finish_in_flight(self) -> None:
        """On shutdown, let messages already on the wire finish (briefly), so that their rows stay truthful."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self, timeout: float) -> bool:
        """Work until nothing is due or in flight (tests, benchmarks, shutdown); True if it got there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._start_due()
            if not self._tasks and not self._queue and not self.outbox.due(self.platform, float("inf"), 1):
                return True
            self._wake.clear()
            await self._sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return False

    async def _sleep(self, longest: float = IDLE_WAIT_S) -> None:
        now = self.clock()
        wait = longest
        if self.paused_until > now:
            wait = min(wait, self.paused_until - now)
        elif not self._queue:
            due = self.outbox.next_due_at(self.platform)
            if due is not None and due > now:
                wait = min(wait, due - now)
        if self._next_allowed:
            wait = min(wait, max(0.0, min(self._next_allowed.values()) - now))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(wait, 0.005)):  # unlike wait_for, never swallows a cancellation
                await self._wake.wait()

    def _start_due(self) -> None:
        now = self.clock()
        if now < self.paused_until:
            return
        for destination, allowed in list(self._next_allowed.items()):
            if allowed <= now:
                del self._next_allowed[destination]
        if len(self._queue) < self.concurrency:
            self._refill(now)
        skipped: list[OutboxRow] = []
        while self._queue and len(self._tasks) < self.concurrency:
            row = self._queue.popleft()
            if row.destination in self._busy or row.destination in self._next_allowed:
                skipped.append(row)
                continue
            self._busy.add(row.destination)
            task = asyncio.create_task(self._deliver(row), name=f"deliver-{row.id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished)
        self._queue.extendleft(reversed(skipped))

    def _refill(self, now: float) -> None:
        """Fetch due rows that are not already queued or in flight."""
        batch = max(64, self.concurrency * 4)
        for row in self.outbox.due(self.platform, now, batch + len(self._claimed)):
            if row.id not in self._claimed:
                self._claimed.add(row.id)
                self._queue.append(row)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._claimed.discard(int(task.get_name().rpartition("-")[2]))
        self._wake.set()

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            if row.state == "pending":
                await self._send(row)
            else:
                await self._edit(row)
        except Exception:  # a bug in one delivery must not stop the worker
            log.exception("delivering outbox row %s failed", row.id)
            self.outbox.retry(row.id, self.clock() + MAX_BACKOFF_S, "internal error")
        finally:
            self._busy.discard(row.destination)
            if self.per_destination_interval:
                self._next_allowed[row.destination] = self.clock() + self.per_destination_interval

    async def _send(self, row: OutboxRow) -> None:
        message = self.render(row)
        if row.sent_text is not None:  # a retry carries the text of the first attempt
            title, body = orjson.loads(row.sent_text)
            message = Message(title, body, direction=message.direction, silent=message.silent)
        text = text_of(message)
        self.outbox.sending(row.id)
        try:
            message_id = await self.sender.send(row.destination, message)
        except DeliveryError as exc:
            self._failed(row, exc, text=text)
            return
        self.outbox.sent(row.id, message_id, text)
        self.stats["sent"] += 1
        if text_of(self.render(row)) != text:  # a signal merged or an explanation came while it was on its way
            self.outbox.mark_edit(row.id)

    async def _edit(self, row: OutboxRow) -> None:
        message = self.render(row)
        text = text_of(message)
        if text == row.sent_text:
            self.outbox.edited(row.id, text)
            return
        try:
            await self.sender.edit(row.destination, row.message_id or "", message)
        except DeliveryError as exc:
            self._failed(row, exc, edit=True)
            return
        self.outbox.edited(row.id, text)
        self.stats["edited"] += 1
        if text_of(self.render(row)) != text:  # changed again while the edit was on its way
            self.outbox.mark_edit(row.id)

    def _failed(self, row: OutboxRow, exc: DeliveryError, *, text: str | None = None, edit: bool = False) -> None:
        now = self.clock()
        if isinstance(exc, RetryLater):
            self.stats["paused" if exc.whole_platform else "retried"] += 1
            if exc.whole_platform:
                self.paused_until = max(self.paused_until, now + exc.seconds)
            self.outbox.retry(row.id, now + exc.seconds, exc.reason, text=text, edit=edit)
            log.warning("%s asked to wait %.1f s (%s)", self.platform, exc.seconds, exc.reason)
        elif isinstance(exc, TemporaryFailure):
            self.stats["retried"] += 1
            delay = min(MAX_BACKOFF_S, self.retry_base_s * 2.0 ** min(row.attempts, 6))
            self.outbox.retry(row.id, now + delay, exc.reason, text=text, edit=edit)
            log.warning("sending to %s failed (%s); retrying in %.1f s", row.destination, exc.reason, delay)
        elif isinstance(exc, DestinationGone):
            self.stats["gone"] += 1
            self.outbox.failed(row.id, exc.reason)
            stopped = self.outbox.gone(row.destination, exc.reason)
            self.subscriptions.deactivate(row.destination, exc.reason)
            log.info("%s is gone (%s): subscription deactivated, %d queued rows stopped",
                     row.destination, exc.reason, stopped)
        elif isinstance(exc, Rejected):
            self.stats["failed"] += 1
            if not edit:
                self.outbox.failed(row.id, exc.reason)
            log.warning("%s rejected a message to %s: %s", self.platform, row.destination, exc.reason)
