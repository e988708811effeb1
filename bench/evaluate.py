"""Evaluate benchmark: `flowbot evaluate` of 1,000,000 real aggTrades as a whole process, beside `flowbot replay`.

Loops ../shared/data/BTCUSDT-aggTrades-2026-01-01.csv (ids and times shifted per copy, as bench.replay does) into a
temporary CSV, then runs, each as its own `python -m flowbot.cli` process on a fresh DATA_DIR, `flowbot replay` and
`flowbot evaluate` (replay, outcomes, baseline, summary, report and charts) of that file, alternating, and compares
the medians of their wall-clock rates (target: evaluate at least 0.3 of replay's rate).

    python -m bench.evaluate [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.replay import SOURCE, build_csv

TARGET = 0.3


def whole_process(command: str, path: Path, scratch: Path) -> float:
    """Seconds of one `flowbot COMMAND path` process on an empty DATA_DIR."""
    with tempfile.TemporaryDirectory(dir=scratch) as data_dir:
        env = {**os.environ, "DATA_DIR": data_dir}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flowbot.cli", command, str(path)], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / SOURCE
        build_csv(args.rows, path)
        whole_process("replay", path, Path(tmp))  # warm-up: compiled kernels and font caches on disk
        whole_process("evaluate", path, Path(tmp))
        runs: dict[str, list[float]] = {"replay": [], "evaluate": []}
        for _ in range(args.repeat):
            for command in runs:
                runs[command].append(whole_process(command, path, Path(tmp)))
    rate = {command: args.rows / statistics.median(seconds) for command, seconds in runs.items()}
    share = rate["evaluate"] / rate["replay"]
    print(f"evaluate benchmark: {args.rows:,} real BTCUSDT aggTrades (looped), whole processes, median of "
          f"{args.repeat} runs each")
    for command, seconds in runs.items():
        print(f"flowbot {command:<9} {rate[command]:>12,.0f} trades/s  (runs: "
              f"{', '.join(f'{s:.2f} s' for s in seconds)})")
    print(f"evaluate / replay: {share:.2f} of replay's rate (target >= {TARGET})")


if __name__ == "__main__":
    main()
