"""Live windows close by event time: a market whose stream lags the wall clock, a stall whose trades come late
over REST, and a corrected window judged again. Real engine against the fake Binance over real sockets."""

from __future__ import annotations

import asyncio
import io
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from expected_flow import columns, load_csv

from bot.alert_text import render_alert
from bot.outbox import AlertItem
from core.events import Signal
from core.metrics import Metrics
from core.settings import Settings
from engine.analysis.pipeline import FlowPipeline
from engine.bus import InMemoryBus
from fakes.binance import ConnectionFault, FakeBinance
from fakes.recordings import live_tape, load_ws_recording
from flowbot.analysis_config import pipeline_config
from flowbot.compose import Engine
from flowbot.replay import replay
from storage.feature_store import FeatureStore
from storage.signal_store import SignalStore

FAST = {
    "HEALTH_CHECK_INTERVAL": "0.1", "WS_RECONNECT_BASE_DELAY": "0.02", "WS_RECONNECT_MAX_DELAY": "0.1",
    "GAP_GRACE": "0.05", "WINDOW_DURATION": "1", "WHALE_MIN_NOTIONAL": "2000", "WHALE_PERCENTILE": "99",
}


def first_session(shared_data: Path) -> list[dict[str, Any]]:
    """The spot recording's first session (BTCUSDT, ETHUSDT, DOTUSDT, 90 s of one day)."""
    recording = load_ws_recording(shared_data / "binance-spot-aggtrade-ws.jsonl")
    return [m for m in recording if m["data"]["s"] in {"BTCUSDT", "ETHUSDT", "DOTUSDT"}]


async def run_engine(tape: list[dict[str, Any]], lag_s: float, data_dir: Path, env: dict[str, str],
                     faults: tuple[ConnectionFault, ...] = (), metrics: Metrics | None = None) -> Engine:
    """An engine shard against a fake market that plays `tape` `lag_s` behind the wall clock, until every window
    could have closed; returns the stopped engine."""
    fake = FakeBinance(tape, clock_lag=lag_s)
    await fake.start()
    fake.add_connection_faults(*faults)
    symbols = sorted({m["data"]["s"] for m in tape})
    metrics = metrics or Metrics()
    settings = Settings(_env_file=None, **FAST, **env, SYMBOLS=",".join(symbols), DATA_DIR=str(data_dir),
                        BINANCE_WS_URL=fake.ws_url, BINANCE_REST_URL=fake.rest_url)
    signals = SignalStore(data_dir / "flowbot.db")
    engine = Engine(settings, InMemoryBus(), symbols=symbols, signal_store=signals, metrics=metrics,
                    out=io.StringIO())
    task = asyncio.create_task(engine.run())
    try:
        while fake.open_connections() < 1:
            await asyncio.sleep(0.02)
        fake.play()
        await fake.wait_played(timeout=120)
        last_close = tape[-1]["data"]["T"] / 1000 + 1 + lag_s + settings.window_grace + 1.5
        builders = engine.pipeline.builders.values()
        while time.time() < last_close + 10 and (
                time.time() < last_close or any(b.open_window_start is not None for b in builders)):
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        signals.close()
        await fake.close()
    return engine


def stored_rows(data_dir: Path) -> list[dict[str, Any]]:
    return pq.read_table(data_dir / "features").to_pylist()


def newest_rows(data_dir: Path) -> list[dict[str, Any]]:
    """One row per window, the highest revision (the readers' contract), without the revision."""
    newest: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in stored_rows(data_dir):
        key = (str(row["symbol"]), row["window_start"])
        if key not in newest or row["revision"] > newest[key]["revision"]:
            newest[key] = row
    return sorted(({k: v for k, v in row.items() if k != "revision"} for row in newest.values()),
                  key=lambda r: (str(r["symbol"]), r["window_start"]))


def signal_ids(data_dir: Path) -> set[str]:
    store = SignalStore(data_dir / "flowbot.db")
    try:
        return {s.id for s in store.recent(limit=100_000)}
    finally:
        store.close()


async def test_a_stream_lagging_10s_writes_each_window_once_with_the_signals_of_a_replay(shared_data, tmp_path):
    tape = live_tape(first_session(shared_data), int(time.time() * 1000) - 10_000 + 500, speed=10)
    metrics = Metrics()
    engine = await run_engine(tape, 10.0, tmp_path / "live", {"WINDOW_GRACE": "2"}, metrics=metrics)

    rows = stored_rows(tmp_path / "live")
    written = Counter((str(r["symbol"]), r["window_start"]) for r in rows)
    assert written and max(written.values()) == 1  # no window written twice
    assert engine.pipeline.corrections == 0
    assert sum(r["trade_count"] for r in rows) == len(tape)
    tape_file = tmp_path / "tape.jsonl"
    tape_file.write_bytes(b"\n".join(orjson.dumps(m) for m in tape))
    settings = Settings(_env_file=None, **FAST, DATA_DIR=str(tmp_path / "replay"))
    await replay([tape_file], settings, out=io.StringIO())
    assert newest_rows(tmp_path / "live") == newest_rows(tmp_path / "replay")
    live_signals = signal_ids(tmp_path / "live")
    assert live_signals and live_signals == signal_ids(tmp_path / "replay")
    connection = next(iter(engine.feed.health.connections.values()))
    assert connection.processing_lag_ms is not None and connection.processing_lag_ms >= 9_000  # Binance's lag
    exposed = metrics.render()[0].decode()
    lag = float(exposed.split(f'flowbot_event_time_lag_seconds{{connection="{connection.name}"}} ')[1].split()[0])
    assert lag >= 9.0  # behind the market by Binance's own lag, at least
    assert f'flowbot_processing_lag_seconds{{connection="{connection.name}"}}' in exposed


