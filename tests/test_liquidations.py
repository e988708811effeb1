"""Liquidations (USD-M forceOrder) replayed and streamed: exact per-window sums of each side, in the store."""

from __future__ import annotations

import asyncio
import io
import time
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from core.futures import Liquidation, MarkPrice
from core.settings import Settings
from engine.bus import InMemoryBus
from engine.venues.binance.messages import InvalidMessage, liquidation_from_force_order
from fakes.binance import FakeBinance
from fakes.recordings import load_ws_recording
from flowbot.ai_config import ai_config
from flowbot.compose import Engine
from flowbot.replay import replay
from presentation.flow_text import format_flow
from storage.feature_store import FeatureStore
from storage.flow_query import flow_report
from storage.signal_store import SignalStore

RECORDINGS = ("binance-usdm-forceorder-2024-08-17.jsonl", "binance-usdm-forceorder-2025-12-27.jsonl")
WINDOW_MS = 5000
Expected = dict[str, dict[int, dict[str, Any]]]


def expected_sums(lines: list[bytes]) -> Expected:
    """Per symbol and 5 s window of trade time: SELL and BUY ap x z (Decimal, from the raw text) and the count."""
    windows: Expected = defaultdict(dict)
    for line in lines:
        order = orjson.loads(line)["data"]["o"]
        start = order["T"] // WINDOW_MS * WINDOW_MS
        sums = windows[order["s"]].setdefault(start, {"long": Decimal(0), "short": Decimal(0), "count": 0})
        sums["long" if order["S"] == "SELL" else "short"] += Decimal(order["ap"]) * Decimal(order["z"])
        sums["count"] += 1
    return windows


def stored(value: Decimal) -> float:
    """An exact quote amount as the store writes it: its integer of 1e-16, divided as a float."""
    units = value * 10**16
    assert units == units.to_integral_value()
    return int(units) / float(10**16)


def assert_store_holds(data_dir: Path, expected: Expected) -> None:
    store = FeatureStore(data_dir)
    assert set(store.symbols()) == set(expected)
    for symbol, windows in expected.items():
        rows = store.read(symbol).to_pylist()
        got = {int(row["window_start"].timestamp() * 1000): row for row in rows}
        assert sorted(got) == sorted(windows), symbol
        for start, want in windows.items():
            row = got[start]
            assert row["liq_long_quote"] == stored(want["long"]), (symbol, start)
            assert row["liq_short_quote"] == stored(want["short"]), (symbol, start)
            assert row["liq_count"] == want["count"]
            assert row["trade_count"] == 0 and row["volume"] == 0


@pytest.mark.parametrize("name", RECORDINGS)
async def test_replaying_a_liquidation_recording_stores_each_sides_notional_exactly(
    shared_data: Path, tmp_path: Path, name: str
) -> None:
    lines = [line for line in (shared_data / name).read_bytes().splitlines() if line.strip()]
    expected = expected_sums(lines)
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path), MARKET="usdm")
    report = await replay([shared_data / name], settings, out=io.StringIO(), err=Console(file=io.StringIO()))
    assert not report.problems and not report.unreadable
    assert_store_holds(tmp_path, expected)
    totals = {side: sum((w[side] for ws in expected.values() for w in ws.values()), Decimal(0))
              for side in ("long", "short")}
    assert sum(len(ws) for ws in expected.values()) > 100 and totals["long"] > 0 and totals["short"] > 0

    busiest = max(expected, key=lambda s: len(expected[s]))
    report = flow_report(FeatureStore(tmp_path), busiest, "24h")
    assert report is not None
    last = max(expected[busiest])
    in_span = [w for start, w in expected[busiest].items() if start >= last + WINDOW_MS - 86_400_000]
    long, short = (sum((w[side] for w in in_span), Decimal(0)) for side in ("long", "short"))
    text = format_flow(report, time.time())
    assert (f"Liquidations (at least: Binance pushes one per symbol per second): longs {long:,.2f}, shorts "
            f"{short:,.2f} ({sum(w['count'] for w in in_span)} orders)") in text


