"""A symbol's recent closed windows with running sums over each span a rule asks for (exact integers), so that
a window close costs a few additions per span, whatever the span's length."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.rules.metrics import HOUR_MS, field_value, liquidations
from core.features import WindowFeatures

ZERO = Decimal(0)


@dataclass(slots=True)
class Row:
    start: int
    end: int
    delta: int
    volume: int
    buy_volume: int
    liquidations: Decimal | None
    open_interest: Decimal | None


@dataclass(slots=True)
class Sums:
    """The sums of one span: the rows from `first` (an index into the series' rows) to the newest."""

    first: int = 0
    delta: int = 0
    volume: int = 0
    buy_volume: int = 0
    liquidations: Decimal = ZERO

    def add(self, row: Row, sign: int) -> None:
        self.delta += sign * row.delta
        self.volume += sign * row.volume
        self.buy_volume += sign * row.buy_volume
        if row.liquidations is not None:
            self.liquidations += sign * row.liquidations


class SymbolSeries:
    """One symbol's windows over its longest span, and the running sums of each span."""

    def __init__(self, *, whole_spans_only: bool = False) -> None:
        self.whole_spans_only = whole_spans_only  # resumed after a restart: a span's value needs the whole span
        self.rows: list[Row] = []
        self.spans: dict[int, Sums] = {}
        self.first_start: int | None = None  # the first window this series saw
        self.latest: WindowFeatures | None = None

    def want(self, span_ms: int) -> None:
        """Keep sums over `span_ms` from now on (from the rows still held)."""
        if span_ms in self.spans:
            return
        sums = self.spans[span_ms] = Sums()
        if self.rows:
            end = self.rows[-1].end
            sums.first = next((i for i, row in enumerate(self.rows) if row.start >= end - span_ms), len(self.rows))
            for row in self.rows[sums.first:]:
                sums.add(row, 1)

    def add(self, features: WindowFeatures, *, replace_last: bool = False) -> None:
        """A closed window (or, with `replace_last`, a corrected version of the newest one)."""
        if replace_last and self.rows:
            old = self.rows.pop()
            for sums in self.spans.values():
                if sums.first <= len(self.rows):
                    sums.add(old, -1)
                sums.first = min(sums.first, len(self.rows))
        row = Row(features.window_start, features.window_end, features.delta, features.volume,
                  features.buy_volume, liquidations(features), field_value(features, "open_interest"))
        self.latest = features
        if self.first_start is None:
            self.first_start = row.start
        self.rows.append(row)
        for span, sums in self.spans.items():
            sums.add(row, 1)
            while self.rows[sums.first].start < row.end - span:
                sums.add(self.rows[sums.first], -1)
                sums.first += 1
        self._trim()

    def _trim(self) -> None:
        """Drop rows no span needs any more (in chunks: a list's front is costly to cut)."""
        oldest = min((sums.first for sums in self.spans.values()), default=len(self.rows) - 1)
        if oldest > 256 and oldest * 2 > len(self.rows):
            del self.rows[:oldest]
            for sums in self.spans.values():
                sums.first -= oldest

    def value(self, measure: str) -> Decimal | None:
        """The measure's value at the newest window (None when unknown: no volume, no futures data...)."""
        features = self.latest
        if features is None:
            return None
        name, _, span_text = measure.partition("@")
        if not span_text:
            return self._window_value(name, features)
        span = int(span_text)
        sums = self.spans[span]
        if self.whole_spans_only and (self.first_start is None or self.first_start > features.window_end - span):
            return None  # a partial sum would be judged against the full one stored before the restart
        if name in ("delta", "cvd"):
            return Decimal(sums.delta).scaleb(-8)
        if name == "buy_share":
            return None if not sums.volume else Decimal(sums.buy_volume) * 100 / Decimal(sums.volume)
        if name == "volume":
            return Decimal(sums.volume).scaleb(-8)
        if name == "volume_x":
            hour = self.spans[HOUR_MS]
            if self.first_start is None or self.first_start > features.window_end - HOUR_MS or not hour.volume:
                return None  # less than an hour seen: no average yet
            return Decimal(sums.volume * HOUR_MS) / Decimal(hour.volume * span)
        if name == "liquidations":
            return None if self.rows[-1].liquidations is None else sums.liquidations
        if name == "oi_pct":
            now, then = self.rows[-1].open_interest, self.rows[sums.first].open_interest
            return None if now is None or then is None or not then else (now - then) * 100 / then
        return None

    @staticmethod
    def _window_value(name: str, features: WindowFeatures) -> Decimal | None:
        if name == "delta":
            return Decimal(features.delta).scaleb(-8)
        if name == "cvd":
            return Decimal(features.cvd).scaleb(-8)
        if name == "oi":
            return field_value(features, "open_interest")
        if name == "funding":
            rate = field_value(features, "funding_rate")
            return None if rate is None else rate * 100
        return None
