"""Wrong dashboard tokens slow their sender down: after a few free tries, each further one waits twice as long."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5
BASE_DELAY_S = 1.0
MAX_DELAY_S = 300.0
ADDRESSES_KEPT = 10_000  # memory stays bounded whoever sends


@dataclass
class _Record:
    failures: int = 0
    blocked_until: float = 0.0


class LoginThrottle:
    """Failed sign-ins per client address; an address past FREE_FAILURES must wait before its next try."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def wait_s(self, address: str) -> float:
        """Seconds before `address` may try a token again (0: now)."""
        record = self._records.get(address)
        return max(0.0, record.blocked_until - self._clock()) if record is not None else 0.0

    def failed(self, address: str) -> None:
        record = self._records.pop(address, None) or _Record()
        record.failures += 1
        if record.failures >= FREE_FAILURES:
            delay = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (record.failures - FREE_FAILURES))
            record.blocked_until = self._clock() + delay
        self._records[address] = record
        while len(self._records) > ADDRESSES_KEPT:
            self._records.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._records.pop(address, None)
