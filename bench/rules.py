"""Alert rules benchmark: 100,000 rules over 400 symbols, judged per symbol and measure with sorted thresholds.

(a) Window closes: the real BTCUSDT dump's windows, renamed to 400 symbols, judged by the bot's RuleService
    (SQLite outbox and all) with no rules, then with 100,000 rules; prints the added time per window close.
(b) Ingestion: the looped spot aggTrade recording from the fake Binance over a real WebSocket through the feed
    and the pipeline, as `flowbot run` does it, with 100,000 rules over 400 symbols (the recording's among them)
    judged on the same event loop from the PriceTicks and closed windows on the bus, against a run without rules:
    the same process with the rule service and no rule (as `flowbot run` is with none: its subscription makes the
    pipeline publish every closed window and a PriceTick per trade batch); also against the feed and pipeline
    alone (no rule service at all). Prints trades per second.
Each measurement runs in a child process of its own, alternated, median of --repeat; the ingestion runs also
say how much of their time the judge took (RuleService.busy_s), steadier than the rates on a shared machine.

Both measured for two mixes of rules (see random_specs): `near` (the worst case) and `spread`.

    python -m bench.rules [--rules 100000] [--symbols 400] [--messages 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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

from bench.ingest import RECORDING, build_tape
from bot.database import open_database
from bot.models import Destination
from bot.outbox import Outbox
from bot.rules.grammar import RuleSpec
from bot.rules.metrics import HOUR_MS, SPANS_MS, Op, measure_key
from bot.rules.series import SymbolSeries
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


MIXES = ("near", "spread")


def random_specs(symbols: list[str], prices: dict[str, Decimal], count: int, mix: str = "near",
                 tails: dict[tuple[str, str], tuple[Decimal, Decimal]] | None = None, seed: int = 7) -> list[RuleSpec]:
    """A mix of price, whale and window rules. `near`: every level close to the market (price within 2%, window
    levels around typical values), the worst case, where most rules are in play. `spread`: levels where users
    set alerts, at a distance: price 1-10% away on the side its operator watches, whales of 250k-5M, window
    metrics beyond the 2nd/98th percentile of their own values in the run (`tails`, per symbol and measure)."""
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        symbol = symbols[i % len(symbols)]
        op = rng.choice(list(Op))
        kind = rng.random()
        if mix == "spread":
            specs.append(_spread_spec(rng, symbol, op, kind, prices[symbol], tails or {}))
        elif kind < 0.4:
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


def _spread_spec(rng: random.Random, symbol: str, op: Op, kind: float, price: Decimal,
                 tails: dict[tuple[str, str], tuple[Decimal, Decimal]]) -> RuleSpec:
    up = op is Op.ABOVE or (op is Op.CROSSES and rng.random() < 0.5)  # the side of the market the level is on
    if kind < 0.4:
        away = Decimal(rng.uniform(0.01, 0.10))
        return RuleSpec(symbol, "price", None, op, (price * (1 + away if up else 1 - away)).quantize(Decimal("0.01")))
    if kind < 0.5:
        return RuleSpec(symbol, "whale", None, Op.ABOVE, Decimal(rng.randrange(250_000, 5_000_000)))
    metric, span, suffix = rng.choice(WINDOW_METRICS)
    low, high = tails.get((symbol, measure_key(metric, span, suffix)), (Decimal(-100), Decimal(100)))
    beyond = Decimal(rng.uniform(1.0, 1.5))
    level = high * beyond if up or metric == "volume" else (low * beyond if low < 0 else low / beyond)
    return RuleSpec(symbol, metric, span, op, level.quantize(Decimal("0.01")), suffix)


def measure_tails(windows: list[WindowClosed]) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """The 2nd and 98th percentile of each symbol's window measures over these windows."""
    series: dict[str, SymbolSeries] = {}
    values: dict[tuple[str, str], list[Decimal]] = {}
    measures = {measure_key(metric, span, suffix) for metric, span, suffix in WINDOW_METRICS}
    for event in windows:
        symbol = event.features.symbol
        one = series.get(symbol)
        if one is None:
            one = series[symbol] = SymbolSeries()
            for span in (*SPANS_MS.values(), HOUR_MS):
                one.want(span)
        one.add(event.features)
        for measure in measures:
            value = one.value(measure)
            if value is not None:
                values.setdefault((symbol, measure), []).append(value)
    out = {}
    for key, seen in values.items():
        seen.sort()
        out[key] = (seen[len(seen) * 2 // 100], seen[min(len(seen) - 1, len(seen) * 98 // 100)])
    return out


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


def replayed_windows(name: str) -> list[WindowClosed]:
    """The windows of a recording in ../shared/data, replayed through the pipeline with default settings."""
    folder = shared_data_dir()
    if folder is None:
        sys.exit("bench/rules.py needs the real recordings in ../shared/data (or $FLOWBOT_SHARED_DATA)")
    bus = InMemoryBus()
    closed = bus.subscribe(WindowClosed, maxsize=10_000_000)
    pipeline = FlowPipeline(pipeline_config(Settings(_env_file=None)), bus)
    for batch in read_replay(folder / name):
        pipeline.on_columns(batch.columns)
    pipeline.finish()
    return [closed.get_nowait() for _ in range(closed.depth)]


def window_events(symbols: list[str]) -> list[WindowClosed]:
    """The dump's windows for each symbol, interleaved by window as a live engine closes them."""
    windows = replayed_windows(DUMP)
    return [WindowClosed(replace(w.features, symbol=s)) for w in windows  # type: ignore[attr-defined]
            for s in symbols]


def windows_child(rules: int, symbol_count: int, mix: str) -> dict[str, Any]:
    symbols = [f"S{n:03d}USDT" for n in range(symbol_count)]
    events = window_events(symbols)
    price = Decimal(events[0].features.close).scaleb(-8)
    dump_tails = measure_tails(replayed_windows(DUMP))
    tails = {(symbol, measure): tail for (_, measure), tail in dump_tails.items() for symbol in symbols}
    out: dict[str, Any] = {"windows": len(events)}
    for label, count in (("none", 0), ("rules", rules)):
        with tempfile.TemporaryDirectory() as folder:
            specs = random_specs(symbols, dict.fromkeys(symbols, price), count, mix, tails)
            service = service_with(specs, Path(folder))
            fired = 0
            started = time.perf_counter()
            for event in events:
                fired += service.on_event(event)
            out[label] = (time.perf_counter() - started) / len(events) * 1000
            out[f"fired_{label}"] = fired
    return out


async def ingest(tape: list[dict[str, Any]], rules: int | None, symbol_count: int, mix: str) -> float:
    """Seconds for the feed and pipeline to take the whole tape, with the rules judged on the same loop (None: no
    rule service at all)."""
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
    if rules is not None:
        first = {m["data"]["s"]: Decimal(m["data"]["p"]) for m in reversed(tape)}
        others = [f"S{n:03d}USDT" for n in range(symbol_count - len(symbols))]  # the recording's among 400
        prices = {**dict.fromkeys(others, Decimal(100)), **first}
        specs = random_specs([*symbols, *others], prices, rules, mix, measure_tails(replayed_windows(RECORDING)))
        service = service_with(specs, Path(folder.name))
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
    gc.freeze()  # as `flowbot run` does once started: the rules loaded at start are not scanned by every collection
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
    if rules is not None:
        print(json.dumps({"firings": sum(service.outbox.counts().values()), "judge_s": service.busy_s}),
              file=sys.stderr)
    for task in (feed_task, judge_task):
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    await fake.close()
    folder.cleanup()
    return elapsed


def child(mode: str, args: argparse.Namespace) -> None:
    if mode == "windows":
        print(json.dumps(windows_child(args.rules, args.symbols, args.mix)))
        return
    tape = build_tape(args.messages)
    rules = {"ingest-rules": args.rules, "ingest-none": 0, "ingest-bare": None}[mode]
    seconds = asyncio.run(ingest(tape, rules, args.symbols, args.mix))
    print(json.dumps({"trades": len(tape), "seconds": seconds}))


def run_child(mode: str, args: argparse.Namespace, mix: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.rules", "--child", mode, "--rules", str(args.rules), "--symbols",
         str(args.symbols), "--messages", str(args.messages), "--mix", mix], check=True, capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    judged = [json.loads(line) for line in out.stderr.splitlines() if line.startswith('{"firings"')]
    return {**result, **(judged[-1] if judged else {"firings": 0, "judge_s": 0.0})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=400)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mix", choices=MIXES, default="near", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["windows", "ingest-bare", "ingest-none", "ingest-rules"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    print(f"rules benchmark: {args.rules:,} rules over {args.symbols} symbols, spans {', '.join(SPANS_MS)}")
    for mix in MIXES:
        closes = run_child("windows", args, mix)
        print(f"[{mix}] window close: {closes['none']:.3f} ms without rules, {closes['rules']:.3f} ms with them:"
              f" +{closes['rules'] - closes['none']:.3f} ms per close (target <= 20 ms) over {closes['windows']:,}"
              f" closes; {closes['fired_rules']:,} firings queued")
    rates: dict[tuple[str, str], list[float]] = {}
    firings: dict[str, int] = {}
    busy: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for mode, mix in (("ingest-bare", "near"), ("ingest-none", "near"), *(("ingest-rules", mix) for mix in MIXES)):
            result = run_child(mode, args, mix)
            rates.setdefault((mode, mix), []).append(result["trades"] / result["seconds"])
            if mode == "ingest-rules":
                firings[mix] = result["firings"]
                busy.setdefault(mix, []).append(result["judge_s"] / result["seconds"])
    none = statistics.median(rates[("ingest-none", "near")])
    bare = statistics.median(rates[("ingest-bare", "near")])
    print(f"ingestion without rules: {none:,.0f} trades/s with the rule service and no rule (as `flowbot run`),"
          f" {bare:,.0f} with no rule service at all ({none / bare - 1:+.1%})")
    for mix in MIXES:
        ruled = statistics.median(rates[("ingest-rules", mix)])
        print(f"[{mix}] ingestion (feed + pipeline, median of {args.repeat}): {none:,.0f} trades/s without rules,"
              f" {ruled:,.0f} with {args.rules:,} rules over {args.symbols} symbols: {ruled / none - 1:+.1%}"
              f" (target within -5%; {ruled / bare - 1:+.1%} against no rule service); {firings[mix]:,} firings"
              f" queued; judging took"
              f" {statistics.median(busy[mix]):.1%} of the run's time")


if __name__ == "__main__":
    main()
