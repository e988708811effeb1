"""The real feed against the fake Binance server over real sockets, driven by real recordings."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.events import FeedStatusChanged, GapUnfilled
from core.settings import Settings
from core.trades import Trade, parse_scaled
from engine.bus import InMemoryBus
from engine.connection.feed import MarketFeed
from fakes.binance import ConnectionFault, FakeBinance
from fakes.recordings import load_ws_recording
from flowbot.analysis_config import pipeline_config
from flowbot.feed_config import make_feed

FAST = {
    "WS_PING_INTERVAL": "5",
    "HEALTH_CHECK_INTERVAL": "0.1",
    "WS_STALL_TIMEOUT": "0.6",
    "WS_RECONNECT_BASE_DELAY": "0.02",
    "WS_RECONNECT_MAX_DELAY": "0.1",
    "WS_ROTATION_OVERLAP": "0.1",
    "GAP_GRACE": "0.05",
    "REST_MAX_ATTEMPTS": "3",
    "MAX_CLOCK_SKEW": "60",
}


def expected_by_symbol(messages: list[dict[str, Any]]) -> dict[str, list[tuple]]:
    """What the feed must deliver, computed from the raw recording (not by the code under test)."""
    out: dict[str, list[tuple]] = defaultdict(list)
    for message in messages:
        d = message["data"]
        key = (d["a"], d["f"], d["l"]) if d["e"] == "aggTrade" else (d["t"], d["t"], d["t"])
        out[d["s"]].append((*key, parse_scaled(d["p"]), parse_scaled(d["q"]), d["T"], d["m"]))
    return out


def delivered_key(trade: Trade) -> tuple:
    return (trade.id, trade.first_id, trade.last_id, trade.price, trade.qty, trade.trade_time, trade.is_sell)


class Run:
    """A feed wired to a fake server, collecting what it delivers."""

    def __init__(self, fake: FakeBinance, settings: Settings, feed: MarketFeed, bus: InMemoryBus) -> None:
        self.fake = fake
        self.settings = settings
        self.feed = feed
        self.bus = bus
        self.delivered: dict[str, list[Trade]] = defaultdict(list)
        self.status = bus.subscribe(FeedStatusChanged, name="test-status")
        self.unfilled = bus.subscribe(GapUnfilled, name="test-unfilled")
        feed.on_trades = lambda symbol, trades: self.delivered[symbol].extend(trades)

    def count(self) -> int:
        return sum(len(v) for v in self.delivered.values())

    async def wait_for(self, total: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < total and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def settle(self, seconds: float = 0.5) -> None:
        await asyncio.sleep(seconds)


def recording_time_base(messages: list[dict[str, Any]]) -> float:
    return max(m["data"]["E"] for m in messages) / 1000


async def start_run(
    messages: list[dict[str, Any]], *, symbols: list[str] | None = None, settings: dict[str, str] | None = None,
    fake_options: dict[str, Any] | None = None, market: str = "spot", stream: str = "aggTrade",
    faults: tuple[ConnectionFault, ...] = (), refuse: int = 0,
) -> AsyncIterator[Run]:
    fake = FakeBinance(messages, market=market, **(fake_options or {}))
    await fake.start()
    fake.add_connection_faults(*faults)
    if refuse:
        fake.refuse_connections(refuse)
    symbols = symbols or sorted({m["data"]["s"] for m in messages})
    env = {
        **FAST, "MARKET": market, "STREAM": stream, "SYMBOLS": ",".join(symbols),
        "BINANCE_WS_URL": fake.ws_url, "BINANCE_REST_URL": fake.rest_url, **(settings or {}),
    }
    bus = InMemoryBus()
    run_settings = Settings(_env_file=None, **env)
    feed = make_feed(run_settings, bus)
    # the recordings are from the past: validate their timestamps against the recording's own clock
    now_offset = time.time() - recording_time_base(messages)
    feed.validator.clock = lambda: time.time() - now_offset
    run = Run(fake, run_settings, feed, bus)
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.wait_for(feed.started.wait(), 5)
        yield run
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await fake.close()


@pytest.fixture
def spot(shared_data: Path) -> list[dict[str, Any]]:
    return load_ws_recording(shared_data / "binance-spot-aggtrade-ws.jsonl")


def assert_delivered_exactly(run: Run, messages: list[dict[str, Any]], complete: set[str] | None = None) -> None:
    """Each symbol's delivery is the recording from its first delivered trade to the end: no gap, no
    duplicate, in order. Symbols in `complete` (all, by default) must have every recorded trade; a
    feed cannot know of trades printed before the first one it saw of a symbol."""
    expected = expected_by_symbol(messages)
    complete = set(expected) if complete is None else complete
    assert complete <= set(run.delivered) <= set(expected)
    for symbol, trades in expected.items():
        got = [delivered_key(t) for t in run.delivered.get(symbol, [])]
        if symbol in complete:
            assert got == trades, f"{symbol}: delivered trades differ from the recording"
        elif got:
            assert got == trades[len(trades) - len(got) :], f"{symbol}: delivery is not the recording's tail"


def symbols_in(messages: list[dict[str, Any]]) -> set[str]:
    return {m["data"]["s"] for m in messages}


async def wait_connected(fake: FakeBinance, n: int = 1, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while fake.open_connections() < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert fake.open_connections() >= n


async def test_many_faults_deliver_the_recording_exactly_once_in_order(spot) -> None:
    faults = (
        ConnectionFault(garbage_after=100, skip_after=150, skip_count=40, close_after=400),
        ConnectionFault(close_after=300),
        ConnectionFault(shutdown_after=200),
        ConnectionFault(stall_after=150),
    )
    async for run in start_run(spot, fake_options={"rate": 1500.0, "batch": 20}, faults=faults, refuse=2):
        run.fake.rest_fail(2, status=429, retry_after=0)
        await wait_connected(run.fake)
        run.fake.play()
        await run.fake.wait_played()
        await run.settle(1.5)
        assert_delivered_exactly(run, spot, complete=symbols_in(spot[:100]))
        health = run.feed.health
        assert health.unfilled_gaps == []
        assert sum(h.gaps_found for h in health.symbols.values()) > 0
        assert all(h.gaps_found == h.gaps_filled for h in health.symbols.values())
        assert health.rejected["malformed_json"] >= 2 and health.rejected["binary_frame"] >= 1
        assert health.rejected["non_positive_price"] >= 1 or health.rejected["bad_decimal"] >= 1
        conn = next(iter(health.connections.values()))
        assert conn.reconnects >= 2 and conn.rotations >= 1 and conn.watchdog_restarts >= 1
        assert run.fake.handshakes_refused == 2
        assert any(r.get("fromId") for r in run.fake.rest_requests)


async def test_with_rest_refusing_the_unfilled_gaps_are_reported_exactly(spot) -> None:
    skip_after, skip_count = 1000, 120
    fault = ConnectionFault(skip_after=skip_after, skip_count=skip_count)
    async for run in start_run(spot, fake_options={"rate": 3000.0, "batch": 20}, faults=(fault,)):
        run.fake.rest_refuse = True
        await wait_connected(run.fake)
        run.fake.play()
        skipped = spot[skip_after : skip_after + skip_count]
        later_symbols = {m["data"]["s"] for m in spot[skip_after + skip_count :]}
        expected_gaps = {}
        for message in skipped:
            d = message["data"]
            if d["s"] in later_symbols:
                first, last = expected_gaps.get(d["s"], (d["a"], d["a"]))
                expected_gaps[d["s"]] = (min(first, d["a"]), max(last, d["a"]))
        await run.wait_for(len(spot) - sum(b - a + 1 for a, b in expected_gaps.values()))
        await run.settle(0.3)
        gaps = {g.symbol: (g.first_missing, g.last_missing) for g in run.feed.health.unfilled_gaps}
        assert gaps == expected_gaps
        events = [(await run.unfilled.get()).gap for _ in range(run.unfilled.depth)]
        assert {g.symbol: (g.first_missing, g.last_missing) for g in events} == expected_gaps
        kept = [m for m in spot if m not in skipped or m["data"]["s"] not in expected_gaps]
        assert_delivered_exactly(run, [m for m in kept if m not in skipped])
        for symbol, (first, last) in expected_gaps.items():
            assert run.feed.health.symbols[symbol].missing_ids == last - first + 1


async def test_usdm_ids_restarting_lower_are_a_counted_sequence_reset_not_duplicates(shared_data) -> None:
    usdm = load_ws_recording(shared_data / "binance-usdm-aggtrade-ws.jsonl")
    ctk = [m["data"]["a"] for m in usdm if m["data"]["s"] == "CTKUSDT"]
    assert any(b < a for a, b in itertools.pairwise(ctk)), "the recording's second CTKUSDT part starts lower"
    faults = (ConnectionFault(skip_after=400, skip_count=60),)
    async for run in start_run(usdm, market="usdm", fake_options={"rate": 2000.0}, faults=faults):
        await wait_connected(run.fake)
        run.fake.play()
        await run.wait_for(len(usdm))
        await run.settle(0.3)
        assert_delivered_exactly(run, usdm)
        assert run.feed.health.symbols["CTKUSDT"].sequence_resets == 1
        assert run.feed.health.symbols["CTKUSDT"].duplicates == 0
        assert run.feed.health.unfilled_gaps == []
        assert run.fake.rest_requests, "the skipped trades were backfilled over USD-M REST (/fapi/v1/aggTrades)"


async def test_trade_stream_gaps_are_filled_from_covering_aggtrades(shared_data) -> None:
    trades = load_ws_recording(shared_data / "binance-spot-ethusdt-trade-ws.jsonl")
    faults = (ConnectionFault(skip_after=1500, skip_count=333), ConnectionFault(close_after=2500))
    async for run in start_run(trades, stream="trade", fake_options={"rate": 4000.0, "batch": 20}, faults=faults):
        await wait_connected(run.fake)
        run.fake.play()
        await run.fake.wait_played()
        deadline = time.monotonic() + 20
        delivered = run.delivered["ETHUSDT"]
        while time.monotonic() < deadline and (not delivered or delivered[-1].last_id < trades[-1]["data"]["t"]):
            await asyncio.sleep(0.05)
        await run.settle(0.3)
        covered = [i for t in delivered for i in range(t.first_id, t.last_id + 1)]
        assert covered == [m["data"]["t"] for m in trades]
        assert sum(t.qty for t in delivered) == sum(parse_scaled(m["data"]["q"]) for m in trades)
        assert run.feed.health.unfilled_gaps == []
        assert any("startTime" in r for r in run.fake.rest_requests)


@pytest.mark.parametrize("trigger", ["age", "serverShutdown"])
async def test_rotation_overlaps_connections_and_needs_no_backfill(spot, trigger: str) -> None:
    settings = {"WS_ROTATE_AFTER": "0.4"} if trigger == "age" else {}
    faults = (ConnectionFault(shutdown_after=300),) if trigger == "serverShutdown" else ()
    async for run in start_run(spot, settings=settings, fake_options={"rate": 2500.0, "batch": 10}, faults=faults):
        await wait_connected(run.fake)
        run.fake.play()
        await run.wait_for(len(spot))
        await run.settle(0.3)
        assert_delivered_exactly(run, spot)
        conn = next(iter(run.feed.health.connections.values()))
        assert conn.rotations >= 1 and conn.reconnects == 0
        assert run.fake.rest_requests == []


async def test_a_connection_that_never_delivers_is_restarted_by_the_watchdog(spot) -> None:
    async for run in start_run(spot, fake_options={"rate": 2000.0}, faults=(ConnectionFault(stall_after=0),)):
        deadline = time.monotonic() + 15
        while not (run.fake.connections_accepted >= 2 and run.fake.open_connections() == 1):
            assert time.monotonic() < deadline, "the watchdog did not replace the silent connection"
            await asyncio.sleep(0.02)
        run.fake.play()
        await run.wait_for(len(spot))
        await run.settle(0.2)
        assert_delivered_exactly(run, spot)
        assert next(iter(run.feed.health.connections.values())).watchdog_restarts >= 1


async def test_refusals_make_the_feed_unhealthy_on_the_bus_without_spinning_then_it_recovers(spot) -> None:
    settings = {"WS_MAX_RECONNECT_ATTEMPTS": "3"}
    started = time.monotonic()
    async for run in start_run(spot, settings=settings, fake_options={"rate": 2000.0}, refuse=8):
        run.fake.play()
        first = await asyncio.wait_for(run.status.get(), 10)
        assert first.healthy is False and first.consecutive_failures == 3
        recovered = await asyncio.wait_for(run.status.get(), 10)
        elapsed = time.monotonic() - started
        assert recovered.healthy is True
        assert run.fake.handshakes_refused == 8
        assert elapsed >= 8 * 0.002  # every retry waited at least the backoff floor: no spinning
        await run.fake.wait_played()
        await run.settle(0.5)
        assert_delivered_exactly(run, spot, complete=set())


async def test_server_pings_are_answered(spot) -> None:
    async for run in start_run(spot, fake_options={"ping_interval": 0.05}):
        await wait_connected(run.fake)
        deadline = time.monotonic() + 10  # a loaded machine may be slow; the client must answer every ping
        while run.fake.pongs_received < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert run.fake.pongs_received >= 3


async def test_more_than_1024_streams_open_more_connections_with_paced_subscribes(spot) -> None:
    symbols = sorted({m["data"]["s"] for m in spot}) + [f"X{i:04d}USDT" for i in range(1100)]
    async for run in start_run(spot, symbols=symbols, fake_options={"rate": 3000.0}):
        await wait_connected(run.fake, 2)
        await asyncio.sleep(1.5)
        assert run.fake.control_rate_violations == 0
        subscribes = [(t, conn) for t, conn, msg in run.fake.control_messages if msg["method"] == "SUBSCRIBE"]
        subscribed = sum(len(msg["params"]) for _, _, msg in run.fake.control_messages)
        assert subscribed == (1024 - 100) + max(0, len(symbols) - 1024 - 100)
        first_conn = [t for t, conn in subscribes if conn == subscribes[0][1]]
        # paced under Binance's 5 a second (arrival times can bunch on a loaded machine: the span is what counts)
        assert first_conn[-1] - first_conn[0] >= (len(first_conn) - 1) / 5
        run.fake.play()
        await run.wait_for(len(spot))
        assert_delivered_exactly(run, spot)


async def test_live_streaming_and_bulk_replay_write_identical_features_and_signals(spot, shared_data, tmp_path) -> None:
    import io

    import pyarrow.parquet as pq

    from engine.analysis.pipeline import FlowPipeline
    from flowbot.replay import replay
    from storage.feature_store import FeatureStore
    from storage.signal_store import SignalStore

    overrides = {"WHALE_MIN_NOTIONAL": "2000", "WHALE_PERCENTILE": "99"}
    async for run in start_run(spot, settings=overrides, fake_options={"rate": 3000.0, "batch": 7}):
        live_dir = tmp_path / "live"
        store, signals = FeatureStore(live_dir), SignalStore(live_dir / "flowbot.db")
        pipeline = FlowPipeline(pipeline_config(run.settings), run.bus, store=store, signal_store=signals)
        collect = run.feed.on_trades

        def both(symbol: str, trades: list[Trade], collect=collect, pipeline=pipeline) -> None:
            collect(symbol, trades)
            pipeline.on_trades(symbol, trades)

        run.feed.on_trades = both
        await wait_connected(run.fake)
        run.fake.play()
        await run.wait_for(len(spot))
        pipeline.finish()
        store.close()
        assert_delivered_exactly(run, spot)
        live_signals = {s.id for s in signals.recent(limit=10_000)}
        signals.close()
    replay_dir = tmp_path / "replay"
    settings = Settings(_env_file=None, DATA_DIR=str(replay_dir), **overrides)
    report = await replay([shared_data / "binance-spot-aggtrade-ws.jsonl"], settings, out=io.StringIO())
    assert report.trades == len(spot) and not report.problems

    def features(folder: Path) -> list[dict]:
        rows = pq.read_table(folder / "features").drop_columns(["revision"]).to_pylist()
        return sorted(rows, key=lambda r: (str(r["symbol"]), r["window_start"]))

    live_rows = features(live_dir)
    assert len(live_rows) > 100
    assert live_rows == features(replay_dir)
    replayed = SignalStore(replay_dir / "flowbot.db")
    assert {s.id for s in replayed.recent(limit=10_000)} == live_signals
    replayed.close()
    assert live_signals
