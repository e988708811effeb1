"""What each signal was worth: returns after each horizon, from the replayed trades, against a random moment.

The contract (README, `flowbot evaluate`): price(t) is the price of the symbol's last trade with time < t;
ret_H = price(window_end + H) / price(window_end) - 1, empty when the input ends before window_end + H or ids are
missing between the two trades; signed_ret_H is ret_H in the signal's direction (empty for neutral). The baseline
is the same over every window of the symbol that had trades, signed by the group's direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

from engine.analysis.columns import TradeColumns

PRICE_SCALE = 10**8
SIGNS = {"buy": 1.0, "sell": -1.0}  # neutral: no sign


@dataclass
class PriceTape:
    """Every replayed trade's time, id and price per symbol (int64; prices in 1e-8), for price(t) and gaps."""

    pieces: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(default_factory=dict)
    _tapes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def add(self, columns: TradeColumns) -> None:
        if len(columns):
            self.pieces.setdefault(columns.symbol, []).append(
                (columns.time.copy(), columns.id.copy(), columns.price.copy()))

    def tape(self, symbol: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(time, id, price) of the symbol's trades, each id once, in id order (times then never go back)."""
        if symbol not in self._tapes:
            pieces = self.pieces.get(symbol, [])
            if not pieces:
                empty = np.empty(0, dtype=np.int64)
                self._tapes[symbol] = (empty, empty, empty)
            else:
                time, ids, price = (np.concatenate(part) for part in zip(*pieces, strict=True))
                ids, first = np.unique(ids, return_index=True)  # duplicates dropped, in id order
                time, price = time[first], price[first]
                order = np.argsort(time, kind="stable")  # already sorted unless a relisting restarted the ids
                self._tapes[symbol] = (time[order], ids[order], price[order])
        return self._tapes[symbol]

    def symbols(self) -> list[str]:
        return sorted(self.pieces)

    def window_ends(self, symbol: str, window_ms: int) -> np.ndarray:
        """The end of every window of the symbol that had trades."""
        time = self.tape(symbol)[0]
        return (np.unique(time // window_ms) + 1) * window_ms

    def returns(self, symbol: str, at: np.ndarray, horizon_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """(price(at) in 1e-8, ret_H as float64 with NaN where empty) for the instants `at` (ms)."""
        time, ids, price = self.tape(symbol)
        if not len(time):
            return np.zeros(len(at), dtype=np.int64), np.full(len(at), np.nan)
        base_i = np.searchsorted(time, at, "left") - 1
        later_i = np.searchsorted(time, at + horizon_ms, "left") - 1
        known = base_i >= 0
        base = np.where(known, price[np.maximum(base_i, 0)], 0)
        later = price[np.maximum(later_i, 0)]
        ended = time[-1] < at + horizon_ms  # no trade at or after window_end + H: the data ends first
        whole = ids[np.maximum(later_i, 0)] - ids[np.maximum(base_i, 0)] == later_i - base_i
        valid = known & ~ended & whole
        ret = np.full(len(at), np.nan)
        ret[valid] = (later[valid] - base[valid]).astype(np.float64) / base[valid].astype(np.float64)
        return base, ret


def price_text(scaled: int) -> str:
    """A 1e-8 scaled price as its exact decimal text."""
    text = format(Decimal(int(scaled)).scaleb(-8), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def outcomes(signals: pd.DataFrame, tape: PriceTape, horizons: dict[str, int]) -> pd.DataFrame:
    """One row per signal: its base price and ret_H, signed_ret_H per horizon (columns of the outcomes.csv contract)."""
    frame = signals[["signal_id", "symbol", "kind", "direction", "severity", "window_end"]].copy()
    frame["price"] = ""
    sign = frame["direction"].map(SIGNS).astype(np.float64)
    rets: dict[str, np.ndarray] = {label: np.full(len(frame), np.nan) for label in horizons}
    for symbol, rows in frame.groupby("symbol").indices.items():
        at = frame["window_end"].to_numpy(np.int64)[rows]
        for label, ms in horizons.items():
            base, ret = tape.returns(str(symbol), at, ms)
            rets[label][rows] = ret
        frame.iloc[rows, frame.columns.get_loc("price")] = [price_text(p) for p in base]
    for label in horizons:
        frame[f"ret_{label}"] = rets[label]
        frame[f"signed_ret_{label}"] = rets[label] * sign
    return frame


def baselines(tape: PriceTape, horizons: dict[str, int], window_ms: int) -> dict[str, dict[str, np.ndarray]]:
    """Per symbol and horizon, ret_H at the end of every window that had trades (NaN where empty)."""
    found: dict[str, dict[str, np.ndarray]] = {}
    for symbol in tape.symbols():
        ends = tape.window_ends(symbol, window_ms)
        found[symbol] = {label: tape.returns(symbol, ends, ms)[1] for label, ms in horizons.items()}
    return found


def summary(frame: pd.DataFrame, base: dict[str, dict[str, np.ndarray]], horizons: dict[str, int]) -> pd.DataFrame:
    """One row per (symbol, kind, direction): signals, and per horizon hit rate, mean and median signed return,
    the baseline's hit rate and mean signed return, and the edge (mean minus baseline mean)."""
    rows = []
    for (symbol, kind, direction), group in frame.groupby(["symbol", "kind", "direction"], sort=True):
        row: dict[str, object] = {"symbol": symbol, "kind": kind, "direction": direction, "signals": len(group)}
        sign = SIGNS.get(str(direction))
        for label in horizons:
            signed = group[f"signed_ret_{label}"].dropna()
            random = base.get(str(symbol), {}).get(label, np.empty(0))
            random = random[~np.isnan(random)] * sign if sign is not None else np.empty(0)
            mean = signed.mean() if len(signed) else np.nan
            random_mean = random.mean() if len(random) else np.nan
            row[f"hit_rate_{label}"] = (signed > 0).mean() if len(signed) else np.nan
            row[f"mean_signed_ret_{label}"] = mean
            row[f"median_signed_ret_{label}"] = signed.median() if len(signed) else np.nan
            row[f"baseline_hit_rate_{label}"] = (random > 0).mean() if len(random) else np.nan
            row[f"baseline_mean_signed_ret_{label}"] = random_mean
            row[f"edge_{label}"] = mean - random_mean
        rows.append(row)
    columns = ["symbol", "kind", "direction", "signals"] + [
        f"{name}_{label}" for label in horizons for name in (
            "hit_rate", "mean_signed_ret", "median_signed_ret", "baseline_hit_rate", "baseline_mean_signed_ret",
            "edge")]
    return pd.DataFrame(rows, columns=columns)
