"""Alert rules benchmark: 100,000 rules over 400 symbols, judged per symbol and measure with sorted thresholds.

(a) Window closes: the real BTCUSDT dump's windows, renamed to 400 symbols, judged by the bot's RuleService
    (SQLite outbox and all) with no rules, then with 100,000 rules; prints the added time per window close.
(b) Ingestion, whole processes: `flowbot run` (engine, bots, rules, dashboard; pinned to core 0) takes the looped spot
    aggTrade recording (trade times on one clock, 1 ms apart, as bench.ingest plays it) from the fake Binance in
    this process (on the last core), on a DATA_DIR with no rule, then with 100,000 rules over 400 symbols (the
    recording's among them) stored before it starts; it loads them and judges them on its loop from the closed
    windows and PriceTicks on its bus. Prints trades per second of wall-clock time and of the process's CPU time
    (steadier where other processes share its core), alternated, median of --repeat.

Both measured for two mixes of rules (see random_specs): `near` (the worst case) and `spread`.

    python -m bench.rules [--rules 100000] [--symbols 400] [--messages 600000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlite_utils

from bench.ingest import RECORDING, ProcessRun, build_tape, on_one_clock, whole_process
from bot.database import open_database
from bot.models import Destination
from bot.outbox import Outbox
from bot.rules.grammar import RuleSpec
from bot.rules.metrics import HOUR_MS, SPANS_MS, Op, measure_key
from bot.rules.series import SymbolSeries
from bot.rules.service import RuleService
from bot.subscriptions import Subscriptions
from core.events import WindowClosed
from core.settings import Settings
from engine.analysis.pipeline import FlowPipeline
from engine.bus import InMemoryBus
from engine.replay.readers import read_replay
from fakes.recordings import shared_data_dir
from flowbot.analysis_config import pipeline_config

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


def store_rules(specs: list[RuleSpec], folder: Path) -> sqlite_utils.Database:
    """A fresh folder/flowbot.db holding `specs`, inserted in bulk (for chats of 2,000 users)."""
    db = open_database(folder / "flowbot.db")
    chats = [Destination("telegram", str(1000 + n)) for n in range(2_000)]
    with db.conn:
        db.conn.executemany(
            "INSERT INTO rules (platform, chat_id, thread_id, symbol, metric, span, op, threshold, suffix, state,"
            " created_at, fired_count) VALUES ('telegram', ?, 0, ?, ?, ?, ?, ?, ?, 'active', 0, 0)",
            [(chats[i % len(chats)].chat_id, s.symbol, s.metric, s.span, str(s.op), str(s.threshold), s.suffix)
             for i, s in enumerate(specs)],
        )
    return db


def service_with(specs: list[RuleSpec], folder: Path) -> RuleService:
    """A RuleService over a fresh flowbot.db holding `specs` (loaded as after a restart)."""
    db = store_rules(specs, folder)
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


def rules_firings(folder: Path) -> int:
    with sqlite3.connect(folder / "flowbot.db") as db:
        return db.execute("SELECT count(*) FROM outbox WHERE kind = 'rule'").fetchone()[0]


def whole_process_rates(args: argparse.Namespace) -> None:
    """`flowbot run` on the fake market (as bench.ingest's whole process: pinned to core 0, the fake in this process
    on the last core), on a DATA_DIR with no rule, then with each mix's rules; alternated, median of --repeat."""
    subprocess.run(["taskset", "-p", "-c", str((os.cpu_count() or 1) - 1), str(os.getpid())], check=True,
                   capture_output=True)
    tape = on_one_clock(build_tape(args.messages))  # as bench.ingest: one clock, so no trade arrives late
    symbols = sorted({m["data"]["s"] for m in tape})
    first = {m["data"]["s"]: Decimal(m["data"]["p"]) for m in reversed(tape)}
    others = [f"S{n:03d}USDT" for n in range(args.symbols - len(symbols))]  # the recording's symbols among 400
    prices = {**dict.fromkeys(others, Decimal(100)), **first}
    tails = measure_tails(replayed_windows(RECORDING))
    specs = {mix: random_specs([*symbols, *others], prices, args.rules, mix, tails) for mix in MIXES}
    runs: dict[str, list[ProcessRun]] = {label: [] for label in ("none", *MIXES)}
    firings: dict[str, int] = {}
    for _ in range(args.repeat):
        for label, done in runs.items():
            with tempfile.TemporaryDirectory(prefix="bench-rules-") as data_dir:
                store_rules(specs.get(label, []), Path(data_dir)).close()
                done.append(asyncio.run(whole_process(tape, "flowbot", data_dir)))
                firings[label] = rules_firings(Path(data_dir))
    rate = {label: len(tape) / statistics.median(r.seconds for r in done) for label, done in runs.items()}
    cpu_rate = {label: len(tape) / statistics.median(r.cpu_s for r in done) for label, done in runs.items()}
    print(f"ingestion, whole `flowbot run` processes: {len(tape):,} messages, median of {args.repeat} runs;"
          f" without rules {rate['none']:,.0f} trades/s, {cpu_rate['none']:,.0f} per CPU second"
          f" (runs: {_runs(runs['none'])})")
    for mix in MIXES:
        judging = statistics.median(r.judge_s / r.cpu_s for r in runs[mix])
        print(f"[{mix}] judging the rules took {judging:.1%} of the process's CPU time (median; its"
              f" flowbot_alert_rule_judge_seconds against the CPU seconds of each run)")
        paired = statistics.median(none.cpu_s / ruled.cpu_s for none, ruled in zip(runs["none"], runs[mix],
                                                                                    strict=True)) - 1
        print(f"[{mix}] paired by round (each with the run without rules just before it, so a slow spell of the"
              f" machine weighs on both): {paired:+.1%} per CPU second (median of the rounds)")
        print(f"[{mix}] with {args.rules:,} rules over {args.symbols} symbols: {rate[mix]:,.0f} trades/s,"
              f" {rate[mix] / rate['none'] - 1:+.1%} (target within -5%); per CPU second {cpu_rate[mix]:,.0f},"
              f" {cpu_rate[mix] / cpu_rate['none'] - 1:+.1%}; {firings[mix]:,} firings queued"
              f" (runs: {_runs(runs[mix])})")


def _runs(runs: list[ProcessRun]) -> str:
    """Each run's wall-clock and CPU seconds."""
    return ", ".join(f"{r.seconds:.2f} s ({r.cpu_s:.2f} s CPU)" for r in runs)


def run_child(args: argparse.Namespace, mix: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.rules", "--child", "windows", "--rules", str(args.rules), "--symbols",
         str(args.symbols), "--mix", mix], check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=400)
    parser.add_argument("--messages", type=int, default=600_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mix", choices=MIXES, default="near", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["windows"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(windows_child(args.rules, args.symbols, args.mix)))
        return
    print(f"rules benchmark: {args.rules:,} rules over {args.symbols} symbols, spans {', '.join(SPANS_MS)}")
    for mix in MIXES:
        closes = run_child(args, mix)
        print(f"[{mix}] window close: {closes['none']:.3f} ms without rules, {closes['rules']:.3f} ms with them:"
              f" +{closes['rules'] - closes['none']:.3f} ms per close (target <= 20 ms) over {closes['windows']:,}"
              f" closes; {closes['fired_rules']:,} firings queued")
    whole_process_rates(args)


if __name__ == "__main__":
    main()
