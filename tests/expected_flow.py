"""Expected window features computed from raw Binance records with csv and Decimal, independent of the code."""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import Decimal

import numpy as np

from engine.analysis.columns import TradeColumns

E8 = Decimal(10**8)


def load_csv(path) -> list[dict]:
    """The spot aggTrades dump, parsed in the test with csv + Decimal (times in microseconds -> ms)."""
    with open(path, newline="") as f:
        return [
            {"a": int(r[0]), "p": Decimal(r[1]), "q": Decimal(r[2]), "f": int(r[3]), "l": int(r[4]),
             "T": int(r[5]) // 1000, "m": r[6] == "True"}
            for r in csv.reader(f)
        ]


def columns(rows: list[dict]) -> TradeColumns:
    return TradeColumns(
        "BTCUSDT",
        np.array([r["a"] for r in rows], dtype=np.int64), np.array([r["f"] for r in rows], dtype=np.int64),
        np.array([r["l"] for r in rows], dtype=np.int64), np.array([int(r["p"] * E8) for r in rows], dtype=np.int64),
        np.array([int(r["q"] * E8) for r in rows], dtype=np.int64), np.array([r["T"] for r in rows], dtype=np.int64),
        np.array([r["m"] for r in rows], dtype=bool),
    )


def expected_windows(rows: list[dict], window_ms: int, whale_quote: Decimal) -> list[dict]:
    by_window: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_window[r["T"] // window_ms * window_ms].append(r)
    out, cvd, day = [], Decimal(0), None
    previous_id = None
    for start in sorted(by_window):
        w = by_window[start]
        if start // 86_400_000 != day:
            day, cvd = start // 86_400_000, Decimal(0)
        buy = [r for r in w if not r["m"]]
        sell = [r for r in w if r["m"]]
        volume = sum(r["q"] for r in w)
        quote = sum(r["p"] * r["q"] for r in w)
        delta = sum(r["q"] for r in buy) - sum(r["q"] for r in sell)
        cvd += delta
        whales = [r for r in w if r["p"] * r["q"] >= whale_quote]
        missing = 0
        for r in w:
            if previous_id is not None:
                missing += max(0, r["a"] - previous_id - 1)
            previous_id = r["a"]
        out.append({
            "window_start": start, "window_end": start + window_ms,
            "open": w[0]["p"], "high": max(r["p"] for r in w), "low": min(r["p"] for r in w), "close": w[-1]["p"],
            "volume": volume, "quote_volume": quote,
            "buy_volume": sum(r["q"] for r in buy), "sell_volume": sum(r["q"] for r in sell),
            "buy_quote": sum(r["p"] * r["q"] for r in buy), "sell_quote": sum(r["p"] * r["q"] for r in sell),
            "delta": delta, "cvd": cvd, "vwap": (quote / volume).quantize(Decimal("1e-8")),
            "trade_count": len(w), "whale_count": len(whales),
            "whale_buy_quote": sum(r["p"] * r["q"] for r in whales if not r["m"]),
            "whale_sell_quote": sum(r["p"] * r["q"] for r in whales if r["m"]),
            "first_id": w[0]["a"], "last_id": w[-1]["a"], "missing_ids": missing,
        })
    return out
