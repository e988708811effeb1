"""Overload benchmark: a live market above the process's capacity and back, into a whole `flowbot run`.

The spot aggTrade recording (../shared/data), looped with shifted ids, is stamped as a live market (trade time =
the wall-clock time the fake plays it): a calm phase (the baseline), a burst above what one core can process, then
calm again. The fake Binance runs in this process pinned to the last core, `flowbot run` in a child pinned to the
first (taskset), its console to /dev/null. /metrics is polled for the event-time lag and the trades released;
VmRSS/VmHWM come from /proc. Prints: the lag at calm (baseline) and at worst, the time to catch up after the burst,
trades stored against trades offered, windows written more than once (target 0), RSS at calm and at peak, and
the process's "behind the market" log lines.

    python -m bench.overload [--calm-rate 2000] [--burst-rate 120000] [--burst-s 6] [--calm-s 5] [--after-s 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow.parquet as pq

from fakes.binance import FakeBinance
from fakes.recordings import load_ws_recording, loop_recording, shared_data_dir

RECORDING = "binance-spot-aggtrade-ws.jsonl"
CAUGHT_UP_S = 2.0  # event-time lag under which the process counts as caught up
_METRIC = re.compile(r'^(flowbot_event_time_lag_seconds|flowbot_trades_total)\{[^}]*\} (\S+)$', re.MULTILINE)


def live_market(phases: list[tuple[float, float]], start_ms: int) -> list[dict[str, Any]]:
    """The recording looped to fill the phases ((messages per second, seconds), ...), each message stamped (E = T)
    at the wall-clock ms it is due."""
    folder = shared_data_dir()
    if folder is None:
        sys.exit("bench/overload.py needs the real recordings in ../shared/data (or $FLOWBOT_SHARED_DATA)")
    recording = load_ws_recording(folder / RECORDING)
    stamps: list[int] = []
    at = float(start_ms)
    for rate, seconds in phases:
        for _ in range(int(rate * seconds)):
            stamps.append(int(at))
            at += 1000 / rate
    tape = loop_recording(recording, -(-len(stamps) // len(recording)))[: len(stamps)]
    return [{**m, "data": {**m["data"], "E": ms, "T": ms}} for m, ms in zip(tape, stamps, strict=True)]


def pin(pid: int, core: int) -> None:
    subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=True, capture_output=True)


def proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """(largest event-time lag, trades released) from /metrics."""
    async with session.get(url) as response:
        text = await response.text()
    lags = [float(v) for name, v in _METRIC.findall(text) if name == "flowbot_event_time_lag_seconds"]
    trades = sum(float(v) for name, v in _METRIC.findall(text) if name == "flowbot_trades_total")
    return max(lags, default=float("nan")), trades


async def run(calm_rate: float, burst_rate: float, calm_s: float, burst_s: float, after_s: float) -> None:
    cores = os.cpu_count() or 1
    pin(os.getpid(), cores - 1)
    start_ms = int(time.time() * 1000) + 20_000  # the tape is built and the process started before it is due
    phases = [(calm_rate, calm_s), (burst_rate, burst_s), (calm_rate, after_s)]
    tape = live_market(phases, start_ms)
    burst_end = start_ms / 1000 + calm_s + burst_s
    fake = FakeBinance(tape, clock_lag=0.0, batch=200)
    await fake.start()
    symbols = sorted({m["data"]["s"] for m in tape})
    data_dir = Path(tempfile.mkdtemp(prefix="flowbot-overload-"))
    env = {**os.environ, "SYMBOLS": ",".join(symbols), "BINANCE_WS_URL": fake.ws_url,
           "BINANCE_REST_URL": fake.rest_url, "DATA_DIR": str(data_dir), "HEALTH_PORT": "0", "LOG_LEVEL": "WARNING",
           "WS_STALL_TIMEOUT": "60", "WINDOW_GRACE": "2"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowbot.cli", "run", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    pin(process.pid, 0)
    assert process.stdout is not None and process.stderr is not None
    line = ""
    while "/healthz" not in line:
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    metrics_url = line.rsplit(" ", 1)[-1].strip().rsplit("/", 1)[0] + "/metrics"
    drain = asyncio.create_task(_drain(process.stdout))
    while fake.open_connections() < 1:
        await asyncio.sleep(0.05)
    print(f"tape: {len(tape):,} messages, {len(symbols)} symbols; calm {calm_rate:,.0f}/s for {calm_s:.0f} s, "
          f"burst {burst_rate:,.0f}/s for {burst_s:.0f} s, calm {after_s:.0f} s; flowbot run on core 0, fake on "
          f"core {cores - 1}", flush=True)
    fake.play()
    samples: list[tuple[float, float, float, int]] = []  # wall time, lag, trades, VmRSS kB
    async with aiohttp.ClientSession() as session:
        while True:
            await asyncio.sleep(0.5)
            now = time.time()
            try:
                lag, trades = await asyncio.wait_for(scrape(session, metrics_url), 10)
            except TimeoutError:
                continue
            samples.append((now, lag, trades, proc_kb(process.pid, "VmRSS")))
            if trades >= len(tape) and now > start_ms / 1000 + calm_s + burst_s + after_s + 5 + 2 + 2:
                break
    peak_kb = proc_kb(process.pid, "VmHWM")
    process.send_signal(signal.SIGINT)
    stderr = (await asyncio.wait_for(process.stderr.read(), 30)).decode()
    await process.wait()
    drain.cancel()
    await fake.close()
    report(tape, samples, data_dir, peak_kb, stderr, start_ms / 1000 + 1, burst_end)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(1 << 16):
        pass


def report(tape: list[dict[str, Any]], samples: list[tuple[float, float, float, int]], data_dir: Path,
           peak_kb: int, stderr: str, calm_from: float, burst_end: float) -> None:
    samples = [s for s in samples if s[1] == s[1]]  # lag known (not NaN: no trade yet)
    if os.environ.get("OVERLOAD_TRACE"):
        for t, lag, trades, rss in samples:
            print(f"  {t - burst_end:+6.1f} s  lag {lag:6.2f} s  trades {trades:>9,.0f}  rss {rss / 1024:.0f} MB")
    calm = [lag for t, lag, _, _ in samples if calm_from + 2 <= t < calm_from + 4]
    calm_rss = max((rss for t, _, _, rss in samples if t < burst_end - 1), default=0)
    worst = max(samples, key=lambda s: s[1])
    caught = next((t for t, lag, _, _ in samples if t > worst[0] and lag < CAUGHT_UP_S), None)
    rows = pq.read_table(data_dir / "features").to_pylist()
    writes = Counter((str(r["symbol"]), r["window_start"]) for r in rows)
    stored = sum(r["trade_count"] for r in rows if r["revision"] == 0)
    released = samples[-1][2] if samples else 0
    print(f"event-time lag at calm (baseline): max {max(calm, default=float('nan')):.2f} s")
    print(f"event-time lag at worst: {worst[1]:.1f} s, {worst[0] - burst_end:+.1f} s after the burst ended")
    print("caught up (lag < 2 s): " + (f"{caught - burst_end:.1f} s after the burst ended" if caught else "never"))
    print(f"trades released {released:,.0f} and stored {stored:,} of {len(tape):,} offered; windows {len(writes):,}, "
          f"written more than once: {sum(1 for n in writes.values() if n > 1)} (target 0)")
    print(f"RSS at calm {calm_rss / 1024:.1f} MB, peak (VmHWM) {peak_kb / 1024:.1f} MB")
    for line in stderr.splitlines():
        if "market" in line:
            print(f"log: {line.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calm-rate", type=float, default=2_000)
    parser.add_argument("--burst-rate", type=float, default=120_000)
    parser.add_argument("--calm-s", type=float, default=5)
    parser.add_argument("--burst-s", type=float, default=6)
    parser.add_argument("--after-s", type=float, default=30)
    args = parser.parse_args()
    asyncio.run(run(args.calm_rate, args.burst_rate, args.calm_s, args.burst_s, args.after_s))


if __name__ == "__main__":
    main()
