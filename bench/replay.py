"""Replay benchmark: 1,000,000 real aggTrades through the whole pipeline into Parquet, beside pyarrow's bare read.

Loops ../shared/data/BTCUSDT-aggTrades-2026-01-01.csv (ids and times shifted per copy) into a temporary
CSV, then measures, each in its own child process (so that each peak RSS is its own):
  - pyarrow alone reading the CSV with price and quantity as decimal128;
  - `flowbot replay` of the same file (read, validate, windows, context, signals, Parquet, SQLite), after a
    warm-up replay of its first rows that loads the compiled (numba) kernels.
It repeats the replay on files twice and four times as long, to show that peak memory does not grow with length
(it is bounded by two reader batches, the symbol's last hour of windows and the store's write buffer).

With --whole-process it compares whole processes instead, start-up included, on --rows (default there 3,000,000):
`flowbot replay FILE` (its own `python -m flowbot.cli` process on a fresh DATA_DIR, after a warm-up run that
leaves the compiled kernels cached on disk) against `python -m bench.pyarrow_read FILE`, a process that imports
pyarrow and reads the same CSV with decimal128 price and quantity; alternated, median of --repeat (target: at
least 0.5 of pyarrow's rate).

    python -m bench.replay [--rows 1000000] [--repeat 3]
    python -m bench.replay --whole-process [--rows 3000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.pyarrow_read import read_with_pyarrow
from fakes.recordings import shared_data_dir

SOURCE = "BTCUSDT-aggTrades-2026-01-01.csv"
WARM_UP_ROWS = 20_000
LENGTHS = (1, 2, 4)  # the replay's peak RSS is measured on files of these multiples of --rows


def build_csv(rows: int, target: Path) -> None:
    """The real dump looped to `rows` rows; ids and times continue where the previous copy ended."""
    folder = shared_data_dir()
    if folder is None:
        sys.exit("bench/replay.py needs the real recordings in ../shared/data (or $FLOWBOT_SHARED_DATA)")
    lines = [line.split(",") for line in (folder / SOURCE).read_text().splitlines() if line]
    span_a = int(lines[-1][0]) - int(lines[0][0]) + 1
    span_t = int(lines[-1][4]) - int(lines[0][3]) + 1
    span_time = int(lines[-1][5]) - int(lines[0][5]) + 1
    with open(target, "w") as out:
        written, copy = 0, 0
        while written < rows:
            buffer = io.StringIO()
            for r in lines[: rows - written]:
                buffer.write(
                    f"{int(r[0]) + copy * span_a},{r[1]},{r[2]},{int(r[3]) + copy * span_t},"
                    f"{int(r[4]) + copy * span_t},{int(r[5]) + copy * span_time},{r[6]},{r[7]}\n"
                )
            out.write(buffer.getvalue())
            written += min(len(lines), rows - (written))
            copy += 1


def child_pyarrow(path: Path) -> float:
    started = time.perf_counter()
    table = read_with_pyarrow(path)
    assert table.num_rows > 0
    return time.perf_counter() - started


def whole_process(mode: str, path: Path, scratch: Path) -> float:
    """Wall-clock seconds of one whole process: `flowbot replay path` on an empty DATA_DIR, or pyarrow's read."""
    with tempfile.TemporaryDirectory(dir=scratch) as data_dir:
        command = ([sys.executable, "-m", "flowbot.cli", "replay", str(path)] if mode == "replay" else
                   [sys.executable, "-m", "bench.pyarrow_read", str(path)])
        started = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "DATA_DIR": data_dir}, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return time.perf_counter() - started


