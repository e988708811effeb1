"""Replay benchmark: 1,000,000 real aggTrades through the whole pipeline into Parquet, beside pyarrow's bare read.

Loops ../shared/data/BTCUSDT-aggTrades-2026-01-01.csv (ids and times shifted per copy) into a temporary
CSV, then measures, each in its own child process (so that each peak RSS is its own):
  - pyarrow alone reading the CSV with price and quantity as decimal128;
  - `flowbot replay` of the same file (read, validate, windows, context, signals, Parquet, SQLite), after a
    warm-up replay of its first rows that loads the compiled (numba) kernels.
It repeats the replay on files twice and four times as long, to show that peak memory does not grow with length
(it is bounded by two reader batches, the symbol's last hour of windows and the store's write buffer).

    python -m bench.replay [--rows 1000000] [--repeat 3]
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

import pyarrow as pa
import pyarrow.csv as pv

from fakes.recordings import shared_data_dir

SOURCE = "BTCUSDT-aggTrades-2026-01-01.csv"
WARM_UP_ROWS = 20_000
LENGTHS = (1, 2, 4)  # the replay's peak RSS is measured on files of these multiples of --rows
COLUMNS = ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker",
           "is_best_match"]


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
    table = pv.read_csv(
        path, read_options=pv.ReadOptions(column_names=COLUMNS),
        convert_options=pv.ConvertOptions(column_types={"price": pa.decimal128(20, 8),
                                                        "quantity": pa.decimal128(20, 8)}),
    )
    assert table.num_rows > 0
    return time.perf_counter() - started


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
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["pyarrow", "replay"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
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
