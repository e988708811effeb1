"""`flowbot replay`: Binance data files through the live pipeline, into the feature store and signals."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from core.events import Signal
from core.settings import Settings
from engine.analysis.columns import TradeColumns
from engine.analysis.pipeline import FlowPipeline
from engine.bus import InMemoryBus
from engine.replay import ReplayBatch, ReplayInputError, RowProblem, SymbolNotNamedError, detect_format, read_replay
from flowbot.analysis_config import pipeline_config
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore
from storage.track_record import measure_track_records
from storage.window_record import claim_window_duration

PROBLEMS_SHOWN = 20
PACE_CHUNK_MS = 1_000
REPLAY_BUFFERED_ROWS = 8_192  # replay flushes by rows: memory must not grow with the file's length
READ_AHEAD = 3  # batches read ahead, so that a slower batch of the reader does not stall the pipeline
REPLAY_BATCH_ROWS = 32_768  # rows per reader batch: smaller batches keep less in memory at once, at no cost in speed
COMMIT_CHUNKS = 8  # an unpaced replay (one chunk per batch) commits signals every this many chunks, a paced one each


@dataclass
class ReplayReport:
    files: int = 0
    trades: int = 0  # accepted by the pipeline: a trade replayed twice counts once
    duplicates: int = 0
    windows: int = 0
    signals: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def signal_line(signal: Signal, as_json: bool) -> str:
    if as_json:
        return orjson.dumps({
            "id": signal.id, "symbol": signal.symbol, "kind": signal.kind, "direction": signal.direction,
            "severity": signal.severity, "window_start": signal.window_start, "window_end": signal.window_end,
            "evidence": signal.evidence,
        }).decode()
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(signal.window_start / 1000))
    facts = ", ".join(f"{k}={v}" for k, v in list(signal.evidence.items())[:6])
    return f"{when}Z {signal.symbol:<10} {signal.kind:<15} {signal.direction:<7} severity {signal.severity}  {facts}"


class Pacer:
    """Holds replay to `speed` times the market's pace (0: as fast as possible)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._market_start: int | None = None
        self._wall_start = 0.0

    async def wait_for(self, market_ms: int) -> None:
        if self.speed <= 0:
            return
        if self._market_start is None:
            self._market_start, self._wall_start = market_ms, time.monotonic()
            return
        due = self._wall_start + (market_ms - self._market_start) / 1000 / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


