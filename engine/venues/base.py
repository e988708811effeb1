"""What the generic feed needs from an exchange: streams, frame decoding, limits and a gap backfiller."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from core.futures import Liquidation, MarkPrice
from core.trades import Trade

if TYPE_CHECKING:
    import aiohttp

    from engine.connection.sequencer import Sequencer
    from engine.connection.validator import TradeValidator


class Rejection(NamedTuple):
    """A frame that carries no trade, counted by `reason`; a non-empty `warning` is also logged."""

    reason: str
    detail: str
    warning: str = ""


class ShutdownNotice(NamedTuple):
    """The server announced it will close the connection: rotate to a new one first."""

    text: str


Frame = Trade | Liquidation | MarkPrice | Rejection | ShutdownNotice | None  # None: e.g. a subscribe reply


@dataclass(frozen=True)
class VenueLimits:
    """What the exchange allows per connection and per IP."""

    streams_per_connection: int
    control_messages_per_second: float  # kept under the exchange's own limit
    connections_per_period: int
    connection_period: float  # seconds


class Backfiller(Protocol):
    """Fills a symbol's open gap (or catches up after a reconnect) from the exchange's REST API."""

    async def fill(self, sequencer: Sequencer, catch_up: set[str]) -> None:
        """Fill until no gap is open and the symbol is not in `catch_up` (discarded once caught up)."""
        ...


class Venue(Protocol):
    """One exchange market: everything the generic feed, sequencer and supervisor must not know themselves."""

    name: str  # prefix of connection names, e.g. "spot"
    limits: VenueLimits
    by_trade_ids: bool  # records are sequenced by trade ids (a record may cover a range), not aggregate ids
    all_liquidations: bool  # one market-wide liquidation stream: orders of symbols not followed come too

    def stream_names(self, symbols: Sequence[str]) -> list[str]:
        """The streams of each symbol (trades first, then any others of that symbol), symbol by symbol."""
        ...

    def symbol_of(self, stream: str) -> str:
        """The symbol a stream carries ("" for a market-wide stream)."""
        ...

    def connection_url(self, ws_url: str, streams: Sequence[str]) -> str:
        """The URL to open for a connection carrying `streams` (the rest are subscribed to after opening)."""
        ...

    def subscribe_requests(self, streams: Sequence[str]) -> list[str]:
        """The control messages that subscribe a just-opened connection to the streams not in its URL."""
        ...

    async def trading_symbols(self, session: aiohttp.ClientSession, rest_url: str) -> list[str]:
        """Every symbol the market trades now, sorted (raises an error saying why it could not be listed)."""
        ...

    def decode(self, text: str) -> Frame:
        """One WebSocket text frame as a trade, a liquidation order, a mark price update, a rejection, a shutdown
        notice, or None."""
        ...

    def validator(self, *, max_clock_skew: float, rejected: Counter[str]) -> TradeValidator:
        """A validator of live trades with the venue's rules, counting rejections into `rejected`."""
        ...

    def backfiller(
        self, session: aiohttp.ClientSession, rest_url: str, validator: TradeValidator, *, max_attempts: int
    ) -> Backfiller:
        """The REST gap backfiller, sharing the feed's session and validator."""
        ...
