"""`flowbot evaluate` on the real recordings: every ret_H against the raw files in exact Decimal, the summary
against the outcomes, the baseline against every window with trades, the report and its charts."""

from __future__ import annotations

import asyncio
import bisect
import csv
import io
import json
import os
import statistics
import subprocess
import sys
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from rich.console import Console

from core.settings import Settings
from flowbot.cli import main
from flowbot.horizons import parse_horizons
from storage.signal_store import SignalStore

HORIZONS = "1m,5m,15m,1h"
WINDOW_MS = 5_000
Tape = tuple[list[int], list[int], list[Decimal]]  # times (ms), ids, prices of one symbol, in id order


def raw_csv_dump(path: Path) -> dict[str, Tape]:
    """A spot aggTrades dump from 2025 on: transact_time in microseconds."""
    rows = sorted((int(r[0]), int(r[5]) // 1000, Decimal(r[1])) for r in csv.reader(path.open()) if r)
    return {"BTCUSDT": ([r[1] for r in rows], [r[0] for r in rows], [r[2] for r in rows])}


def raw_rest(path: Path, symbol: str) -> dict[str, Tape]:
    rows = sorted({(t["a"], t["T"], Decimal(t["p"])) for t in json.loads(path.read_text())})
    return {symbol: ([r[1] for r in rows], [r[0] for r in rows], [r[2] for r in rows])}


def raw_ws(path: Path) -> dict[str, Tape]:
    by_symbol: dict[str, set[tuple[int, int, Decimal]]] = {}
    for line in path.read_text().splitlines():
        data = json.loads(line)["data"]
        by_symbol.setdefault(data["s"], set()).add((data["a"], data["T"], Decimal(data["p"])))
    tapes = {}
    for symbol, found in by_symbol.items():
        rows = sorted(found, key=lambda r: (r[1], r[0]))
        tapes[symbol] = ([r[1] for r in rows], [r[0] for r in rows], [r[2] for r in rows])
    return tapes


def expected_ret(tape: Tape, window_end: int, horizon_ms: int) -> Decimal | None:
    """The contract, trade by trade: price(t) = last trade with time < t; empty if the data ends or ids are missing."""
    times, ids, prices = tape
    base = bisect.bisect_left(times, window_end) - 1
    later = bisect.bisect_left(times, window_end + horizon_ms) - 1
    if times[-1] < window_end + horizon_ms or ids[later] - ids[base] != later - base:
        return None
    with localcontext() as ctx:
        ctx.prec = 60
        return prices[later] / prices[base] - 1


def run_evaluate(paths: list[Path], data_dir: Path, symbol: str | None = None) -> Path:
    from flowbot.evaluate import evaluate

    settings = Settings(_env_file=None, DATA_DIR=str(data_dir), ALERT_BUDGET_PER_DAY="0")  # every signal measured
    asyncio.run(evaluate(paths, settings, parse_horizons(HORIZONS), symbol=symbol,
                         console=Console(file=io.StringIO())))
    return data_dir / "evaluation"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


MEASURED = {"btc-dump": 20, "xrpeth-rest": 1500, "usdm-ws": 2}  # returns the recording has room for, at least
BTC, XRP, USDM = "BTCUSDT-aggTrades-2026-01-01.csv", "XRPETH-rest-aggTrades.json", "binance-usdm-aggtrade-ws.jsonl"
CASES = {
    "btc-dump": ([BTC], None, lambda d: raw_csv_dump(d / BTC)),
    "xrpeth-rest": ([XRP], "XRPETH", lambda d: raw_rest(d / XRP, "XRPETH")),
    "usdm-ws": ([USDM], None, lambda d: raw_ws(d / USDM)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_ret_equals_decimal_from_the_raw_file(case: str, shared_data: Path, tmp_path: Path) -> None:
    files, symbol, raw = CASES[case]
    out = run_evaluate([shared_data / f for f in files], tmp_path, symbol)
    tapes = raw(shared_data)
    rows = read_rows(out / "outcomes.csv")
    store = SignalStore(tmp_path / "flowbot.db")
    assert {r["signal_id"] for r in rows} == {s.id for s in store.recent(limit=100_000)}
    store.close()
    assert rows, "the recording gives signals"
    horizons = parse_horizons(HORIZONS)
    checked = 0
    for row in rows:
        tape = tapes[row["symbol"]]
        window_end = int(row["window_end"])
        base = tape[2][bisect.bisect_left(tape[0], window_end) - 1]
        assert Decimal(row["price"]) == base
        for label, ms in horizons.items():
            expected = expected_ret(tape, window_end, ms)
            if expected is None:
                assert row[f"ret_{label}"] == "" and row[f"signed_ret_{label}"] == ""
                continue
            assert float(row[f"ret_{label}"]) == float(expected), (row["signal_id"], label)
            sign = {"buy": 1, "sell": -1}.get(row["direction"])
            if sign is None:
                assert row[f"signed_ret_{label}"] == ""
            else:
                assert float(row[f"signed_ret_{label}"]) == float(sign * expected)
            checked += 1
    assert checked >= MEASURED[case]


def test_summary_agrees_with_outcomes_and_the_baseline_with_every_window(shared_data: Path, tmp_path: Path) -> None:
    out = run_evaluate([shared_data / "XRPETH-rest-aggTrades.json"], tmp_path, "XRPETH")
    outcomes, summary = read_rows(out / "outcomes.csv"), read_rows(out / "summary.csv")
    tape = raw_rest(shared_data / "XRPETH-rest-aggTrades.json", "XRPETH")["XRPETH"]
    window_ends = sorted({(t // WINDOW_MS + 1) * WINDOW_MS for t in tape[0]})
    random_15m = [r for r in (expected_ret(tape, end, 900_000) for end in window_ends) if r is not None]
    assert sum(int(r["signals"]) for r in summary) == len(outcomes)
    for group in summary:
        rows = [r for r in outcomes if (r["symbol"], r["kind"], r["direction"]) ==
                (group["symbol"], group["kind"], group["direction"])]
        assert int(group["signals"]) == len(rows)
        signed = [float(r["signed_ret_15m"]) for r in rows if r["signed_ret_15m"]]
        sign = {"buy": 1, "sell": -1}[group["direction"]]
        assert float(group["hit_rate_15m"]) == pytest.approx(sum(v > 0 for v in signed) / len(signed))
        assert float(group["mean_signed_ret_15m"]) == pytest.approx(statistics.fmean(signed), rel=1e-9)
        assert float(group["median_signed_ret_15m"]) == pytest.approx(statistics.median(signed), rel=1e-9)
        assert float(group["baseline_hit_rate_15m"]) == pytest.approx(
            sum(sign * r > 0 for r in random_15m) / len(random_15m))
        baseline_mean = float(sum(sign * r for r in random_15m) / len(random_15m))
        assert float(group["baseline_mean_signed_ret_15m"]) == pytest.approx(baseline_mean, rel=1e-9, abs=1e-15)
        assert float(group["edge_15m"]) == pytest.approx(statistics.fmean(signed) - baseline_mean, rel=1e-9, abs=1e-15)


def test_the_command_writes_the_report_with_its_charts(shared_data: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ALERT_BUDGET_PER_DAY", "0")
    out = tmp_path / "report"
    assert main(["evaluate", str(shared_data / "BTCUSDT-aggTrades-2026-01-01.csv"), "--horizons", "1m,5m",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "imbalance" in printed and "hit 1m" in printed
    header = next(csv.reader((out / "summary.csv").open()))
    assert header[:4] == ["symbol", "kind", "direction", "signals"] and "edge_5m" in header and "edge_15m" not in header
    page = (out / "report.html").read_text()
    for chart in ("cumulative_signed_return.png", "hit_rate_by_severity.png", "signed_return_distribution.png"):
        assert f'src="{chart}"' in page
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table" in page and "BTCUSDT" in page
    assert main(["evaluate", str(tmp_path / "absent.csv")]) == 2


def test_without_pandas_the_command_says_which_extra_to_install(shared_data: Path, tmp_path: Path) -> None:
    # as the main install is: pandas only comes with the reports (and dev) extra
    code = ("import sys; sys.modules['pandas'] = None; from flowbot.cli import main;"
            f" sys.exit(main(['evaluate', {str(shared_data / 'BTCUSDT-aggTrades-2026-01-01.csv')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2
    assert "pip install 'flowbot[reports]'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "evaluation").exists()
