"""What a replay reader yields: batches of good trades with the rows it skipped, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.futures import FundingSettlement, Liquidation, MarkPrice, OpenInterest
from core.trades import Trade, scaled_to_decimal
from engine.analysis.columns import TradeColumns

TEXT_LIMIT = 120  # characters of an offending line kept in a RowProblem


class ReplayInputError(Exception):
    """A whole replay file cannot be read: missing, empty, or not any known form."""


class SymbolNotNamedError(ReplayInputError):
    """Neither the file's name nor the caller says which symbol a CSV dump or REST array holds."""


@dataclass(frozen=True)
class RowProblem:
    """One skipped row: 1-based line in the file (element number for JSON arrays), why, and the line's text."""

    path: str
    line: int
    reason: str
    text: str


@dataclass
class ReplayBatch:
    """One symbol's good trades of a chunk in file order, and the rows of that chunk that were skipped; USD-M
    recordings also give the symbol's liquidation orders and mark price updates of the chunk."""

    columns: TradeColumns
    problems: list[RowProblem]
    liquidations: list[Liquidation] = field(default_factory=list)
    marks: list[MarkPrice] = field(default_factory=list)
    open_interest: list[OpenInterest] = field(default_factory=list)  # metrics dumps (history)
    funding: list[FundingSettlement] = field(default_factory=list)  # fundingRate dumps (history)



def row_text(text: str) -> str:
    """A line as kept in a RowProblem."""
    return text[:TEXT_LIMIT]


def trade_reason(code: str, trade: Trade) -> str:
    """A validator reason code with the offending values."""
    detail = {
        "non_positive_price": f"price {scaled_to_decimal(trade.price)} is not above zero",
        "non_positive_quantity": f"quantity {scaled_to_decimal(trade.qty)} is not above zero",
        "timestamp_before_binance": f"time {min(trade.trade_time, trade.event_time)} ms is before Binance opened "
                                    "(2017-07-01)",
        "inconsistent_ids": f"first trade id {trade.first_id} is after last trade id {trade.last_id}",
        "bad_symbol": f"symbol {trade.symbol[:20]!r} is not capitals, digits and _",
    }.get(code)
    return f"{code}: {detail}" if detail else code
