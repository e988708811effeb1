"""Alert rules benchmark: 100,000 rules over 400 symbols, judged per symbol and measure with sorted thresholds.

(a) Window closes: the real BTCUSDT dump's windows, renamed to 400 symbols, judged by the bot's RuleService
    (SQLite outbox and all) with no rules, then with 100,000 rules; prints the added time per window close.
(b) Ingestion: the looped spot aggTrade recording from the fake Binance over a real WebSocket through the feed
    and the pipeline, as `flowbot run` does it, without rules, then with 100,000 rules over 400 symbols (the
    recording's among them) judged on the same event loop from the PriceTicks and closed windows on the bus;
    prints trades per second.
Each measurement runs in a child process of its own, alternated, median of --repeat.

    python -m bench.rules [--rules 100000] [--symbols 400] [--messages 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.ingest import build_tape
from bot.database import open_database
from bot.models import Destination
from bot.outbox import Outbox
from bot.rules.grammar import RuleSpec
from bot.rules.metrics import SPANS_MS, Op
from bot.rules.service import RuleService
from bot.subscriptions import Subscriptions
from core.events import PriceTick, WindowClosed
from core.settings import Settings
from engine.analysis.pipeline import FlowPipeline
from engine.bus import InMemoryBus
from engine.price_ticks import price_tick
from engine.replay.readers import read_replay
from fakes.binance import FakeBinance
from fakes.recordings import shared_data_dir
from flowbot.analysis_config import pipeline_config
from flowbot.feed_config import make_feed

DUMP = "BTCUSDT-aggTrades-2026-01-01.csv"
WINDOW_METRICS = (("delta", None, ""), ("delta", "5m", ""), ("cvd", None, ""), ("cvd", "1h", ""),
                  ("buy_share", "1m", "%"), ("buy_share", "5m", "%"), ("volume", "1m", "x"), ("volume", "15m", ""))


def random_specs(symbols: list[str], prices: dict[str, Decimal], count: int, seed: int = 7) -> list[RuleSpec]:
    """A mix of price, whale and window rules, levels spread around each symbol's values."""
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        symbol = symbols[i % len(symbols)]
        op = rng.choice(list(Op))
        kind = rng.random()
        if kind < 0.4:
            level = (prices[symbol] * Decimal(rng.uniform(0.98, 1.02))).quantize(Decimal("0.01"))
            specs.append(RuleSpec(symbol, "price", None, op, level))
        elif kind < 0.5:
            specs.append(RuleSpec(symbol, "whale", None, Op.ABOVE, Decimal(rng.randrange(10_000, 2_000_000))))
        else:
            metric, span, suffix = rng.choice(WINDOW_METRICS)
            level = {"%": Decimal(rng.randrange(20, 80)), "x": Decimal(rng.randrange(1, 6))}.get(
                suffix, Decimal(rng.randrange(-50, 50)) if metric != "volume" else Decimal(rng.randrange(1, 100)))
            specs.append(RuleSpec(symbol, metric, span, op, level, suffix))
    return specs


def service_with(specs: list[RuleSpec], folder: Path) -> RuleService:
    """A RuleService over a fresh flowbot.db holding `specs` (inserted in bulk, loaded as after a restart)."""
    db = open_database(folder / "flowbot.db")
    chats = [Destination("telegram", str(1000 + n)) for n in range(2_000)]
    with db.conn:
        db.conn.executemany(
            "INSERT INTO rules (platform, chat_id, thread_id, symbol, metric, span, op, threshold, suffix, state,"
            " created_at, fired_count) VALUES ('telegram', ?, 0, ?, ?, ?, ?, ?, ?, 'active', 0, 0)",
            [(chats[i % len(chats)].chat_id, s.symbol, s.metric, s.span, str(s.op), str(s.threshold), s.suffix)
             for i, s in enumerate(specs)],
        )
    return RuleService(db, Outbox(db, 30), Subscriptions(db))


def window_events(symbols: list[str]) -> list[WindowClosed]:
    """The dump's windows for each symbol, interleaved by window as a live engine closes them."""
    folder = shared_data_dir()
    if folder is None:
        sys.exit("bench/rules.py needs the real recordings in ../shared/data (or $FLOWBOT_SHARED_DATA)")
    bus = InMemoryBus()
    closed = bus.subscribe(WindowClosed, maxsize=10_000_000)
    pipeline = FlowPipeline(pipeline_config(Settings(_env_file=None)), bus)
    for batch in read_replay(folder / DUMP):
        pipeline.on_columns(batch.columns)
    pipeline.finish()
    windows = [closed.get_nowait() for _ in range(closed.depth)]
    return [WindowClosed(replace(w.features, symbol=s)) for w in windows  # type: ignore[attr-defined]
            for s in symbols]


