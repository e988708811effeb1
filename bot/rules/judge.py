"""Judges every rule of every symbol from the bus's closed windows and trade batches: per symbol and measure one
sorted book, so a window close or a trade batch costs a few bisections, not a loop over the rules."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any, NamedTuple

from bot.rules.book import ThresholdBook
from bot.rules.grammar import RuleSpec
from bot.rules.metrics import HOUR_MS, METRICS, SPANS_MS, Op, Source
from bot.rules.series import SymbolSeries
from core.events import PriceTick, WindowClosed

PRICE_UNITS = 8  # prices: integers of 1e-8
NOTIONAL_UNITS = 16  # price x quantity: integers of 1e-16


class Firing(NamedTuple):
    """A rule's condition became true: the value that made it, when (ms, market time), and a key unique to the
    observation (the same window or trade judged again gives the same key)."""

    rule_id: int
    op: Op
    value: Decimal
    at_ms: int
    key: str


def level_of(spec: RuleSpec) -> Any:
    """The threshold as the book compares it: scaled integers for trade measures, Decimal for window ones."""
    if spec.metric == "price":
        return int(spec.threshold.scaleb(PRICE_UNITS))
    if spec.metric == "whale":
        return int(spec.threshold.scaleb(NOTIONAL_UNITS))
    return spec.threshold


class RuleJudge:
    """The books of every symbol, each symbol's window series, and what was judged last."""

    def __init__(self) -> None:
        self.books: dict[tuple[str, str], ThresholdBook] = {}
        self.window_measures: dict[str, set[str]] = defaultdict(set)  # per symbol, measures judged on windows
        self.series: dict[str, SymbolSeries] = {}
        self.judged: dict[str, tuple[int, int]] = {}  # symbol -> (window_start, revision) judged last
        self.last_time: dict[str, int] = {}  # symbol -> ms of the newest observation
        self.resumed = False  # last values restored from before a restart
        self.changed: set[tuple[str, str]] = set()  # (symbol, measure) books observed since their values were taken

    def add(self, rule_id: int, spec: RuleSpec, *, fresh: bool = True) -> Firing | None:
        """Start judging a rule; a Firing when its condition already holds on the last value (`fresh` rules
        also on the first value seen, when none is known yet)."""
        measure = spec.measure
        source = METRICS[spec.metric].source
        book = self.books.get((spec.symbol, measure))
        if book is None:
            book = self.books[(spec.symbol, measure)] = ThresholdBook(event=spec.metric == "whale")
        if source is Source.WINDOWS:
            self.window_measures[spec.symbol].add(measure)
            series = self._series(spec.symbol)
            if spec.span is not None:
                series.want(SPANS_MS[spec.span])
            if spec.suffix == "x":
                series.want(HOUR_MS)
        level = level_of(spec)
        if not book.add(rule_id, spec.op, level, fresh=fresh):
            return None
        at = self.last_time.get(spec.symbol, 0)
        return Firing(rule_id, spec.op, _natural(spec.metric, book.last), at, f"{at}:new")

    def _series(self, symbol: str) -> SymbolSeries:
        series = self.series.get(symbol)
        if series is None:
            series = self.series[symbol] = SymbolSeries(whole_spans_only=self.resumed)
        return series

    def restore(self, levels: list[tuple[str, str, str, int]]) -> None:
        """Judge on from the (symbol, measure, last value, ms) kept before a restart: a value that moved through a
        level while the process was down fires on the first observation after it."""
        if not levels:
            return
        self.resumed = True
        for series in self.series.values():
            series.whole_spans_only = True
        for symbol, measure, last, at_ms in levels:
            book = self.books.get((symbol, measure))
            if book is None or book.event:
                continue
            book.last = int(last) if measure == "price" else Decimal(last)
            self.last_time[symbol] = max(self.last_time.get(symbol, 0), at_ms)

    def take_levels(self) -> list[tuple[str, str, str, int]]:
        """(symbol, measure, last value, ms) of the books observed since the last call, to keep across restarts."""
        levels = []
        for symbol, measure in self.changed:
            book = self.books.get((symbol, measure))
            if book is not None and book.last is not None:
                levels.append((symbol, measure, str(book.last), self.last_time.get(symbol, 0)))
        self.changed.clear()
        return levels

    def remove(self, rule_id: int, spec: RuleSpec) -> None:
        book = self.books.get((spec.symbol, spec.measure))
        if book is None:
            return
        book.remove(rule_id, spec.op, level_of(spec))
        if not book.count:
            del self.books[(spec.symbol, spec.measure)]
            self.window_measures[spec.symbol].discard(spec.measure)

    def on_tick(self, tick: PriceTick) -> list[Firing]:
        """A batch of trades: price rules on the path its prices took, whale rules on its largest trade."""
        self.last_time[tick.symbol] = tick.last_time
        firings: list[Firing] = []
        key = f"{tick.last_time}:{tick.last_id}"
        book = self.books.get((tick.symbol, "price"))
        if book is not None:
            self.changed.add((tick.symbol, "price"))
            for rule, op in book.observe(tick.low, tick.high, tick.last_price):
                value = tick.low if op is Op.BELOW or (op is Op.CROSSES and tick.last_price < tick.first_price) \
                    else tick.high
                firings.append(Firing(rule, op, Decimal(value).scaleb(-PRICE_UNITS), tick.last_time, key))
        whales = self.books.get((tick.symbol, "whale"))
        if whales is not None:
            notional = tick.max_notional
            for rule, op in whales.observe(notional, notional, notional):
                firings.append(Firing(rule, op, Decimal(notional).scaleb(-NOTIONAL_UNITS), tick.last_time, key))
        return firings

    def on_window(self, event: WindowClosed) -> list[Firing]:
        """A closed window: every window measure of its symbol; an older window, or a revision already judged,
        changes nothing (a correction of the newest window is judged again, from the value before it)."""
        features = event.features
        symbol = features.symbol
        measures = self.window_measures.get(symbol)
        judged = self.judged.get(symbol)
        revise = judged is not None and judged[0] == features.window_start
        if judged is not None and (features.window_start < judged[0] or (revise and event.revision <= judged[1])):
            return []
        self.judged[symbol] = (features.window_start, event.revision)
        self.last_time[symbol] = max(self.last_time.get(symbol, 0), features.window_end)
        if not measures:
            self.series.pop(symbol, None)
            return []
        series = self._series(symbol)
        series.add(features, replace_last=revise)
        firings: list[Firing] = []
        key = str(features.window_start)
        for measure in measures:
            value = series.value(measure)
            if value is None:
                continue
            book = self.books[(symbol, measure)]
            self.changed.add((symbol, measure))
            for rule, op in book.observe_value(value, revise=revise):
                firings.append(Firing(rule, op, value, features.window_end, key))
        return firings


def _natural(metric: str, level: Any) -> Decimal:
    if metric == "price":
        return Decimal(level).scaleb(-PRICE_UNITS)
    if metric == "whale":
        return Decimal(level).scaleb(-NOTIONAL_UNITS)
    return Decimal(level)
