"""Ingestion benchmark: real aggTrades through the fake Binance, connection -> parsing -> validation -> bus.

Streams the spot aggTrade recording from ../shared/data, looped with shifted ids and times to at least
200,000 messages, from the fake server to (a) Flowbot's feed with a counting bus subscriber and (b) a
bare aiohttp client that only calls orjson.loads; each in its own child process (server and client in
one process, as in production), so that each peak RSS is its own. Prints trades per second, peak RSS
and the ratio.

Then the whole process: the fake Binance in this process pinned to the last core, and in a child pinned to the
first core (taskset) either a whole `flowbot run` (engine, analyst, console, dashboard; the console to a pipe this
process drains) or the bare client, each taking --whole-messages messages as fast as the fake sends them: seconds
from play to the last trade counted (the run's flowbot_trades_total on /metrics, polled every 0.1 s; the bare
client says when it has them all).

    python -m bench.ingest [--messages 200000] [--repeat 3] [--whole-messages 600000] [--no-feed] [--no-whole]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
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
STALL_S = 30.0  # the whole-process run counts as stalled when its trade count stays put this long


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


async def remote_bare_client(url: str, messages: int) -> None:
    """The bare client as a process of its own: says `ready` once connected and `done` once it has them all."""
    received = 0
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url, max_msg_size=0)
        print("ready", flush=True)
        async for message in ws:
            orjson.loads(message.data)
            received += 1
            if received == messages:
                break
        print("done", flush=True)
        await ws.close()


async def metrics_sum(session: aiohttp.ClientSession, url: str, name: str) -> float:
    """The sum of a metric's samples (over its labels) on /metrics."""
    async with session.get(url) as response:
        text = await response.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((f"{name}{{", f"{name} ")))


async def metrics_trades(session: aiohttp.ClientSession, url: str) -> int:
    return int(await metrics_sum(session, url, "flowbot_trades_total"))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(1 << 16):
        pass


JUDGE_METRIC = "flowbot_alert_rule_judge_seconds_total"


