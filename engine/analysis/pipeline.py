"""The analysis pipeline, the same live and in replay: validate -> enrich -> context -> features -> signals.

- validate: records must come in id order; a duplicate or out-of-order record is dropped and counted
  (the live feed already guarantees this; replayed files may not).
- enrich + features: WindowBuilder turns each symbol's trades into exact window features (notional,
  aggressor side, whale flags, bursts, missing ids).
- context: each closed window joins the symbol's rolling 1m..1h context.
- signals: detectors look at the window and its context; signals are stored and published.
Live windows close by event time: a window closes when a later trade of its symbol arrives, or when the
watermark of its connection (the event time the feed has released through, see MarketFeed.watermarks) passes
its end by WINDOW_GRACE. A trade that arrives after its window was written corrects that window at once (and it
is judged again: a signal it now warrants is raised, marked late); later windows of the day whose CVD moves with
it are rewritten once per flush (flush_corrections), however many late trades arrived in between.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from core.events import Signal, WindowClosed
from core.features import WindowFeatures
from core.futures import FundingSettlement, Liquidation, MarkPrice, OpenInterest
from core.trades import Trade
from engine.analysis.columns import TradeColumns
from engine.analysis.config import PipelineConfig
from engine.analysis.context import KEPT_MS, SymbolContext
from engine.analysis.futures_windows import OPEN_INTEREST_KEPT_MS, FuturesSums, FuturesWindows
from engine.analysis.window_batch import WindowBatch
from engine.analysis.windows import WindowBuilder
from engine.bus import EventBus
from engine.signals.batch import BatchJudge
from engine.signals.detector import SignalDetector
from engine.signals.funding import FundingExtremes
from engine.signals.kinds.funding_extreme import KIND as FUNDING_KIND
from engine.signals.kinds.liquidation_cascade import KIND as CASCADE_KIND
from engine.signals.kinds.oi_shift import KIND as OI_SHIFT_KIND
from engine.signals.liquidations import LiquidationCascades
from engine.signals.open_interest import OpenInterestShifts
from engine.sinks import FeatureSink, SignalSink

log = logging.getLogger(__name__)
CASCADE, FUNDING, OI_SHIFT = CASCADE_KIND.name, FUNDING_KIND.name, OI_SHIFT_KIND.name


class FlowPipeline:
    """Per-symbol windows, context and signals, writing the feature store and the signal table."""

    def __init__(
        self,
        config: PipelineConfig,
        bus: EventBus,
        *,
        store: FeatureSink | None = None,
        signal_store: SignalSink | None = None,
        by_trade_ids: bool = False,
        on_signal: Callable[[Signal], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.bus = bus
        self.store = store
        self.signal_store = signal_store
        self.by_trade_ids = by_trade_ids
        self.on_signal = on_signal
        self.on_windows: Callable[[WindowBatch], None] | None = None  # newly closed windows (not corrections)
        self.clock = clock
        self.detector = SignalDetector(config.thresholds, clock=clock)
        self.judge = BatchJudge(self.detector)
        self.cascades = LiquidationCascades(config.thresholds)
        self.funding = FundingExtremes(config.thresholds)
        self.oi_shifts = OpenInterestShifts(config.thresholds)
        self.builders: dict[str, WindowBuilder] = {}
        self.contexts: dict[str, SymbolContext] = {}
        self.dropped: Counter[str] = Counter()
        self.trades_accepted = 0  # after validation: duplicates and out-of-order records are not counted
        self.windows_closed = 0
        self.signals_emitted = 0
        self.corrections = 0
        self._last_id: dict[str, int] = {}
        self._revisions: dict[tuple[str, int], int] = {}
        self._cvd_moved: dict[tuple[str, int], WindowFeatures] = {}  # later windows whose CVD a correction moved
        self.closed_marks: dict[str, int] = {}  # per symbol: every window ending at or before this is closed
        self._recent: dict[str, WindowBatch] = {}  # each symbol's context windows as columns (until a correction)
        self.futures: dict[str, FuturesWindows] = {}  # USD-M symbols' liquidations and mark prices by window

    # -- input --------------------------------------------------------------------------------

    def on_trades(self, symbol: str, trades: Sequence[Trade]) -> None:
        """Live sink: the feed's released trades, in line."""
        if trades:
            self.on_columns(TradeColumns.from_trades(symbol, trades))

    def on_liquidations(self, symbol: str, orders: Sequence[Liquidation]) -> None:
        """USD-M liquidation orders of one symbol (live or replay): summed into their windows (by trade time)."""
        if orders:
            self._futures(symbol).add_liquidations(orders)
            self._write_futures_of_closed(symbol)

    def on_marks(self, symbol: str, marks: Sequence[MarkPrice]) -> None:
        """USD-M mark price updates of one symbol: each window keeps its last (by event time)."""
        if marks:
            self._futures(symbol).add_marks(marks)
            self._write_futures_of_closed(symbol)

    def on_open_interest(self, symbol: str, values: Sequence[OpenInterest]) -> None:
        """USD-M open interest of one symbol (history or polls): windows closing after it carry the last known; what
        comes before the symbol's first window is the open-interest-shift norm's history."""
        if values:
            self.oi_shifts.add_history(symbol, [(v.time, v.open_interest) for v in values])
            closed = self.closed_through(symbol)
            if closed is not None:  # older history pages arriving later: no window will read them any more
                values = [v for v in values if v.time >= closed - OPEN_INTEREST_KEPT_MS]
            self._futures(symbol).add_open_interest(values)

    def on_funding_history(self, symbol: str, settlements: Sequence[FundingSettlement]) -> None:
        """USD-M settled funding rates (fundingRate dumps): part of the symbol's range for funding extremes."""
        if settlements:
            self.funding.add_history(symbol, [(s.time, s.rate) for s in settlements])

    def _futures(self, symbol: str) -> FuturesWindows:
        windows = self.futures.get(symbol)
        if windows is None:
            windows = self.futures[symbol] = FuturesWindows(self.config.rules_for(symbol).window_ms)
        return windows

    def _write_futures_of_closed(self, symbol: str) -> None:
        """Futures data of windows already closed is written at once (a closed trade window, rewritten)."""
        builder = self.builders.get(symbol)
        if builder is not None:
            self._write_futures(symbol, builder.closed_through)

    def on_columns(self, trades: TradeColumns) -> None:
        """Any batch of one symbol's trades (live or replay); its signals are stored in one transaction."""
        if self.signal_store is None:
            self._process(trades)
            return
        with self.signal_store.transaction():
            self._process(trades)

    def _process(self, trades: TradeColumns) -> None:
        trades = self._validate(trades)
        if not len(trades):
            return
        self.trades_accepted += len(trades)
        builder = self._builder(trades.symbol)
        late_mask = trades.time < builder.closed_through
        if late_mask.any():
            self._correct(trades.select(late_mask))
            trades = trades.select(~late_mask)
        self._emit(builder.add(trades))

    def close_to_watermarks(self, watermarks: Mapping[str, int]) -> None:
        """Live: close each symbol's windows ending at or before its watermark (event time, ms) less the grace
        period; symbols left out (connection down, a gap backfilling) keep their windows open."""
        grace_ms = self.config.window_grace_ms
        for symbol, watermark in watermarks.items():
            mark = watermark - grace_ms
            if mark > self.closed_marks.get(symbol, -(2**62)):
                self.closed_marks[symbol] = mark
            builder = self.builders.get(symbol)
            if builder is not None and builder.open_window_start is not None:
                self._emit(builder.close_through(mark))
            futures = self.futures.get(symbol)
            if futures is not None and futures.pending:
                self._write_futures(symbol, mark)

    def closed_through(self, symbol: str) -> int | None:
        """Every window of the symbol ending at or before this (ms) is closed; None before the first close."""
        builder = self.builders.get(symbol)
        mark = max(self.closed_marks.get(symbol, -(2**62)), -(2**62) if builder is None else builder.closed_through)
        return mark if mark > -(2**62) else None

    def finish(self) -> None:
        """End of a replay: close every open window, write pending corrections and flush the store."""
        for builder in self.builders.values():
            self._emit(builder.close_through(2**62))
        self.flush_corrections()
        for symbol in self.futures:
            self._write_futures(symbol, 2**62)
        if self.store is not None:
            self.store.flush()

    def flush_corrections(self) -> None:
        """Write once each later window whose CVD corrections moved since the last flush (a higher revision)."""
        moved, self._cvd_moved = self._cvd_moved, {}
        for features in moved.values():
            self._write_revision(features)

    # -- stages -------------------------------------------------------------------------------

    def _validate(self, trades: TradeColumns) -> TradeColumns:
        """Keep records in strictly increasing id order; a backward id that is also newer in time restarts."""
        if not len(trades):  # a replay batch of skipped rows only
            return trades
        ids = trades.id if not self.by_trade_ids else trades.first_id
        previous = self._last_id.get(trades.symbol)
        ordered = bool((ids[1:] > ids[:-1]).all()) and (previous is None or ids[0] > previous)
        if not ordered:
            keep = np.ones(len(ids), dtype=bool)
            last, last_time = previous, None
            for i, (record_id, t) in enumerate(zip(ids.tolist(), trades.time.tolist(), strict=True)):
                if last is not None and record_id <= last and (last_time is None or t <= last_time):
                    keep[i] = False
                    self.dropped["duplicate_or_out_of_order"] += 1
                    continue
                last, last_time = record_id, t
            trades = trades.select(keep)
        if len(trades):
            self._last_id[trades.symbol] = int((trades.id if not self.by_trade_ids else trades.last_id)[-1])
        return trades

    def _builder(self, symbol: str) -> WindowBuilder:
        builder = self.builders.get(symbol)
        if builder is None:
            builder = self.builders[symbol] = WindowBuilder(
                symbol, self.config.rules_for(symbol), by_trade_ids=self.by_trade_ids
            )
            self.contexts[symbol] = SymbolContext(symbol)
        return builder

    def _emit(self, batch: WindowBatch) -> None:
        """Store and publish newly closed windows of one symbol, then add them to its context and judge them."""
        if not len(batch):
            return
        futures = self.futures.get(batch.symbol)
        closed: Iterable[WindowFeatures] = batch
        if futures is None:
            if self.store is not None:
                self.store.add_batch(batch)
        else:  # a USD-M symbol: each window with the futures data that arrived for it
            applied = []
            for features in batch:
                sums = futures.take(features.window_start)
                key = (batch.symbol, features.window_start)
                revision = self._revisions.get(key, -1) + 1  # above a row of its futures data alone
                if revision:
                    self._revisions[key] = revision
                applied.append(futures.apply(features, sums))
                if self.store is not None:
                    self.store.add(applied[-1], revision)
                self._judge_futures(applied[-1], sums)
            closed = applied
        if self.bus.has_subscribers(WindowClosed):
            for features in closed:
                self.bus.publish(WindowClosed(features))
        self.windows_closed += len(batch)
        if self.on_windows is not None:
            self.on_windows(batch)
        context = self.contexts[batch.symbol]
        history = self._recent.get(batch.symbol)
        if history is None:
            history = WindowBatch.from_features(batch.symbol, context.windows)
        context.extend_batch(batch)
        windows = WindowBatch.concat(batch.symbol, [history, batch])
        self._recent[batch.symbol] = windows.since(int(batch.window_end[-1]) - KEPT_MS)
        self._signals(self.judge.signals(windows, len(history)))
        if futures is not None:
            self._write_futures(batch.symbol, self.builders[batch.symbol].closed_through)

    def _write_futures(self, symbol: str, through_ms: int) -> None:
        """Write and publish the symbol's windows with pending futures data that end by through_ms: the trade window
        (a new revision) with it, or, for a window without trades, a row of its futures data alone (trade columns
        zero)."""
        windows = self.futures[symbol]
        context = self.contexts.get(symbol)
        written = {w.window_start: w for w in context.windows} if context is not None else {}
        for start, sums in windows.due(through_ms):
            key = (symbol, start)
            base = written.get(start)
            rewrite = key in self._revisions or base is not None
            revision = self._revisions[key] = self._revisions.get(key, 0) + 1 if rewrite else 0
            if base is None:
                base = _without_trades(symbol, start, windows.window_ms, context)
            features = windows.apply(base, sums)
            if self.store is not None:
                self.store.add(features, revision)
            self.bus.publish(WindowClosed(features, revision))  # rules on liquidations see them, late or alone
            self._judge_futures(features, sums)
        if through_ms < 2**62:
            windows.forget_before(through_ms - KEPT_MS)

    def _judge_futures(self, features: WindowFeatures, sums: FuturesSums | None) -> None:
        """Raise the liquidation cascades (its minute against the symbol's norm) and funding extremes a USD-M
        window's data shows."""
        findings = [(CASCADE, f) for f in
                    self.cascades.judge(features.symbol, features.window_start, features.window_end, sums)]
        funding = self.funding.judge(features.symbol, features.window_end, features.funding_rate)
        if funding is not None:
            findings.append((FUNDING, funding))
        shift = self.oi_shifts.judge(features)
        if shift is not None:
            findings.append((OI_SHIFT, shift))
        signals = [self.detector.signal(features, kind, finding) for kind, finding in findings
                   if self.detector.cooled_down(features, kind)]
        if signals:
            self._signals(self.detector.within_budget(signals))

    def _write_revision(self, features: WindowFeatures) -> None:
        """Store and publish a new revision of a window that was written before."""
        key = (features.symbol, features.window_start)
        revision = self._revisions[key] = self._revisions.get(key, 0) + 1
        futures = self.futures.get(features.symbol)
        sums = futures.written.get(features.window_start) if futures is not None else None
        if futures is not None:
            features = futures.apply(features, sums)
        if self.store is not None:
            self.store.add(features, revision)
        self.bus.publish(WindowClosed(features, revision))
        self.windows_closed += 1

    def _signals(self, signals: list[Signal]) -> None:
        """Store the signals (one batch) and publish those not already stored, in order."""
        saved = [True] * len(signals) if self.signal_store is None else self.signal_store.save_many(signals)
        for signal, new in zip(signals, saved, strict=True):
            if not new:
                continue
            self.signals_emitted += 1
            self.bus.publish(signal)
            if self.on_signal is not None:
                self.on_signal(signal)

    def _correct(self, late: TradeColumns) -> None:
        """Merge trades that arrived after their window was written; later windows' CVD moves with them."""
        context = self.contexts[late.symbol]
        builder = self.builders[late.symbol]
        rules = builder.rules
        for start in sorted(set((late.time // rules.window_ms * rules.window_ms).tolist())):
            subset = late.select(late.time // rules.window_ms * rules.window_ms == start)
            if context.windows and start < context.windows[0].window_start:
                self.dropped["late_beyond_context"] += len(subset)
                log.warning("%s: %d trades for window %d arrived after it left the context; not stored",
                            late.symbol, len(subset), start)
                continue
            written = next((w for w in context.windows if w.window_start == start), None)
            threshold = written.whale_threshold if written else int(builder.whales.for_minute(start - start % 60_000))
            partial_builder = WindowBuilder(
                late.symbol, replace(rules, whale_min_notional=threshold, whale_percentile=0),
                by_trade_ids=self.by_trade_ids,
            )
            partial = [*partial_builder.add(subset), *partial_builder.close_through(2**62)][0]
            if written is None:
                before = [w for w in context.windows if w.window_start < start and w.window_start // 86_400_000
                          == start // 86_400_000]
                merged = replace(partial, cvd=(before[-1].cvd if before else 0) + partial.delta, burst=False,
                                 burst_ratio=0.0)
                shift = partial.delta
            else:
                merged = _merge(written, partial)
                shift = merged.delta - written.delta
            self._apply_correction(context, merged, shift)

    def _apply_correction(self, context: SymbolContext, merged: WindowFeatures, cvd_shift: int) -> None:
        """Rewrite the corrected window now and judge it again; later windows of its day only move their CVD in
        memory, to be written once at the next flush_corrections."""
        self.corrections += 1
        symbol, day = merged.symbol, merged.window_start // 86_400_000
        self._cvd_moved.pop((symbol, merged.window_start), None)
        self._write_revision(merged)
        context.add(merged)
        if cvd_shift:
            for features in context.shift_cvd(merged.window_start, cvd_shift):
                self._cvd_moved[(symbol, features.window_start)] = features
            self.builders[symbol].shift_cvd(day, cvd_shift)
        self._recent.pop(symbol, None)
        self._signals(self.detector.rejudge(merged, context))


def _without_trades(symbol: str, start: int, window_ms: int, context: SymbolContext | None) -> WindowFeatures:
    """A window that had no trades (futures data only): trade columns zero, the CVD of the day carried on."""
    before = [w for w in context.windows if w.window_start < start] if context is not None else []
    same_day = before and before[-1].window_start // 86_400_000 == start // 86_400_000
    return WindowFeatures(
        symbol, start, start + window_ms, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, before[-1].cvd if same_day else 0,
        0, 0, 0, 0, 0, 0, 0, 0, False, 0.0,
    )


def _merge(written: WindowFeatures, late: WindowFeatures) -> WindowFeatures:
    """A written window plus late trades of the same window (ids tell which came first and last)."""
    first_late = late.first_id < written.first_id
    last_late = late.last_id > written.last_id
    delta = written.delta + late.delta
    return replace(
        written,
        open=late.open if first_late else written.open,
        close=late.close if last_late else written.close,
        high=max(written.high, late.high),
        low=min(written.low, late.low),
        volume=written.volume + late.volume,
        quote_volume=written.quote_volume + late.quote_volume,
        buy_volume=written.buy_volume + late.buy_volume,
        sell_volume=written.sell_volume + late.sell_volume,
        buy_quote=written.buy_quote + late.buy_quote,
        sell_quote=written.sell_quote + late.sell_quote,
        delta=delta,
        cvd=written.cvd + late.delta,
        trade_count=written.trade_count + late.trade_count,
        whale_count=written.whale_count + late.whale_count,
        whale_buy_quote=written.whale_buy_quote + late.whale_buy_quote,
        whale_sell_quote=written.whale_sell_quote + late.whale_sell_quote,
        first_id=min(written.first_id, late.first_id),
        last_id=max(written.last_id, late.last_id),
        missing_ids=max(0, written.missing_ids - late.trade_count),
    )