def windows_child(rules: int, symbol_count: int) -> dict[str, Any]:
    symbols = [f"S{n:03d}USDT" for n in range(symbol_count)]
    events = window_events(symbols)
    price = Decimal(events[0].features.close).scaleb(-8)
    out: dict[str, Any] = {"windows": len(events)}
    for label, count in (("none", 0), ("rules", rules)):
        with tempfile.TemporaryDirectory() as folder:
            service = service_with(random_specs(symbols, dict.fromkeys(symbols, price), count), Path(folder))
            fired = 0
            started = time.perf_counter()
            for event in events:
                fired += service.on_event(event)
            out[label] = (time.perf_counter() - started) / len(events) * 1000
            out[f"fired_{label}"] = fired
    return out


async def ingest(tape: list[dict[str, Any]], rules: int, symbol_count: int) -> float:
    """Seconds for the feed and pipeline to take the whole tape, with the rules judged on the same loop."""
    fake = FakeBinance(tape, batch=200)
    await fake.start()
    symbols = sorted({m["data"]["s"] for m in tape})
    settings = Settings(_env_file=None, SYMBOLS=",".join(symbols), BINANCE_WS_URL=fake.ws_url,
                        BINANCE_REST_URL=fake.rest_url, WS_STALL_TIMEOUT="30")
    bus = InMemoryBus()
    feed = make_feed(settings, bus)
    pipeline = FlowPipeline(pipeline_config(settings), bus)
    done = asyncio.Event()
    counted = 0
    judge_task = None
    folder = tempfile.TemporaryDirectory()
    if rules:
        first = {m["data"]["s"]: Decimal(m["data"]["p"]) for m in reversed(tape)}
        others = [f"S{n:03d}USDT" for n in range(symbol_count - len(symbols))]  # the recording's among 400
        prices = {**dict.fromkeys(others, Decimal(100)), **first}
        service = service_with(random_specs([*symbols, *others], prices, rules), Path(folder.name))
        events = bus.subscribe(WindowClosed, PriceTick, name="rules", maxsize=1_000_000)

        judge_task = asyncio.create_task(service.judge_from(events))

    def on_trades(symbol: str, trades: list) -> None:
        nonlocal counted
        pipeline.on_trades(symbol, trades)
        if bus.has_subscribers(PriceTick):
            tick = price_tick(symbol, trades)
            if tick is not None:
                bus.publish(tick)
        counted += len(trades)
        if counted >= len(tape):
            done.set()

    feed.on_trades = on_trades
    feed_task = asyncio.create_task(feed.run())
    while fake.open_connections() < 1:
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    fake.play()
    await done.wait()
    if judge_task is not None:
        while events.depth:  # the judge has caught up: its work is part of the run
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    if rules:
        print(json.dumps({"firings": sum(service.outbox.counts().values())}), file=sys.stderr)
    for task in (feed_task, judge_task):
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    await fake.close()
    folder.cleanup()
    return elapsed


def child(mode: str, args: argparse.Namespace) -> None:
    if mode == "windows":
        print(json.dumps(windows_child(args.rules, args.symbols)))
        return
    tape = build_tape(args.messages)
    seconds = asyncio.run(ingest(tape, args.rules if mode == "ingest-rules" else 0, args.symbols))
    print(json.dumps({"trades": len(tape), "seconds": seconds}))


def run_child(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.rules", "--child", mode, "--rules", str(args.rules), "--symbols",
         str(args.symbols), "--messages", str(args.messages)], check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=400)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["windows", "ingest-none", "ingest-rules"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    closes = run_child("windows", args)
    print(f"rules benchmark: {args.rules:,} rules over {args.symbols} symbols (windows), spans {', '.join(SPANS_MS)}")
    print(f"window close: {closes['none']:.3f} ms without rules, {closes['rules']:.3f} ms with them:"
          f" +{closes['rules'] - closes['none']:.3f} ms per close (target <= 20 ms) over {closes['windows']:,}"
          f" closes; {closes['fired_rules']:,} firings queued")
    rates: dict[str, list[float]] = {"ingest-none": [], "ingest-rules": []}
    for _ in range(args.repeat):
        for mode in rates:
            result = run_child(mode, args)
            rates[mode].append(result["trades"] / result["seconds"])
    none, ruled = (statistics.median(rates[m]) for m in rates)
    print(f"ingestion (feed + pipeline, median of {args.repeat}): {none:,.0f} trades/s without rules,"
          f" {ruled:,.0f} with {args.rules:,} rules over {args.symbols} symbols: {ruled / none - 1:+.1%}"
          f" (target within -5%)")


if __name__ == "__main__":
    main()
