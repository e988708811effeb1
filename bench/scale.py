"""Scale benchmark: `flowbot run` with SYMBOLS=ALL on a USD-M market of ~400 symbols at 20,000 messages/s.

The fake Binance (in this process) lists the symbols in exchangeInfo (a few more in BREAK, which must not be
followed), enforces USD-M's 200 streams per connection, and plays a live market made from the real USD-M
recording: each recorded symbol copied under synthetic names (X000BTCUSDT, ...), real prices, sizes and ids,
every message stamped with the time it is due to be sent. A whole `flowbot run` process (engine, analyst,
console, dashboard) follows it. Every half second the bench reads the process's trades counter (/metrics),
CPU time and RSS: event-time lag = now - the trade time of the newest trade processed (in tape order).
The same is measured with a quarter of the symbols at a quarter of the rate, so the cost per 100 symbols
is the difference between the two, per 100 symbols, measured in the same run.

    python -m bench.scale [--symbols 400] [--rate 20000] [--seconds 40] [--no-baseline] [--without-pandas]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from fakes.binance import FakeBinance
from fakes.recordings import load_ws_recording, loop_recording, shared_data_dir, stamped_live, synthetic_symbols

RECORDING = "binance-usdm-aggtrade-ws.jsonl"
LIQUIDATIONS = ("binance-usdm-forceorder-2025-12-27.jsonl", "binance-usdm-forceorder-2024-08-17.jsonl")
LIQUIDATIONS_PER_S = 5  # forced orders on !forceOrder@arr (Binance pushes at most one per symbol per second)
LEFT_OUT = {"CTKUSDT"}  # recorded twice, months apart: a real id gap the fake could not fill, in every copy
WARM_UP_S = 5.0  # lag samples start this long after the market does
START_MARGIN_S = 20.0  # the market starts this long after the tape is stamped (the process starts meanwhile)


def build_tape(symbols: int, rate: float, seconds: float) -> list[dict[str, Any]]:
    """`rate` x `seconds` messages over `symbols` synthetic symbols, not yet stamped."""
    folder = shared_data_dir()
    if folder is None:
        sys.exit("bench/scale.py needs the real recordings in ../shared/data (or $FLOWBOT_SHARED_DATA)")
    recording = [m for m in load_ws_recording(folder / RECORDING) if m["data"]["s"] not in LEFT_OUT]
    per_loop = len(synthetic_symbols(recording, symbols))
    wanted = int(rate * seconds)
    trades = synthetic_symbols(loop_recording(recording, -(-wanted // per_loop)), symbols)
    return with_futures(trades, rate, [m for name in LIQUIDATIONS for m in load_ws_recording(folder / name)])[:wanted]


def with_futures(trades: list[dict[str, Any]], rate: float, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trades with what a USD-M market also sends: each symbol's mark price about once a second (at its last
    trade price) and real liquidation orders (renamed to the market's symbols) on !forceOrder@arr."""
    names = sorted({m["data"]["s"] for m in trades})
    marks_every = max(1, int(rate // len(names)))
    orders_every = max(1, int(rate // LIQUIDATIONS_PER_S))
    last_price: dict[str, str] = {}
    out = []
    for i, message in enumerate(trades):
        out.append(message)
        last_price[message["data"]["s"]] = message["data"]["p"]
        if i % marks_every == 0:
            symbol = names[(i // marks_every) % len(names)]
            price = last_price.get(symbol, message["data"]["p"])
            out.append({"stream": f"{symbol.lower()}@markPrice@1s", "data": {
                "e": "markPriceUpdate", "E": 0, "s": symbol, "p": price, "i": price, "P": price, "r": "0.00010000",
                "T": 0}})
        if i % orders_every == 0:
            order = orders[(i // orders_every) % len(orders)]["data"]
            symbol = names[(i // orders_every) % len(names)]
            out.append({"stream": "!forceOrder@arr", "data": {**order, "o": {**order["o"], "s": symbol}}})
    return out


async def trades_processed(session: aiohttp.ClientSession, metrics_url: str) -> int:
    """The process's flowbot_trades_total, summed over symbols."""
    async with session.get(metrics_url) as response:
        text = await response.text()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("flowbot_trades_total{")))


def without_pandas() -> str:
    """A folder whose `pandas` fails to import, to put first on PYTHONPATH: the process then runs as a production
    install does (pandas is only in the dev extra, but pyarrow.dataset imports it whenever it is installed)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-no-pandas-"))
    (folder / "pandas").mkdir()
    (folder / "pandas" / "__init__.py").write_text('raise ImportError("not installed in production")\n')
    return str(folder)


async def run_case(symbols: int, rate: float, seconds: float, hide_pandas: bool = False) -> dict[str, Any]:
    tape = build_tape(symbols, rate, seconds)
    names = sorted({m["data"]["s"] for m in tape if "s" in m["data"]})
    start_ms = int((time.time() + START_MARGIN_S) * 1000)
    tape = stamped_live(tape, rate, start_ms)
    for message in tape:  # a liquidation's time is its order's; a mark price's T is the next funding time
        data = message["data"]
        if data["e"] == "forceOrder":
            data["o"] = {**data["o"], "T": data["E"]}
        elif data["e"] == "markPriceUpdate":
            data["T"] = (data["E"] // 28_800_000 + 1) * 28_800_000
    stamps = [m["data"]["T"] for m in tape if m["data"]["e"] != "forceOrder" and m["data"]["e"] != "markPriceUpdate"]
    listed = dict.fromkeys(names, "TRADING") | {f"Z{k}BREAKUSDT": "BREAK" for k in range(5)}
    fake = FakeBinance(tape, market="usdm", rate=rate, batch=100, listed=listed)
    await fake.start()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    env = {**os.environ, "MARKET": "usdm", "SYMBOLS": "ALL", "BINANCE_WS_URL": fake.ws_url,
           "BINANCE_REST_URL": fake.rest_url, "DATA_DIR": str(data_dir), "HEALTH_PORT": "0", "LOG_LEVEL": "WARNING",
           "WHALE_PERCENTILE": "0"}
    if hide_pandas:
        env["PYTHONPATH"] = os.pathsep.join([without_pandas(), *filter(None, [os.environ.get("PYTHONPATH")])])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowbot.cli", "run", env=env, stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    stdout = process.stdout
    health_url = ""
    while "/healthz" not in health_url:
        health_url = (await asyncio.wait_for(stdout.readline(), 60)).decode()
    metrics_url = health_url.rsplit(" ", 1)[-1].strip() + "metrics"
    console_lines = 0

    async def drain() -> None:
        nonlocal console_lines
        async for _ in stdout:
            console_lines += 1

    drainer = asyncio.create_task(drain())
    streams = 2 * symbols + 1  # aggTrade and markPrice@1s per symbol, and !forceOrder@arr (SYMBOLS=ALL)
    while sum(fake.streams_per_connection()) < streams:
        await asyncio.sleep(0.05)
    ps = psutil.Process(process.pid)
    await asyncio.sleep(max(0.0, start_ms / 1000 - time.time()))
    fake.play()
    cpu_start, wall_start = sum(ps.cpu_times()[:2]), time.monotonic()
    lags: list[float] = []  # now - the newest trade processed: how far behind the market the process is
    own_lags: list[float] = []  # the newest trade sent - the newest processed: the part that is the process's own
    rss: list[int] = []
    processed = 0
    caught_up_at = None
    async with aiohttp.ClientSession() as session:
        deadline = time.time() + seconds + 60
        while time.time() < deadline:
            await asyncio.sleep(0.5)
            processed = await trades_processed(session, metrics_url)
            now_ms = time.time() * 1000
            rss.append(ps.memory_info().rss)
            market_ms = min(now_ms, stamps[-1])  # after the tape ends, lag is counted against its last trade
            newest = stamps[min(processed, len(stamps)) - 1] if processed else start_ms
            sent = tape[fake.played - 1]["data"]["E"] if fake.played else start_ms
            if now_ms - start_ms >= WARM_UP_S * 1000 and now_ms <= stamps[-1]:
                lags.append(max(0.0, (market_ms - newest) / 1000))
                own_lags.append(max(0.0, (sent - newest) / 1000))
            if processed >= len(stamps):
                caught_up_at = now_ms
                break
        cpu = sum(ps.cpu_times()[:2]) - cpu_start
        wall = time.monotonic() - wall_start
    process.send_signal(2)
    await asyncio.wait_for(process.wait(), 30)
    drainer.cancel()
    stored = sorted(p.name.removeprefix("symbol=") for p in (data_dir / "features").glob("symbol=*"))
    result = {
        "symbols": symbols, "listed": len(listed), "rate": rate, "messages": len(tape), "processed": processed,
        "connections": fake.connections_accepted, "stored_symbols": len(stored), "followed_all": stored == names,
        "lag_p50": statistics.median(lags), "lag_p99": _percentile(lags, 0.99), "lag_max": max(lags),
        "own_lag_p50": statistics.median(own_lags), "own_lag_p99": _percentile(own_lags, 0.99),
        "caught_up_s": None if caught_up_at is None else (caught_up_at - stamps[-1]) / 1000,
        "cpu_share": cpu / wall, "rss_peak_mb": max(rss) / 2**20, "rss_end_mb": rss[-1] / 2**20,
        "console_lines": console_lines,
    }
    await fake.close()
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def show(case: dict[str, Any]) -> None:
    print(f"  {case['symbols']} symbols ({case['listed']} listed, {case['connections']} connections), "
          f"{case['rate']:,.0f} msg/s, {case['messages']:,} messages, {case['processed']:,} processed; "
          f"every symbol stored: {case['followed_all']} ({case['stored_symbols']})")
    caught = "not caught up" if case["caught_up_s"] is None else f"caught up {case['caught_up_s']:.1f} s after the end"
    print(f"  event-time lag p50 {case['lag_p50']:.2f} s, p99 {case['lag_p99']:.2f} s, max {case['lag_max']:.2f} s; "
          f"{caught}; behind what the fake had sent: p50 {case['own_lag_p50']:.2f} s, p99 {case['own_lag_p99']:.2f} s")
    print(f"  CPU {case['cpu_share']:.0%} of a core; RSS peak {case['rss_peak_mb']:.0f} MB, end "
          f"{case['rss_end_mb']:.0f} MB; console lines {case['console_lines']:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=400)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure a quarter of the symbols (for the cost per 100 symbols)")
    parser.add_argument("--without-pandas", action="store_true",
                        help="run flowbot as a production install, without the dev extra's pandas")
    args = parser.parse_args()
    full = asyncio.run(run_case(args.symbols, args.rate, args.seconds, args.without_pandas))
    if not args.baseline:
        show(full)
        return
    small_symbols = max(1, args.symbols // 4)
    small = asyncio.run(run_case(small_symbols, args.rate * small_symbols / args.symbols, args.seconds,
                                 args.without_pandas))
    print(f"scale benchmark: SYMBOLS=ALL (USD-M), synthetic symbols over the real recording, {args.seconds:.0f} s"
          f"{', flowbot without pandas (as installed in production)' if args.without_pandas else ''}")
    print(f"baseline: {small_symbols} symbols at the same rate per symbol")
    show(small)
    print(f"measured: {args.symbols} symbols")
    show(full)
    per_100 = 100 / (args.symbols - small_symbols)
    print(f"per 100 symbols (difference / {(args.symbols - small_symbols) / 100:g}): "
          f"CPU {(full['cpu_share'] - small['cpu_share']) * per_100:.0%} of a core, "
          f"RSS {(full['rss_peak_mb'] - small['rss_peak_mb']) * per_100:.0f} MB")
    ok = full["lag_p99"] < 2.0 and full["rss_peak_mb"] < 350 and full["followed_all"]
    print(f"target (lag p99 < 2 s, RSS < 350 MB, every symbol followed): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