def expected_windows(tape: list[dict[str, Any]], window_ms: int) -> dict[int, dict[str, Any]]:
    """Per window of one symbol's tape: trade count, volume, delta and CVD, with Decimal from the raw messages."""
    windows: dict[int, dict[str, Any]] = defaultdict(lambda: {"trade_count": 0, "volume": Decimal(0),
                                                              "delta": Decimal(0)})
    for message in tape:
        d = message["data"]
        w = windows[d["T"] // window_ms * window_ms]
        w["trade_count"] += 1
        w["volume"] += Decimal(d["q"])
        w["delta"] += -Decimal(d["q"]) if d["m"] else Decimal(d["q"])
    cvd = Decimal(0)
    for start in sorted(windows):
        cvd += windows[start]["delta"]
        windows[start]["cvd"] = cvd
    return dict(windows)


async def test_trades_a_stall_hid_come_late_over_rest_and_correct_only_their_windows(shared_data, tmp_path):
    btc = [m for m in first_session(shared_data) if m["data"]["s"] == "BTCUSDT"]
    tape = live_tape(btc, int(time.time() * 1000) - 1_000 + 500, speed=8)
    stall_after = 400
    env = {"WINDOW_GRACE": "0.5", "WS_STALL_TIMEOUT": "3"}  # silent for the grace, replaced after 3 s
    engine = await run_engine(tape, 1.0, tmp_path, env, faults=(ConnectionFault(stall_after=stall_after),))

    assert engine.pipeline.corrections >= 1
    rows = stored_rows(tmp_path)
    hidden = {m["data"]["T"] // 1000 * 1000 for m in tape[stall_after:]}  # what the stall kept from the socket
    revised = {int(r["window_start"].timestamp() * 1000) for r in rows if r["revision"] > 0}
    assert revised and revised <= hidden  # a late trade rewrites its own window, no other
    expected = expected_windows(tape, 1000)
    got = {int(r["window_start"].timestamp() * 1000): r for r in newest_rows(tmp_path)}
    assert sorted(got) == sorted(expected)
    for start, want in expected.items():
        row = got[start]
        assert row["trade_count"] == want["trade_count"], start
        assert Decimal(repr(row["delta"])) == want["delta"], start
        assert Decimal(repr(row["cvd"])) == want["cvd"], start  # later windows' CVD moved with the correction
    read = FeatureStore(tmp_path).read("BTCUSDT")  # the store's reader keeps the highest revision too
    assert [Decimal(repr(v)) for v in read["cvd"].to_pylist()] == [expected[s]["cvd"] for s in sorted(expected)]


def test_a_corrected_window_is_judged_again_and_raises_its_signal_marked_late(shared_data) -> None:
    rows = load_csv(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv")
    settings = Settings(_env_file=None, WHALE_PERCENTILE="0", WHALE_MIN_NOTIONAL="20000", SIGNAL_COOLDOWN="0",
                        ALERT_BUDGET_PER_DAY="0", WINDOW_GRACE="1")  # every signal, the late one included
    # a window whose only whale trades come after its first trades: the window closes before they arrive
    starts = [r["T"] // 5000 * 5000 for r in rows]
    whale = [Decimal(r["p"]) * Decimal(r["q"]) >= 20000 for r in rows]
    split = next(i for i in range(200, len(rows)) if whale[i] and starts[i - 1] == starts[i]
                 and not any(whale[j] for j in range(starts.index(starts[i]), i)))
    target = starts[split]
    raised: list[Signal] = []
    pipeline = FlowPipeline(pipeline_config(settings), InMemoryBus(), on_signal=raised.append)
    cols = columns(rows)
    pipeline.on_columns(cols.take(0, split))
    pipeline.close_to_watermarks({"BTCUSDT": target + 5000 + 1000})
    assert not [s for s in raised if s.window_start == target and s.kind == "whale"]
    pipeline.on_columns(cols.take(split, len(rows)))
    pipeline.finish()

    late = [s for s in raised if s.window_start == target and s.kind == "whale"]
    assert len(late) == 1 and late[0].evidence["late"] is True
    replayed: list[Signal] = []
    whole = FlowPipeline(pipeline_config(settings), InMemoryBus(), on_signal=replayed.append)
    whole.on_columns(columns(rows))
    whole.finish()
    want = next(s for s in replayed if s.id == late[0].id)
    assert (late[0].direction, late[0].severity) == (want.direction, want.severity)
    message = render_alert([AlertItem(late[0], None, None)], "en")
    assert "Late" in message.body


def test_a_bot_process_sees_the_furthest_behind_shard() -> None:
    from core.events import FeedHealthReport
    from engine.mirror import BusMirror

    mirror = BusMirror()
    mirror.apply(FeedHealthReport({"healthy": True, "behind_s": 12.4, "symbols": {"BTCUSDT": {}}}))
    mirror.apply(FeedHealthReport({"healthy": True, "behind_s": 0.3, "symbols": {"ETHUSDT": {}}}))
    merged = mirror.feed_health()
    assert merged is not None and merged["behind_s"] == 12.4