def test_bad_liquidation_messages_are_rejected_with_a_reason() -> None:
    good = {"e": "forceOrder", "E": 1723900000000, "o": {
        "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910", "ap": "9910.5",
        "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1723900000000}}
    order = liquidation_from_force_order(good)
    assert order.is_sell and order.notional == 9910_50000000 * 1400000
    for broken, reason in (
        ({**good, "o": "x"}, "missing_field"),
        ({**good, "o": {**good["o"], "ap": 1.5}}, "wrong_type"),
        ({**good, "o": {**good["o"], "z": "1e3"}}, "bad_decimal"),
        ({**good, "o": {**good["o"], "S": "HOLD"}}, "bad_side"),
        ({"e": "forceOrder", "o": good["o"]}, "missing_field"),
    ):
        with pytest.raises(InvalidMessage) as caught:
            liquidation_from_force_order(broken)
        assert caught.value.reason == reason


def mixed_tape(trades: list[dict[str, Any]], orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The USD-M aggTrade recording with real liquidation orders placed among its trades: order i goes to one of
    the busy symbols, timed 1 ms after one of its trades and sent right after it (as Binance interleaves them)."""
    symbols = ["NEOUSDT", "SANDUSDT", "BATUSDT", "DENTUSDT"]
    positions = {s: [i for i, m in enumerate(trades) if m["data"]["s"] == s] for s in symbols}
    after: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for number, message in enumerate(orders):
        symbol = symbols[number % len(symbols)]
        index = positions[symbol][(number * 7) % len(positions[symbol])]
        at = trades[index]["data"]["T"] + 1
        order = {**message["data"]["o"], "s": symbol, "T": at}
        event = {"e": "forceOrder", "E": at, "o": order}
        after[index].append({"stream": f"{symbol.lower()}@forceOrder", "data": event})
    seconds: dict[str, int] = {}
    for index, message in enumerate(trades):  # a mark price update after each symbol's first trade of a second
        data = message["data"]
        if data["s"] in symbols and seconds.get(data["s"]) != data["T"] // 1000:
            seconds[data["s"]] = data["T"] // 1000
            rate = "0.00010000" if index % 3 else "-0.00002500"
            event = {"e": "markPriceUpdate", "E": data["T"] + 2, "s": data["s"], "p": data["p"], "i": data["p"],
                     "P": data["p"], "r": rate, "T": (data["T"] // 28_800_000 + 1) * 28_800_000}
            after[index].append({"stream": f"{data['s'].lower()}@markPrice@1s", "data": event})
    return [m for i, trade in enumerate(trades) for m in (trade, *after[i])]


def expected_marks(tape: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[Decimal, Decimal, int]]:
    """Per symbol and window of event time: the last update's mark price, funding rate and next funding time."""
    last: dict[tuple[str, int], tuple[Decimal, Decimal, int]] = {}
    for message in tape:
        data = message["data"]
        if data["e"] == "markPriceUpdate":
            last[(data["s"], data["E"] // WINDOW_MS * WINDOW_MS)] = (Decimal(data["p"]), Decimal(data["r"]), data["T"])
    return last


@pytest.mark.parametrize("liquidation_stream", ["symbol", "all"])
async def test_live_streaming_and_replay_of_trades_liquidations_and_mark_prices_store_the_same_rows(
    shared_data: Path, tmp_path: Path, liquidation_stream: str
) -> None:
    """Each symbol's forceOrder stream, or (LIQUIDATION_STREAM=all, SYMBOLS=ALL's default) the market-wide
    !forceOrder@arr, which also carries a symbol not followed: skipped, counted, not an error."""
    import pyarrow.parquet as pq
    from test_feed_live import start_run, wait_connected

    from engine.analysis.pipeline import FlowPipeline
    from flowbot.analysis_config import pipeline_config

    trades = load_ws_recording(shared_data / "binance-usdm-aggtrade-ws.jsonl")
    orders = load_ws_recording(shared_data / RECORDINGS[0])[:120]
    tape = mixed_tape(trades, orders)
    received: list[Liquidation] = []
    marks: list[MarkPrice] = []
    symbols = sorted({m["data"]["s"] for m in trades})
    live_tape = tape
    if liquidation_stream == "all":
        elsewhere = {"stream": "!forceOrder@arr", "data": {**orders[0]["data"], "o": {**orders[0]["data"]["o"],
                                                                                     "s": "NOTFOLLOWEDUSDT"}}}
        live_tape = [{**m, "stream": "!forceOrder@arr"} if m["data"]["e"] == "forceOrder" else m for m in tape]
        live_tape.insert(len(live_tape) // 2, elsewhere)
    async for run in start_run(live_tape, symbols=symbols, market="usdm", settings={
            "LIQUIDATION_STREAM": liquidation_stream}, fake_options={"rate": 3000.0, "batch": 7}):
        streams = [name for part in run.feed.stream_slices() for name in part]
        assert ("!forceOrder@arr" in streams) == (liquidation_stream == "all")
        assert any(name.endswith("@forceOrder") for name in streams) == (liquidation_stream == "symbol")
        live_dir = tmp_path / "live"
        store = FeatureStore(live_dir)
        pipeline = FlowPipeline(pipeline_config(run.settings), run.bus, store=store)
        collect = run.feed.on_trades

        def both(symbol: str, batch: list[Any], collect: Any = collect, pipeline: FlowPipeline = pipeline) -> None:
            collect(symbol, batch)
            pipeline.on_trades(symbol, batch)

        def liquidations(symbol: str, batch: list[Liquidation], pipeline: FlowPipeline = pipeline) -> None:
            received.extend(batch)
            pipeline.on_liquidations(symbol, batch)

        def mark_prices(symbol: str, batch: list[MarkPrice], pipeline: FlowPipeline = pipeline) -> None:
            marks.extend(batch)
            pipeline.on_marks(symbol, batch)

        run.feed.on_trades, run.feed.on_liquidations, run.feed.on_marks = both, liquidations, mark_prices
        await wait_connected(run.fake)
        assert "/market/stream?streams=" in run.feed.venue.connection_url(run.settings.ws_url, ["x@aggTrade"])
        run.fake.play()
        await run.wait_for(len(trades))
        await run.fake.wait_played()
        for _ in range(100):
            if len(received) == len(orders) and len(marks) == len(tape) - len(trades) - len(orders):
                break
            await asyncio.sleep(0.05)
        pipeline.finish()
        store.close()
        assert run.feed.liquidations_elsewhere == (liquidation_stream == "all")
        assert not run.feed.validator.rejected
    assert len(received) == len(orders) and len(marks) == len(tape) - len(trades) - len(orders) > 100
    replay_file = tmp_path / "mixed.jsonl"
    replay_file.write_bytes(b"\n".join(orjson.dumps(m) for m in tape) + b"\n")
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path / "replay"), MARKET="usdm")
    report = await replay([replay_file], settings, out=io.StringIO(), err=Console(file=io.StringIO()))
    assert report.trades + report.duplicates == len(trades) and not report.problems

    def rows(folder: Path) -> list[dict[str, Any]]:
        table = pq.read_table(folder / "features")
        newest: dict[tuple[str, Any], dict[str, Any]] = {}
        for row in sorted(table.to_pylist(), key=lambda r: r["revision"]):
            newest[(str(row["symbol"]), row["window_start"])] = {k: v for k, v in row.items() if k != "revision"}
        return [newest[key] for key in sorted(newest)]

    live_rows = rows(tmp_path / "live")
    assert live_rows == rows(tmp_path / "replay")
    with_liquidations = [row for row in live_rows if row["liq_count"]]
    expected = expected_sums([orjson.dumps(m) for m in tape if m["data"]["e"] == "forceOrder"])
    assert len(with_liquidations) == sum(len(ws) for ws in expected.values())
    for row in with_liquidations:
        want = expected[str(row["symbol"])][int(row["window_start"].timestamp() * 1000)]
        assert (row["liq_long_quote"], row["liq_short_quote"], row["liq_count"]) == (
            stored(want["long"]), stored(want["short"]), want["count"])
    assert all(row["liq_count"] is None for row in live_rows if row["symbol"] not in expected)
    want_marks = expected_marks(tape)
    with_marks = {(str(r["symbol"]), int(r["window_start"].timestamp() * 1000)): r for r in live_rows
                  if r["mark_price"] is not None}
    assert set(with_marks) == set(want_marks)
    for key, (mark, rate, next_funding) in want_marks.items():
        row = with_marks[key]
        assert (row["mark_price"], row["funding_rate"]) == (float(mark), float(rate))
        assert int(row["next_funding_time"].timestamp() * 1000) == next_funding
    assert {rate for _, rate, _ in want_marks.values()} == {Decimal("0.0001"), Decimal("-0.000025")}
    quiet = flow_report(FeatureStore(tmp_path / "live"), "KSMUSDT", "1h")
    assert quiet is not None and quiet.liq_count is None and "Liquidations" not in format_flow(quiet, time.time())


async def test_usdm_run_stores_trades_liquidations_funding_and_open_interest(shared_data: Path, tmp_path: Path) -> None:
    """The engine of `MARKET=usdm flowbot run` against the fake: every futures column lands exactly."""
    from test_feed_live import FAST

    from core.metrics import Metrics

    trades = load_ws_recording(shared_data / "binance-usdm-aggtrade-ws.jsonl")
    orders = load_ws_recording(shared_data / RECORDINGS[1])[:200]
    tape = mixed_tape(trades, orders)
    first, last = (f(m["data"]["T"] for m in trades if m["data"]["s"] == "NEOUSDT") for f in (min, max))
    history = {"NEOUSDT": [  # Binance's openInterestHist shape, 5-minute rows before the recording
        {"symbol": "NEOUSDT", "sumOpenInterest": f"{1_200_000 + 7 * n}.{n:03d}", "sumOpenInterestValue": "1.0",
         "timestamp": first - first % 300_000 - 300_000 * (12 - n)} for n in range(12)]}
    middle = (first + last) // 2
    symbols = sorted({m["data"]["s"] for m in trades})
    fake = FakeBinance(tape, market="usdm", rate=2000.0, batch=7, open_interest=history)
    await fake.start()
    fake.set_open_interest("NEOUSDT", "1234567.891", middle)
    settings = Settings(_env_file=None, **{
        **FAST, "MARKET": "usdm", "SYMBOLS": ",".join(symbols), "BINANCE_WS_URL": fake.ws_url,
        "BINANCE_REST_URL": fake.rest_url, "DATA_DIR": str(tmp_path / "live"), "OI_POLL_INTERVAL": "0.3",
        "WINDOW_GRACE": "0.2"})
    engine = Engine(settings, InMemoryBus(), symbols=symbols, signal_store=None, metrics=Metrics(), out=None)
    task = asyncio.create_task(engine.run())
    try:
        for _ in range(200):  # the history and a first poll of every symbol before the market plays
            polled = {r["symbol"] for r in fake.open_interest_requests if r["path"] == "/fapi/v1/openInterest"}
            if polled == set(symbols) and fake.open_connections():
                break
            await asyncio.sleep(0.05)
        fake.play()
        await fake.wait_played()
        for _ in range(100):
            if sum(engine.feed.health.symbol(s).trades for s in symbols) == len(trades):
                break
            await asyncio.sleep(0.05)
        last_end = {s: max(m["data"]["T"] for m in trades if m["data"]["s"] == s) // 5000 * 5000 + 5000
                    for s in symbols}
        for _ in range(200):  # the last windows close after WINDOW_GRACE (and any gap backfill) in event time
            if all((engine.pipeline.closed_through(s) or 0) >= last_end[s] for s in symbols):
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await fake.close()
    paths = {r["path"] for r in fake.open_interest_requests}
    assert paths == {"/fapi/v1/openInterest", "/futures/data/openInterestHist"}
    assert all(r["period"] == "5m" for r in fake.open_interest_requests if r["path"].endswith("Hist"))

    replay_file = tmp_path / "mixed.jsonl"
    replay_file.write_bytes(b"\n".join(orjson.dumps(m) for m in tape) + b"\n")
    replay_settings = Settings(_env_file=None, DATA_DIR=str(tmp_path / "replay"), MARKET="usdm")
    await replay([replay_file], replay_settings, out=io.StringIO(), err=Console(file=io.StringIO()))
    live = {(s, int(r["window_start"].timestamp() * 1000)): r for s in symbols
            for r in FeatureStore(tmp_path / "live").read(s).to_pylist()}
    replayed = {(s, int(r["window_start"].timestamp() * 1000)): r for s in symbols
                for r in FeatureStore(tmp_path / "replay").read(s).to_pylist()}
    assert set(live) == set(replayed) and len(live) > 100
    for key, row in live.items():  # trades, liquidations and funding as the replay (checked against the raw data)
        assert {k: v for k, v in row.items() if k not in ("open_interest", "revision")} == {
            k: v for k, v in replayed[key].items() if k not in ("open_interest", "revision")}, key
    liquidated = expected_sums([orjson.dumps(m) for m in tape if m["data"]["e"] == "forceOrder"])
    for symbol, windows in liquidated.items():
        for start, want in windows.items():
            assert live[(symbol, start)]["liq_count"] == want["count"]
            assert live[(symbol, start)]["liq_long_quote"] == stored(want["long"])
    values = [(row["timestamp"], Decimal(row["sumOpenInterest"])) for row in history["NEOUSDT"]]
    values.append((middle, Decimal("1234567.891")))
    neo = [(start, row) for (symbol, start), row in live.items() if symbol == "NEOUSDT"]
    for start, row in neo:
        known = [value for at, value in values if at < start + WINDOW_MS]
        assert row["open_interest"] == float(known[-1]), start
    assert {row["open_interest"] for _, row in neo} == {float(values[-2][1]), 1234567.891}
    assert all(row["open_interest"] is None for (symbol, _), row in live.items() if symbol != "NEOUSDT")

    report = flow_report(FeatureStore(tmp_path / "live"), "NEOUSDT", "5m")
    assert report is not None
    text = format_flow(report, time.time())
    change = Decimal("1234567.891") - values[-2][1]
    assert f"Open interest: 1,234,567.891 (+{change:,.3f}, +{change * 100 / values[-2][1]:.2f}% over the span)" in text
    neo_marks = [m["data"] for m in tape if m["data"]["e"] == "markPriceUpdate" and m["data"]["s"] == "NEOUSDT"]
    rate = Decimal(neo_marks[-1]["r"]) * 100
    assert f"Funding: {rate:.4f}% (next " in text and f"Mark: {Decimal(neo_marks[-1]['p']).normalize():f}" in text


async def test_the_chart_of_a_usdm_symbol_has_a_liquidation_panel_and_spot_charts_do_not(
    shared_data: Path, tmp_path: Path
) -> None:
    from presentation.charts import render_chart

    trades = load_ws_recording(shared_data / "binance-usdm-aggtrade-ws.jsonl")
    tape = mixed_tape(trades, load_ws_recording(shared_data / RECORDINGS[0])[:120])
    replay_file = tmp_path / "mixed.jsonl"
    replay_file.write_bytes(b"\n".join(orjson.dumps(m) for m in tape) + b"\n")
    await replay([replay_file], Settings(_env_file=None, DATA_DIR=str(tmp_path), MARKET="usdm"), out=io.StringIO(),
                 err=Console(file=io.StringIO()))
    store = FeatureStore(tmp_path)
    neo = render_chart(store, "NEOUSDT", "5m")
    quiet = render_chart(store, "KSMUSDT", "5m")
    assert neo is not None and quiet is not None
    windows = {start for start in expected_sums([orjson.dumps(m) for m in tape if m["data"]["e"] == "forceOrder"])[
        "NEOUSDT"]}
    assert neo.liquidation_windows == len(windows) > 5 and quiet.liquidation_windows == 0
    assert neo.png.startswith(b"\x89PNG") and neo.png != quiet.png


async def test_ask_sends_the_liquidations_and_funding_of_a_usdm_symbol_as_facts(
    shared_data: Path, tmp_path: Path, chat: Any
) -> None:
    from ai.ask import Asker
    from ai.grounding import check_grounding
    from ai.providers import ProviderChain, providers_from
    from fakes.chat_completions import Reply
    from storage.signal_store import SignalStore

    trades = load_ws_recording(shared_data / "binance-usdm-aggtrade-ws.jsonl")
    tape = mixed_tape(trades, load_ws_recording(shared_data / RECORDINGS[0])[:120])
    replay_file = tmp_path / "mixed.jsonl"
    replay_file.write_bytes(b"\n".join(orjson.dumps(m) for m in tape) + b"\n")
    await replay([replay_file], Settings(_env_file=None, DATA_DIR=str(tmp_path), MARKET="usdm"), out=io.StringIO(),
                 err=Console(file=io.StringIO()))

    def echo(body: dict[str, Any]) -> Reply:
        neo = orjson.loads(body["messages"][-1]["content"].split("Facts: ", 1)[1])["symbols"]["NEOUSDT"]
        return Reply(text=f"At least {neo['liquidated_shorts_quote_at_least']} USDT of shorts were forced out.")

    chat.answer_with("groq", echo)
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path), GROQ_API_KEY="gsk-test",
                        GROQ_BASE_URL=chat.groq_base_url, AI_TIMEOUT="2")
    chain = ProviderChain(providers_from(ai_config(settings)), timeout=settings.ai_timeout)
    asker = Asker(chain.answer, FeatureStore(tmp_path), symbols=["NEOUSDT", "KSMUSDT"],
                  signal_store=SignalStore(tmp_path / "flowbot.db"))
    answer = await asker.ask("were NEOUSDT shorts liquidated in the last 15 minutes?")
    facts = orjson.loads(chat.requests[-1].messages[-1]["content"].split("Facts: ", 1)[1])
    neo = facts["symbols"]["NEOUSDT"]
    sums = expected_sums([orjson.dumps(m) for m in tape if m["data"]["e"] == "forceOrder"])["NEOUSDT"]
    short = sum((w["short"] for w in sums.values()), Decimal(0))
    assert neo["liquidated_shorts_quote_at_least"] == float(short.quantize(Decimal("0.01")))
    assert neo["liquidation_orders"] == sum(w["count"] for w in sums.values())
    rates = [m["data"]["r"] for m in tape if m["data"]["e"] == "markPriceUpdate" and m["data"]["s"] == "NEOUSDT"]
    last_rate = rates[-1]
    assert neo["funding_rate_pct"] == float(Decimal(last_rate) * 100)
    assert answer.provider == "groq" and check_grounding(answer.text, facts, "were NEOUSDT shorts liquidated")


def expected_cascades(lines: list[bytes], *, percentile: float = 75, multiple: Decimal = Decimal(5),
                      min_orders: int = 5, min_move: Decimal = Decimal("0.2"), min_history: int = 20) -> list[tuple]:
    """Cascades by the rule as /help and the README state it, from the raw orders in Decimal: at the end of each
    5 s window holding liquidations, per side, the minute's notional against the nearest-rank percentile of that
    side's earlier minutes (those ending within a day), price moving through them (first to last `ap`)."""
    orders: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        order = orjson.loads(line)["data"]["o"]
        orders[order["s"]].append(order)
    found = []
    for symbol, mine in orders.items():
        mine.sort(key=lambda o: o["T"])
        history: dict[str, list[tuple[int, Decimal]]] = {"SELL": [], "BUY": []}
        for start in sorted({o["T"] // WINDOW_MS * WINDOW_MS for o in mine}):
            end = start + WINDOW_MS
            for side, direction in (("SELL", "sell"), ("BUY", "buy")):
                minute = [o for o in mine if o["S"] == side and end - 60_000 <= o["T"] // WINDOW_MS * WINDOW_MS < end]
                if not minute:
                    continue
                total = sum((Decimal(o["ap"]) * Decimal(o["z"]) for o in minute), Decimal(0))
                seen = sorted(q for at, q in history[side] if end - 86_400_000 <= at < end)
                history[side].append((end, total))
                if len(seen) < min_history:
                    continue
                norm = seen[max(1, -(-int(percentile * len(seen)) // 100)) - 1]
                first = min(minute, key=lambda o: o["T"])
                last = max(minute, key=lambda o: o["T"])
                move = (Decimal(last["ap"]) - Decimal(first["ap"])) * 100 / Decimal(first["ap"])
                forced = -move if side == "SELL" else move
                if norm and len(minute) >= min_orders and total >= multiple * norm and forced >= min_move:
                    times = total / norm
                    severity = 3 if times >= 4 * multiple else 2 if times >= 2 * multiple else 1
                    found.append((symbol, start, direction, severity, float(total.quantize(Decimal("1e-8"))),
                                  len(minute)))
    return sorted(found)


@pytest.mark.parametrize("name", RECORDINGS)
async def test_liquidation_cascades_are_raised_where_the_recording_shows_them(
    shared_data: Path, tmp_path: Path, name: str
) -> None:
    lines = [line for line in (shared_data / name).read_bytes().splitlines() if line.strip()]
    expected = expected_cascades(lines)
    assert expected, "each recording holds at least one cascade by the default thresholds"
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path), MARKET="usdm", SIGNAL_COOLDOWN="0",
                        ALERT_BUDGET_PER_DAY="0")
    await replay([shared_data / name], settings, out=io.StringIO(), err=Console(file=io.StringIO()))
    store = SignalStore(tmp_path / "flowbot.db")
    try:
        signals = [s for s in store.recent(limit=10_000) if s.kind == "liquidation_cascade"]
    finally:
        store.close()
    got = sorted((s.symbol, s.window_start, str(s.direction), s.severity, s.evidence["liq_quote_1m"],
                  s.evidence["liq_orders_1m"]) for s in signals)
    assert got == expected
    assert all("close" not in s.evidence for s in signals)  # liquidations alone: no trade price to quote


async def test_a_replayed_cascade_reaches_telegram_with_its_amounts_and_its_chart(shared_data: Path,
                                                                                  tmp_path: Path) -> None:
    from ai.ask import Asker
    from ai.providers import ProviderChain
    from bot.service import BotService
    from fakes.telegram_api import FakeTelegram
    from flowbot.bot_config import bot_config

    name = RECORDINGS[1]
    lines = [line for line in (shared_data / name).read_bytes().splitlines() if line.strip()]
    expected = {(c[0], c[1]): c for c in expected_cascades(lines)}
    await replay([shared_data / name], Settings(_env_file=None, DATA_DIR=str(tmp_path), MARKET="usdm"),
                 out=io.StringIO(), err=Console(file=io.StringIO()))  # default settings: cooldown and budget
    store = SignalStore(tmp_path / "flowbot.db")
    try:
        cascade = max((s for s in store.recent(limit=10_000) if s.kind == "liquidation_cascade"),
                      key=lambda s: s.evidence["liq_quote_1m"])
    finally:
        store.close()
    symbol, _, direction, _, total, orders = expected[(cascade.symbol, cascade.window_start)]
    async with FakeTelegram() as fake:
        settings = Settings(_env_file=None, DATA_DIR=str(tmp_path), SYMBOLS=symbol, MARKET="usdm",
                            TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE_URL=fake.url, TELEGRAM_CHAT_INTERVAL="0")
        features = FeatureStore(tmp_path)
        bots = BotService(bot_config(settings), store=features, signal_store=None,
                          asker=Asker(ProviderChain([], timeout=1).answer, features, symbols=settings.symbols),
                          retry_base_s=0.05)
        await bots.start()
        try:
            fake.push_message(77, f"/subscribe {symbol}")
            await fake.wait_until(lambda: fake.sent)
            await bots.on_signal(cascade)
            assert await bots.dispatchers["telegram"].drain(10)
            alert = fake.sent[-1].text or ""
            side = "shorts" if direction == "buy" else "longs"
            assert alert.startswith(f"<b>{symbol} · Liquidation cascade · {direction}")
            assert f"{orders} {side} liquidated in a minute: {total:,.2f} (quote, at least)" in alert
            assert ("a short squeeze, bullish" if direction == "buy" else "forced selling, bearish") in alert
            sent = len(fake.sent)
            fake.push_message(77, f"/chart {symbol} 24h")
            await fake.wait_until(lambda: len(fake.sent) > sent, timeout=20)
            assert fake.sent[-1].photo is not None  # the chart, with its liquidation panel
        finally:
            await bots.stop()


def funding_tape(symbol: str = "ETHUSDT", start: int = 1_766_800_000_000) -> list[dict[str, Any]]:
    """Ten hours of markPriceUpdate messages as Binance documents them, one every 10 s: funding between 0.01% and
    0.022%, but 0.15% from 07:00 to 07:10 and -0.12% from 08:30 to 08:35 after the start."""
    tape = []
    for i in range(3_600):
        at = start + i * 10_000
        elapsed = i * 10_000
        rate = Decimal("0.0001") + Decimal("0.00002") * (i % 7)
        if 7 * 3_600_000 <= elapsed < 7 * 3_600_000 + 600_000:
            rate = Decimal("0.0015")
        elif 8.5 * 3_600_000 <= elapsed < 8.5 * 3_600_000 + 300_000:
            rate = Decimal("-0.0012")
        data = {"e": "markPriceUpdate", "E": at, "s": symbol, "p": "3000.10000000", "i": "3000.50000000",
                "P": "3001.00000000", "r": f"{rate:.8f}", "T": (at // 28_800_000 + 1) * 28_800_000}
        tape.append({"stream": f"{symbol.lower()}@markPrice@1s", "data": data})
    return tape


def expected_funding_extremes(tape: list[dict[str, Any]], percentile: int = 99, floor: Decimal = Decimal("0.0005"),
                              min_history: int = 360) -> list[tuple[int, str, int]]:
    """By the README's rule, from the messages: each 5 s window's last rate; the first window of each minute is a
    sample; beyond the nearest-rank percentile (or its mirror) of the earlier samples, and the floor, on entering."""
    last: dict[int, Decimal] = {}
    for message in tape:
        last[message["data"]["E"] // WINDOW_MS * WINDOW_MS] = Decimal(message["data"]["r"])
    samples: list[Decimal] = []
    sampled_minute, extreme, found = None, None, []
    for start in sorted(last):
        end, rate = start + WINDOW_MS, last[start]
        bounds = None
        if len(samples) >= min_history:
            values = sorted(samples)
            high = values[-(-percentile * len(values) // 100) - 1]
            low = values[-(-(100 - percentile) * len(values) // 100) - 1]
            bounds = (low, high)
        if end // 60_000 != sampled_minute:
            sampled_minute = end // 60_000
            samples.append(rate)
        if bounds is None:
            continue
        now = "sell" if rate > bounds[1] and rate >= floor else "buy" if rate < bounds[0] and rate <= -floor else None
        if now is not None and now != extreme:
            found.append((start, now, 1 + (abs(rate) >= 2 * floor) + (abs(rate) >= 4 * floor)))
        extreme = now
    return found


async def test_funding_at_an_extreme_for_the_symbol_is_signalled_on_entering_it(tmp_path: Path) -> None:
    tape = funding_tape()
    expected = expected_funding_extremes(tape)
    assert [direction for _, direction, _ in expected] == ["sell", "buy"]
    path = tmp_path / "marks.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(m) for m in tape) + b"\n")
    await replay([path], Settings(_env_file=None, DATA_DIR=str(tmp_path), MARKET="usdm"), out=io.StringIO(),
                 err=Console(file=io.StringIO()))  # default settings
    store = SignalStore(tmp_path / "flowbot.db")
    try:
        signals = sorted((s for s in store.recent(limit=100) if s.kind == "funding_extreme"),
                         key=lambda s: s.window_start)
    finally:
        store.close()
    assert [(s.window_start, str(s.direction), s.severity) for s in signals] == expected
    assert signals[0].evidence["funding_rate_pct"] == 0.15 and signals[1].evidence["funding_rate_pct"] == -0.12


def oi_market(symbol: str, move: str, start: int = 1_766_800_000_000) -> tuple[list[Any], list[Any]]:
    """Three hours of one trade a second and open interest polled every 30 s (as /fapi/v1/openInterest answers):
    quiet churn, then from 02:00 ten minutes of either new longs (open interest +5%, buyers lifting the price) or a
    long flush (open interest -6%, sellers pushing the price down)."""
    from core.futures import OpenInterest
    from core.trades import Trade

    trades, values = [], []
    price, oi = Decimal(3000), Decimal(1_000_000)
    for second in range(3 * 3600):
        at = start + second * 1000
        minute = second // 60
        moving = 120 <= minute < 130
        surge, flush = moving and move == "surge", moving and move == "flush"
        is_sell = (second % 2 == 0) if not moving else flush or second % 5 == 0
        churn = Decimal("0.1") * (1 if second % 4 < 2 else -1)
        step = Decimal("0.5") if surge else Decimal("-0.75") if flush else churn
        price += step / 10
        if second % 30 == 0:
            oi *= Decimal("1.0075") if surge else Decimal("0.991") if flush else (Decimal("1.0003") if minute % 2
                                                                                  else Decimal("0.9997"))
            oi = oi.quantize(Decimal("0.001"))
            values.append(OpenInterest(symbol, int(oi * E8_INT), at - 1))
        qty = Decimal("0.5") + Decimal(second % 3) / 10
        trades.append(Trade(symbol, second + 1, second + 1, second + 1, int(price.quantize(Decimal("0.01")) * E8_INT),
                            int(qty * E8_INT), at, at, is_sell))
    return trades, values


E8_INT = 10**8


def expected_oi_shifts(trades: list[Any], values: list[Any], *, percentile: int = 95, multiple: Decimal = Decimal(2),
                       min_pct: Decimal = Decimal(1), min_history: int = 60) -> list[tuple[int, str, str]]:
    """The README's rule from the inputs: per 5 s window its last price, delta and the open interest known before its
    end; the change since the last window ending 15 minutes or more before; a sample a minute; on entering."""
    windows: dict[int, list[Any]] = defaultdict(list)
    for trade in trades:
        windows[trade.trade_time // WINDOW_MS * WINDOW_MS].append(trade)
    points: list[tuple[int, Decimal, Decimal, Decimal]] = []  # (end, oi, close, running delta)
    samples: list[Decimal] = []
    sampled, shifted, found, flow = None, False, [], Decimal(0)
    for start in sorted(windows):
        end = start + WINDOW_MS
        known = [v for v in values if v.time < end]
        if not known:
            continue
        flow += sum((Decimal(t.qty) * (-1 if t.is_sell else 1) for t in windows[start]), Decimal(0))
        oi, close = Decimal(known[-1].open_interest), Decimal(windows[start][-1].price)
        points.append((end, oi, close, flow))
        earlier = [p for p in points if p[0] <= end - 900_000]
        if not earlier:
            continue
        then = earlier[-1]
        change = (oi - then[1]) * 100 / then[1]
        norm = None
        if len(samples) >= min_history:
            ordered = sorted(samples)
            norm = ordered[-(-percentile * len(ordered) // 100) - 1]
        if end // 60_000 != sampled:
            sampled = end // 60_000
            samples.append(abs(change))
        now = norm is not None and abs(change) >= max(min_pct, norm * multiple)
        if now and not shifted:
            up = close > then[2]
            if change > 0 and (flow - then[3] > 0) != up:
                shifted = now
                continue
            label = {(True, True): "new longs", (True, False): "new shorts", (False, True): "short squeeze",
                     (False, False): "long flush"}[(change > 0, up)]
            found.append((start, label, "buy" if up else "sell"))
        shifted = now
    return found


@pytest.mark.parametrize(("move", "shift", "direction"),
                         [("surge", "new longs", "buy"), ("flush", "long flush", "sell")])
async def test_open_interest_shifts_name_the_side_that_moved(move: str, shift: str, direction: str) -> None:
    trades, values = oi_market("ETHUSDT", move)
    expected = expected_oi_shifts(trades, values)
    assert [(label, side) for _, label, side in expected] == [(shift, direction)]
    shifts = oi_shift_signals(trades, values)
    assert [(s.window_start, s.evidence["shift"], str(s.direction)) for s in shifts] == expected


def oi_shift_signals(trades: list[Any], values: list[Any], history: Sequence[Any] = ()) -> list[Any]:
    """The oi_shift signals of a USD-M pipeline given `history` first, then the trades with each poll in time."""
    from engine.analysis.pipeline import FlowPipeline
    from flowbot.analysis_config import pipeline_config

    signals: list[Any] = []
    pipeline = FlowPipeline(pipeline_config(Settings(_env_file=None, MARKET="usdm")), InMemoryBus(),
                            on_signal=signals.append)
    if history:
        pipeline.on_open_interest("ETHUSDT", list(history))
    polled = iter(values)
    upcoming = next(polled, None)
    for trade in trades:
        while upcoming is not None and upcoming.time <= trade.trade_time:
            pipeline.on_open_interest("ETHUSDT", [upcoming])
            upcoming = next(polled, None)
        pipeline.on_trades("ETHUSDT", [trade])
    pipeline.finish()
    return [s for s in signals if s.kind == "oi_shift"]


def metrics_csv(path: Path, symbol: str, first_ms: int, rows: int) -> dict[int, Decimal]:
    """A metrics dump shaped as data.binance.vision's (5-minute open interest), with one bad row; its values."""
    header = ("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
              "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio")
    lines, values = [header], {}
    for i in range(rows):
        at = first_ms + i * 300_000
        value = Decimal("81234.567") + Decimal("12.5") * i * (-1) ** i
        values[at] = value
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at / 1000))
        lines.append(f"{created},{symbol},{value:.16f},{value * 60000:.16f},1.9,1.8,1.7,0.9")
    lines.insert(3, f"2024-08-08 23:99:00,{symbol},1,1,1,1,1,1")  # a corrupt row: reported, skipped
    path.write_text("\n".join(lines) + "\n")
    return values


async def test_a_metrics_dump_replayed_before_trades_gives_each_window_the_open_interest_known_at_its_end(
    shared_data: Path, tmp_path: Path
) -> None:
    trades_file = shared_data / "binance-usdm-btcusdt-trade-ws-2024-08-08.jsonl"
    trades = load_ws_recording(trades_file)
    first = trades[0]["data"]["T"] // 300_000 * 300_000 - 3_600_000  # an hour of history before the trades
    metrics = tmp_path / "BTCUSDT-metrics-2024-08-08.csv"
    values = metrics_csv(metrics, "BTCUSDT", first, 20)
    funding = tmp_path / "BTCUSDT-fundingRate-2024-08.csv"
    funding.write_text("calc_time,funding_interval_hours,last_funding_rate\n1723075200000,8,0.00010000\n"
                       "1723104000000,8,-0.00004213\n")
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path / "data"), MARKET="usdm", STREAM="trade")
    report = await replay([metrics, funding, trades_file], settings, out=io.StringIO(),
                          err=Console(file=io.StringIO()))
    assert not report.unreadable and [p.line for p in report.problems] == [4]
    rows = FeatureStore(tmp_path / "data").read("BTCUSDT").to_pylist()
    assert rows and all(row["trade_count"] for row in rows)
    for row in rows:
        end = int(row["window_end"].timestamp() * 1000)
        known = max(at for at in values if at < end)
        assert row["open_interest"] == float(values[known]), end
    from engine.replay.readers import read_replay

    [batch] = list(read_replay(funding))
    assert [(s.symbol, Decimal(s.rate) / 10**8, s.time) for s in batch.funding] == [
        ("BTCUSDT", Decimal("0.0001"), 1723075200000), ("BTCUSDT", Decimal("-0.00004213"), 1723104000000)]


async def test_evaluate_measures_the_futures_kinds_like_the_others(tmp_path: Path) -> None:
    """Trades and mark prices of one symbol (aggTrade and markPriceUpdate messages as Binance sends them): the funding
    extremes are in outcomes.csv with returns computed from the trades, as every kind's are."""
    from flowbot.evaluate import evaluate
    from flowbot.horizons import parse_horizons

    marks = funding_tape()
    first = marks[0]["data"]["E"]
    trades = []
    for i in range(len(marks) * 10):  # a trade a second, the price walking
        at = first + i * 1000 + 500
        price = Decimal(3000) + Decimal(i % 97) / 10 - Decimal(i % 89) / 20
        trades.append({"stream": "ethusdt@aggTrade", "data": {
            "e": "aggTrade", "E": at, "s": "ETHUSDT", "a": i + 1, "p": f"{price:.2f}", "q": "0.500", "f": i + 1,
            "l": i + 1, "T": at, "m": i % 3 == 0}})
    tape = sorted([*marks, *trades], key=lambda m: (m["data"]["E"], m["data"]["e"]))
    path = tmp_path / "usdm.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(m) for m in tape) + b"\n")
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path / "data"), MARKET="usdm", ALERT_BUDGET_PER_DAY="0")
    outcomes, _ = await evaluate([path], settings, parse_horizons("15m"), tmp_path / "out",
                                 console=Console(file=io.StringIO()))
    funding = outcomes[outcomes["kind"] == "funding_extreme"]
    assert list(funding["direction"]) == ["sell", "buy"]
    prices = [(m["data"]["T"], Decimal(m["data"]["p"])) for m in trades]
    for _, row in funding.iterrows():
        end = int(row["window_end"])
        base = [p for t, p in prices if t < end][-1]
        later = [p for t, p in prices if t < end + 900_000][-1]
        assert row["ret_15m"] == pytest.approx(float(later / base - 1), abs=1e-12)
    assert "funding_extreme" in (tmp_path / "out" / "summary.csv").read_text()


async def test_open_interest_history_at_start_gives_the_shift_norm_at_once() -> None:
    """A day of 5-minute history (as /futures/data/openInterestHist answers at start) before the trades: a surge 20
    minutes in is judged against it; without the history there is no norm yet (60 minutes of samples)."""
    from core.futures import OpenInterest

    trades, values = oi_market("ETHUSDT", "surge")
    early = 100 * 60_000  # the market's minutes 100.. only: the surge (from minute 120) comes 20 minutes in
    trades = [t for t in trades if t.trade_time >= trades[0].trade_time + early]
    values = [v for v in values if v.time >= trades[0].trade_time - 30_000]
    first = values[0].time
    history = [OpenInterest("ETHUSDT", values[0].open_interest + (1 if i % 2 else -1) * 100_000_000, at)
               for i, at in enumerate(range(first - 86_400_000, first - 299_999, 300_000))]

    assert oi_shift_signals(trades, values) == []
    assert [s.evidence["shift"] for s in oi_shift_signals(trades, values, history)] == ["new longs"]


async def test_the_open_interest_history_pages_back_30_days_behind_the_polls() -> None:
    """The fake's openInterestHist keeps 31 days of 5-minute rows: the latest page first for every symbol, then
    older pages (500 rows at most, startTime/endTime) back to 30 days before the newest row, each row once."""
    import aiohttp

    from core.settings import Market
    from engine.venues.binance.open_interest import OpenInterestPoller
    from engine.venues.binance.rest import BinanceRest

    newest = 1_766_800_000_000 // 300_000 * 300_000
    history = {symbol: [{"symbol": symbol, "sumOpenInterest": f"{1000 + n}.5", "sumOpenInterestValue": "1.0",
                         "timestamp": newest - 300_000 * (8_928 - 1 - n)} for n in range(8_928)]  # 31 days
               for symbol in ("ETHUSDT", "SOLUSDT")}
    got: dict[str, list[Any]] = defaultdict(list)
    async with FakeBinance([], market="usdm", open_interest=history) as fake, aiohttp.ClientSession() as session:
        rest = BinanceRest(session, fake.rest_url, Market.USDM, max_attempts=2)
        poller = OpenInterestPoller(rest, ["ETHUSDT", "SOLUSDT"], 60.0, lambda s, v: got[s].extend(v), history_pace=0)
        running = asyncio.create_task(poller.run())
        try:
            for _ in range(200):
                if all(len(got[s]) >= 8_641 for s in history):
                    break
                await asyncio.sleep(0.05)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    since = newest - 30 * 86_400_000
    for symbol, rows in history.items():
        times = [v.time for v in got[symbol]]
        expected = [r["timestamp"] for r in rows if r["timestamp"] >= since]
        assert sorted(set(times)) == expected  # every row of the 30 days (the polls' current value besides)
        assert got[symbol][0].open_interest == int(Decimal(rows[-500]["sumOpenInterest"]) * 10**8)
    pages = [r for r in fake.open_interest_requests if r["path"].endswith("Hist")]
    assert [r["symbol"] for r in pages[:2]] == ["ETHUSDT", "SOLUSDT"] and "startTime" not in pages[0]
    assert all(int(r["limit"]) <= 500 for r in pages) and len(pages) == 2 * 18
    for symbol in history:  # the older pages follow one another back in time without overlapping
        ranges = [(int(r["startTime"]), int(r["endTime"])) for r in pages if r["symbol"] == symbol and "endTime" in r]
        assert all(start <= end < previous for (start, end), (previous, _) in zip(ranges[1:], ranges, strict=False))