def _paced_chunks(columns: TradeColumns, speed: float) -> list[TradeColumns]:
    """With pacing, batches are cut into about one second of market time each."""
    if speed <= 0 or not len(columns):
        return [columns]
    cuts = [0, *(np.flatnonzero(np.diff(columns.time // PACE_CHUNK_MS)) + 1).tolist(), len(columns)]
    return [columns.take(a, b) for a, b in itertools.pairwise(cuts)]


async def replay(
    paths: list[Path], settings: Settings, *, speed: float = 0.0, symbol: str | None = None,
    as_json: bool = False, out: TextIO = sys.stdout, err: Console | None = None,
    tap: Callable[[TradeColumns], None] | None = None,
) -> ReplayReport:
    """Run the files through the pipeline; signals go to `out` as they are found; `tap` sees every batch read
    (`flowbot evaluate` keeps the prices)."""
    err = err or Console(stderr=True, soft_wrap=True)
    data_dir = Path(settings.data_dir)
    claim_window_duration(data_dir, int(settings.window_duration * 1000))
    store = FeatureStore(data_dir, flush_interval=settings.flush_interval, max_buffered_rows=REPLAY_BUFFERED_ROWS,
                         write_behind=True)
    signal_store = SignalStore(data_dir / "flowbot.db", durable=False)
    bus = InMemoryBus(settings.bus_queue_size)
    report = ReplayReport()

    def print_signal(signal: Signal) -> None:
        out.write(signal_line(signal, as_json) + "\n")

    pipeline = FlowPipeline(
        pipeline_config(settings), bus, store=store, signal_store=signal_store, on_signal=print_signal
    )
    pacer = Pacer(speed)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
        TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal,
    )
    commit_every = 1 if speed > 0 else COMMIT_CHUNKS
    chunks = 0
    try:
        with progress, signal_store.transaction():
            try:
                for path in paths:
                    try:
                        kind = detect_format(path)
                        report.files += 1
                        total = None if kind == "json-rest" or progress.disable else _line_count(path)
                        task = progress.add_task(escape(f"{path.name} ({kind})"), total=total)
                        batches = read_replay(path, symbol=symbol, batch_rows=REPLAY_BATCH_ROWS)
                        for batch in _read_ahead(path, batches):
                            report.problems.extend(batch.problems)
                            if tap is not None:
                                tap(batch.columns)
                            for chunk in _paced_chunks(batch.columns, speed):
                                if len(chunk):
                                    await pacer.wait_for(int(chunk.time[-1]))
                                pipeline.on_columns(chunk)
                                out.flush()  # the chunk's signals
                                chunks += 1
                                if chunks % commit_every == 0:
                                    signal_store.commit()
                            pipeline.on_liquidations(batch.columns.symbol, batch.liquidations)
                            pipeline.on_marks(batch.columns.symbol, batch.marks)
                            pipeline.on_open_interest(batch.columns.symbol, batch.open_interest)
                            pipeline.on_funding_history(batch.columns.symbol, batch.funding)
                            progress.advance(task, len(batch.columns) + len(batch.problems) + len(batch.liquidations)
                                             + len(batch.marks) + len(batch.open_interest) + len(batch.funding))
                            await asyncio.sleep(0)
                    except ReplayInputError as exc:
                        hint = "; pass --symbol SYMBOL" if isinstance(exc, SymbolNotNamedError) else ""
                        report.unreadable.append(f"{exc}{hint}")
                        err.print(Text.assemble(("cannot replay ", "red"), f"{exc}{hint}"))
                pipeline.finish()
            finally:
                signal_store.commit()  # signals already printed stay stored, whatever stopped the replay
        out.flush()
    finally:
        store.close()
        signal_store.close()
        await bus.close()
    if pipeline.signals_emitted:  # their track records, as the live bot keeps them
        measure_track_records(data_dir / "flowbot.db", FeatureStore(data_dir))
    report.trades = pipeline.trades_accepted
    report.duplicates = pipeline.dropped["duplicate_or_out_of_order"]
    report.windows = pipeline.windows_closed
    report.signals = pipeline.signals_emitted
    _print_problems(report, err)
    return report


def _read_ahead(path: Path, batches: Iterator[ReplayBatch]) -> Iterator[ReplayBatch]:
    """The batches, the next READ_AHEAD read in a worker thread while this one is processed (parsing releases the
    GIL). Whatever a reader raises on a torn or corrupt file becomes a ReplayInputError naming the file."""
    with ThreadPoolExecutor(max_workers=1) as reader:  # one worker: the batches are read in order
        pending = deque(reader.submit(next, batches, None) for _ in range(READ_AHEAD))
        while (batch := _batch(path, pending.popleft())) is not None:
            pending.append(reader.submit(next, batches, None))
            yield batch


def _batch(path: Path, pending: Future[ReplayBatch | None]) -> ReplayBatch | None:
    try:
        return pending.result()
    except ReplayInputError:
        raise
    except Exception as exc:  # bad input never crashes the replay: the file is reported, the others go on
        raise ReplayInputError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc


def _line_count(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _print_problems(report: ReplayReport, err: Console) -> None:
    for problem in report.problems[:PROBLEMS_SHOWN]:
        err.print(f"skipped {problem.path}:{problem.line}: {problem.reason}: {problem.text}", markup=False)
    if len(report.problems) > PROBLEMS_SHOWN:
        err.print(f"... and {len(report.problems) - PROBLEMS_SHOWN} more skipped rows", markup=False)
    duplicates = f", {report.duplicates:,} duplicate or out-of-order trades dropped" if report.duplicates else ""
    err.print(
        f"replayed {report.trades:,} trades from {report.files} file(s): {report.windows:,} windows, "
        f"{report.signals:,} signals, {len(report.problems):,} rows skipped{duplicates}", markup=False,
    )
