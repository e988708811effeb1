"""What can go wrong when a platform is asked to deliver a message; the outbox decides what to do next."""

from __future__ import annotations


class DeliveryError(Exception):
    """Base of delivery failures; `reason` is safe to log (no tokens)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(DeliveryError):
    """The platform asked us to wait (429); `whole_platform` pauses every send, as Telegram's flood control means."""

    def __init__(self, reason: str, seconds: float, whole_platform: bool) -> None:
        super().__init__(reason)
        self.seconds = seconds
        self.whole_platform = whole_platform


class TemporaryFailure(DeliveryError):
    """A 5xx, a timeout or a network error: retried with backoff."""


class DestinationGone(DeliveryError):
    """The bot was blocked, removed, or the channel deleted: the subscription is deactivated."""


class Rejected(DeliveryError):
    """The platform refused this message for good (a 400): recorded as failed, never retried."""


class PlatformStartError(Exception):
    """A chat platform could not start; the message is one line that names settings, never a token's value.
    `rejected`: the platform refused the token (retrying soon will not help)."""

    def __init__(self, reason: str, *, rejected: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected = rejected