@dataclass(frozen=True)
class ProcessRun:
    """One whole-process run: wall-clock seconds from the first message played to the whole tape taken, and the
    child's CPU seconds (user + system) meanwhile, which other processes on its core do not inflate."""

    seconds: float
    cpu_s: float
    judge_s: float = 0.0  # of `flowbot run`: its flowbot_alert_rule_judge_seconds meanwhile


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def whole_process(tape: list[dict[str, Any]], mode: str, data_dir: str | None = None) -> ProcessRun:
    """A child pinned to core 0 (`flowbot run` or the bare client) taking the whole tape from the fake in this
    process; `flowbot run` on `data_dir` (a new one by default)."""
    fake = FakeBinance(tape, batch=200)
    await fake.start()
    symbols = sorted({m["data"]["s"] for m in tape})
    pinned = ["taskset", "-c", "0", sys.executable]
    if mode == "bare":
        url = f"{fake.ws_url}/stream?streams={'/'.join(sorted({m['stream'] for m in tape}))}"
        process = await asyncio.create_subprocess_exec(
            *pinned, "-m", "bench.ingest", "--child", "bare-remote", "--url", url, "--messages", str(len(tape)),
            stdout=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        await asyncio.wait_for(process.stdout.readline(), 60)  # ready
        cpu = cpu_seconds(process.pid)
        started = time.perf_counter()
        fake.play()
        await process.stdout.readline()  # done
        run = ProcessRun(time.perf_counter() - started, cpu_seconds(process.pid) - cpu)
        await process.wait()
        await fake.close()
        return run
    data_dir = data_dir or tempfile.mkdtemp(prefix="bench-ingest-")
    env = {**os.environ, "SYMBOLS": ",".join(symbols), "BINANCE_WS_URL": fake.ws_url,
           "BINANCE_REST_URL": fake.rest_url, "DATA_DIR": data_dir, "HEALTH_PORT": "0", "LOG_LEVEL": "WARNING",
           "WS_STALL_TIMEOUT": "60"}
    process = await asyncio.create_subprocess_exec(*pinned, "-m", "flowbot.cli", "run", env=env,
                                                   stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = ""
    while "/healthz" not in line:
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    metrics_url = line.rsplit(" ", 1)[-1].strip().rsplit("/", 1)[0] + "/metrics"
    drain = asyncio.create_task(_drain(process.stdout))
    streams = len({m["stream"] for m in tape})
    while sum(fake.streams_per_connection()) < streams:  # every stream subscribed (over however many connections)
        await asyncio.sleep(0.01)
    async with aiohttp.ClientSession() as session:
        judged = await metrics_sum(session, metrics_url, JUDGE_METRIC)
        cpu = cpu_seconds(process.pid)
        started = time.perf_counter()
        fake.play()
        counted, moved_at = 0, started
        while counted < len(tape):
            await asyncio.sleep(0.1)
            now, previous = time.perf_counter(), counted
            with contextlib.suppress(TimeoutError):  # a stalled process may not answer /metrics either
                counted = await asyncio.wait_for(metrics_trades(session, metrics_url), 5)
            moved_at = now if counted > previous else moved_at
            if now - moved_at > STALL_S:
                process.kill()
                raise SystemExit(f"flowbot run stalled: {counted:,} of {len(tape):,} trades counted, the fake sent "
                                 f"{fake.played:,}, nothing new for {STALL_S:.0f} s")
        run = ProcessRun(time.perf_counter() - started, cpu_seconds(process.pid) - cpu,
                         await metrics_sum(session, metrics_url, JUDGE_METRIC) - judged)
    process.send_signal(2)
    await asyncio.wait_for(process.wait(), 60)
    drain.cancel()
    await fake.close()
    return run


def on_one_clock(tape: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tape with its trade and event times on one clock, 1 ms apart in tape order, as Binance's streams share
    one: the looped recording joins sessions months apart, and one connection's watermark (its newest trade time)
    would otherwise make every trade of the older sessions late."""
    first = min(m["data"]["T"] for m in tape)
    return [{"stream": m["stream"], "data": {**m["data"], "T": first + i, "E": first + i}} for i, m in enumerate(tape)]


def whole_process_figures(messages: int, repeat: int) -> None:
    """`flowbot run` against the bare client, alternating, each pinned to core 0 with the fake on the last."""
    subprocess.run(["taskset", "-p", "-c", str((os.cpu_count() or 1) - 1), str(os.getpid())], check=True,
                   capture_output=True)
    tape = on_one_clock(build_tape(messages))
    seconds: dict[str, list[float]] = {"bare": [], "flowbot": []}
    for _ in range(repeat):
        for mode in seconds:
            seconds[mode].append(asyncio.run(whole_process(tape, mode)).seconds)
    rates = {m: statistics.median(len(tape) / s for s in runs) for m, runs in seconds.items()}
    shares = sorted(b / f for b, f in zip(seconds["bare"], seconds["flowbot"], strict=True))
    print(f"whole process: {len(tape):,} messages, each process pinned to core 0, the fake on the last core; "
          f"median of {repeat} runs")
    print(f"{'bare aiohttp + orjson.loads':<34}{rates['bare']:>12,.0f} trades/s")
    print(f"{'flowbot run (whole process)':<34}{rates['flowbot']:>12,.0f} trades/s")
    print(f"flowbot run / bare: {rates['flowbot'] / rates['bare']:.1%} (target >= 30%); per run "
          f"{', '.join(f'{x:.1%}' for x in shares)}")


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
    parser.add_argument("--whole-messages", type=int, default=600_000)
    parser.add_argument("--feed", action=argparse.BooleanOptionalAction, default=True, help="the feed alone")
    parser.add_argument("--whole", action=argparse.BooleanOptionalAction, default=True, help="the whole process")
    parser.add_argument("--child", choices=["bare", "flowbot", "bare-remote"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "bare-remote":
        asyncio.run(remote_bare_client(args.url, args.messages))
        return
    if args.child:
        child(args.child, args.messages)
        return
    if args.feed:
        feed_figures(args.messages, args.repeat)
    if args.whole:
        whole_process_figures(args.whole_messages, args.repeat)


def feed_figures(messages: int, repeat: int) -> None:
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "flowbot": []}
    for _ in range(repeat):
        for mode in results:
            results[mode].append(measure(mode, messages))
    rates = {m: statistics.median(r["messages"] / r["seconds"] for r in runs) for m, runs in results.items()}
    rss = {m: max(r["peak_rss_mb"] for r in runs) for m, runs in results.items()}
    messages = results["bare"][0]["messages"]
    print(f"ingestion benchmark: {messages:,} real aggTrade messages (looped), median of {repeat} runs")
    print(f"{'client':<34}{'trades/s':>12}{'peak RSS MB':>14}")
    print(f"{'bare aiohttp + orjson.loads':<34}{rates['bare']:>12,.0f}{rss['bare']:>14.1f}")
    print(f"{'flowbot feed (parse+validate+bus)':<34}{rates['flowbot']:>12,.0f}{rss['flowbot']:>14.1f}")
    print(f"flowbot / bare: {rates['flowbot'] / rates['bare']:.1%} (target >= 50%)")


if __name__ == "__main__":
    main()