def whole_process_figures(rows: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / SOURCE
        build_csv(rows, path)
        whole_process("replay", path, Path(tmp))  # warm-up: the compiled kernels cached on disk
        runs: dict[str, list[float]] = {"pyarrow": [], "replay": []}
        for _ in range(repeat):
            for mode in runs:
                runs[mode].append(whole_process(mode, path, Path(tmp)))
    rate = {mode: rows / statistics.median(seconds) for mode, seconds in runs.items()}
    print(f"replay benchmark, whole processes: {rows:,} real BTCUSDT aggTrades (looped), median of {repeat} runs")
    for mode, label in (("pyarrow", "pyarrow read_csv (decimal128) process"),
                        ("replay", "flowbot replay -> Parquet + signals")):
        print(f"{label:<42}{rate[mode]:>12,.0f} rows/s  (runs: {', '.join(f'{s:.2f} s' for s in runs[mode])})")
    shares = sorted(a / r for a, r in zip(runs["pyarrow"], runs["replay"], strict=True))
    print(f"replay / pyarrow, whole processes: {rate['replay'] / rate['pyarrow']:.2f} of the medians (target >= 0.5);"
          f" per run {', '.join(f'{x:.2f}' for x in shares)}")


def child_replay(path: Path) -> float:
    """Seconds of the replay of `path`, after a warm-up replay of its first rows (loads the compiled kernels)."""
    from core.settings import Settings
    from flowbot.replay import replay

    def timed(csv: Path) -> float:
        with tempfile.TemporaryDirectory() as data_dir, open(os.devnull, "w") as out:  # printed, not kept in memory
            settings = Settings(_env_file=None, DATA_DIR=data_dir)
            started = time.perf_counter()
            report = asyncio.run(replay([csv], settings, out=out))
            elapsed = time.perf_counter() - started
        if report.problems or report.unreadable:
            sys.exit(f"replay skipped rows: {report.problems[:3]} {report.unreadable}")
        return elapsed

    with tempfile.TemporaryDirectory() as tmp:
        head = Path(tmp) / path.name
        with open(path) as f:
            head.write_text("".join(itertools.islice(f, WARM_UP_ROWS)))
        timed(head)
    return timed(path)


def measure(mode: str, path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.replay", "--child", mode, "--csv", str(path)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--whole-process", action="store_true", help="whole processes, start-up included")
    parser.add_argument("--child", choices=["pyarrow", "replay"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.whole_process:
        whole_process_figures(args.rows or 3_000_000, args.repeat or 5)
        return
    args.rows, args.repeat = args.rows or 1_000_000, args.repeat or 3
    if args.child:
        seconds = child_pyarrow(args.csv) if args.child == "pyarrow" else child_replay(args.csv)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"seconds": seconds, "peak_rss_mb": peak}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: Path(tmp) / f"x{k}" / SOURCE for k in LENGTHS}
        for k, path in paths.items():
            path.parent.mkdir()
            build_csv(args.rows * k, path)
        runs = {"pyarrow": [], "replay": []}
        for _ in range(args.repeat):
            for mode in runs:
                runs[mode].append(measure(mode, paths[1]))
        longer = {k: measure("replay", paths[k]) for k in LENGTHS[1:]}
    rate = {m: args.rows / statistics.median(r["seconds"] for r in v) for m, v in runs.items()}
    rss = {m: max(r["peak_rss_mb"] for r in v) for m, v in runs.items()}
    shares = sorted(a["seconds"] / r["seconds"] for a, r in zip(runs["pyarrow"], runs["replay"], strict=True))
    peaks = {1: rss["replay"]} | {k: r["peak_rss_mb"] for k, r in longer.items()}
    print(f"replay benchmark: {args.rows:,} real BTCUSDT aggTrades (looped), median of {args.repeat} runs")
    print(f"{'':<38}{'trades/s':>12}{'peak RSS MB':>14}")
    print(f"{'pyarrow read_csv (decimal128) alone':<38}{rate['pyarrow']:>12,.0f}{rss['pyarrow']:>14.1f}")
    print(f"{'flowbot replay -> Parquet + signals':<38}{rate['replay']:>12,.0f}{rss['replay']:>14.1f}")
    print(f"replay / pyarrow: {rate['replay'] / rate['pyarrow']:.1%} of the medians (target >= 50%); "
          f"per run {', '.join(f'{x:.1%}' for x in shares)}")
    print("peak RSS of the replay: " + "; ".join(f"{args.rows * k:,} rows {mb:.1f} MB" for k, mb in peaks.items()))


if __name__ == "__main__":
    main()
