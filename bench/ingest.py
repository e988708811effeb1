"""Ingestion benchmark: real aggTrades through the fake Binance, connection -> parsing -> validation -> bus.

Streams the spot aggTrade recording from ../shared/data, looped with shifted ids and times to at least
200,000 messages, from the fake server to (a) Flowbot's feed with a counting bus subscriber and (b) a
bare aiohttp client that only calls orjson.loads; each in its own child process (server and client in
one process, as in production), so that each peak RSS is its own. Prints trades per second, peak RSS
and the ratio.

    python -m bench.ingest [--messages 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp
import orjson

from core.events import TradeBatch
from core.settings import Settings
from engine.bus import InMemoryBus
from fakes.binance import FakeBinance
from fakes.recordings import load_ws_recording, loop_recording, shared_data_dir
from flowbot.feed_config import make_feed

RECORDING = "binance-spot-aggtrade-ws.jsonl"


def build_tape(messages: int) -> list[dict[str, Any]]:
    folder = shared_data_dir()
    if folder is None:
        sys.exit("bench/ingest.py needs the real recordings in ../shared/data (or $FLOWBOT_SHARED_DATA)")
    recording = load_ws_recording(folder / RECORDING)
    copies = -(-messages // len(recording))
    return loop_recording(recording, copies)


async def bare_client(tape: list[dict[str, Any]]) -> float:
    """Seconds for a bare aiohttp client (orjson.loads only) to receive the whole tape."""
    fake = FakeBinance(tape, batch=200)
    await fake.start()
    streams = sorted({m["stream"] for m in tape})
    received = 0
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{fake.ws_url}/stream?streams={'/'.join(streams)}", max_msg_size=0)
        started = time.perf_counter()
        fake.play()
        async for message in ws:
            orjson.loads(message.data)
            received += 1
            if received == len(tape):
                break
        elapsed = time.perf_counter() - started
        await ws.close()
    await fake.close()
    return elapsed


async def flowbot_feed(tape: list[dict[str, Any]]) -> float:
    """Seconds for Flowbot's feed to deliver the whole tape, validated and in order, to a bus subscriber."""
    fake = FakeBinance(tape, batch=200)
    await fake.start()
    symbols = sorted({m["data"]["s"] for m in tape})
    settings = Settings(
        _env_file=None, SYMBOLS=",".join(symbols), BINANCE_WS_URL=fake.ws_url, BINANCE_REST_URL=fake.rest_url,
        WS_STALL_TIMEOUT="30",
    )
    bus = InMemoryBus()
    subscription = bus.subscribe(TradeBatch, name="counter", maxsize=1_000_000)
    feed = make_feed(settings, bus)
    feed_task = asyncio.create_task(feed.run())
    while fake.open_connections() < 1:
        await asyncio.sleep(0.01)
    counted = 0
    started = time.perf_counter()
    fake.play()
    async for batch in subscription:
        counted += len(batch.trades)  # type: ignore[attr-defined]
        if counted >= len(tape):
            break
    elapsed = time.perf_counter() - started
    health = feed.health
    lost = sum(h.gaps_unfilled for h in health.symbols.values()) + sum(health.rejected.values())
    feed_task.cancel()
    await asyncio.gather(feed_task, return_exceptions=True)
    await fake.close()
    if counted != len(tape) or lost or bus.dropped["counter"]:
        raise SystemExit(f"feed delivered {counted} of {len(tape)} (lost/rejected {lost})")
    return elapsed


def child(mode: str, messages: int) -> None:
    tape = build_tape(messages)
    runner = bare_client if mode == "bare" else flowbot_feed
    elapsed = asyncio.run(runner(tape))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "messages": len(tape), "seconds": elapsed, "peak_rss_mb": peak_kb / 1024}))


def measure(mode: str, messages: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--child", mode, "--messages", str(messages)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["bare", "flowbot"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.messages)
        return
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "flowbot": []}
    for _ in range(args.repeat):
        for mode in results:
            results[mode].append(measure(mode, args.messages))
    rates = {m: statistics.median(r["messages"] / r["seconds"] for r in runs) for m, runs in results.items()}
    rss = {m: max(r["peak_rss_mb"] for r in runs) for m, runs in results.items()}
    messages = results["bare"][0]["messages"]
    print(f"ingestion benchmark: {messages:,} real aggTrade messages (looped), median of {args.repeat} runs")
    print(f"{'client':<34}{'trades/s':>12}{'peak RSS MB':>14}")
    print(f"{'bare aiohttp + orjson.loads':<34}{rates['bare']:>12,.0f}{rss['bare']:>14.1f}")
    print(f"{'flowbot feed (parse+validate+bus)':<34}{rates['flowbot']:>12,.0f}{rss['flowbot']:>14.1f}")
    print(f"flowbot / bare: {rates['flowbot'] / rates['bare']:.1%} (target >= 50%)")


if __name__ == "__main__":
    main()
