"""Closed windows of one symbol as columns: what the window stage hands to the store, the context and the signals."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from core.features import PRICE_SCALE, QUOTE_SCALE, WindowFeatures, vwap_float
from core.schema import NULLABLE_COLUMNS, Unit, feature_fields
from engine.analysis.kernels import BITS, LIMBS, MASK, limbs_to_float

QUOTES = ("quote_volume", "buy_quote", "sell_quote", "whale_buy_quote", "whale_sell_quote")  # kernels.QUOTE_SUMS
INTS = ("window_start", "window_end", "open", "high", "low", "close", "volume", "buy_volume", "delta", "cvd",
        "trade_count", "whale_count", "first_id", "last_id", "missing_ids")
# The stored columns (core/schema.py) this batch holds as they are written, and its price columns (sell_volume is not
# kept: it is volume - buy_volume); its quote sums are QUOTES, the whale threshold a float.
_AS_STORED = feature_fields(Unit.TIME, Unit.COUNT, Unit.FLAG, Unit.RATIO)
_PRICES = tuple(name for name in feature_fields(Unit.PRICE) if name != "sell_volume")
_TRADE_FIELDS = tuple(f.name for f in fields(WindowFeatures) if f.name not in {c.name for c in NULLABLE_COLUMNS})
_SAFE_VWAP = 2.0**50  # below this a float vwap far enough from a rounding tie is provably the exact one


def limbs_to_ints(limbs: np.ndarray) -> list[int]:
    """The exact integers of (..., LIMBS) base-2**21 limbs, flattened in row order (limbs but the top below 2**42)."""
    flat = limbs.reshape(-1, LIMBS)
    low = (flat[:, 0] + (flat[:, 1] << BITS)).tolist()
    middle = (flat[:, 2] + (flat[:, 3] << BITS)).tolist()
    return [a + (b << (2 * BITS)) + (c << (4 * BITS)) for a, b, c in zip(low, middle, flat[:, 4].tolist(), strict=True)]


def ints_to_limbs(values: Sequence[int]) -> np.ndarray:
    """Rows of base-2**21 limbs of integers (the top limb takes the rest, with the sign)."""
    return np.array([[(v >> (BITS * j)) & MASK for j in range(LIMBS - 1)] + [v >> (BITS * (LIMBS - 1))]
                     for v in values], dtype=np.int64).reshape(len(values), LIMBS)


@dataclass(frozen=True, slots=True)
class WindowBatch:
    """Consecutive windows of one symbol, in window order; amounts are exact (quote sums as limbs, 1e-16)."""

    symbol: str
    window_start: np.ndarray
    window_end: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    buy_volume: np.ndarray
    delta: np.ndarray
    cvd: np.ndarray
    trade_count: np.ndarray
    whale_count: np.ndarray
    first_id: np.ndarray
    last_id: np.ndarray
    missing_ids: np.ndarray
    quotes: np.ndarray  # (windows, QUOTES, LIMBS)
    whale_threshold: np.ndarray  # float64 notional (1e-16); the feature is its int()
    burst: np.ndarray
    burst_ratio: np.ndarray

    def __len__(self) -> int:
        return len(self.window_start)

    def __iter__(self) -> Iterator[WindowFeatures]:
        return iter(self.features(np.arange(len(self))))

    @classmethod
    def from_features(cls, symbol: str, windows: Sequence[WindowFeatures]) -> WindowBatch:
        """Columns of window objects (of this symbol, in window order)."""
        ints = {name: np.array([getattr(w, name) for w in windows], dtype=np.int64) for name in INTS}
        quotes = np.stack([ints_to_limbs([getattr(w, name) for w in windows]) for name in QUOTES], axis=1)
        return cls(
            symbol, **ints, quotes=quotes.reshape(len(windows), len(QUOTES), LIMBS),
            whale_threshold=np.array([float(w.whale_threshold) for w in windows], dtype=np.float64),
            burst=np.array([w.burst for w in windows], dtype=bool),
            burst_ratio=np.array([w.burst_ratio for w in windows], dtype=np.float64),
        )

    @classmethod
    def empty(cls, symbol: str) -> WindowBatch:
        """No windows: the answer to most batches of trades, so made from shared empty columns, not built again."""
        return replace(_EMPTY, symbol=symbol)

    @staticmethod
    def concat(symbol: str, parts: Sequence[WindowBatch]) -> WindowBatch:
        return WindowBatch(symbol, *(np.concatenate([getattr(p, f.name) for p in parts])
                                     for f in fields(WindowBatch)[1:]))

    def features(self, rows: np.ndarray) -> list[WindowFeatures]:
        """The windows at `rows` as exact WindowFeatures objects."""
        columns: dict[str, Iterable[object]] = {name: getattr(self, name)[rows].tolist() for name in INTS}
        columns["sell_volume"] = (self.volume[rows] - self.buy_volume[rows]).tolist()
        flat = limbs_to_ints(self.quotes[rows])
        columns |= {name: flat[k :: len(QUOTES)] for k, name in enumerate(QUOTES)}
        columns["whale_threshold"] = map(int, self.whale_threshold[rows].tolist())
        columns["burst"], columns["burst_ratio"] = self.burst[rows].tolist(), self.burst_ratio[rows].tolist()
        columns["symbol"] = itertools.repeat(self.symbol)
        return list(map(WindowFeatures, *(columns[name] for name in _TRADE_FIELDS)))

    def since(self, start_ms: int) -> WindowBatch:
        """The windows starting at or after start_ms."""
        first = int(np.searchsorted(self.window_start, start_ms))
        return WindowBatch(self.symbol, *(getattr(self, f.name)[first:] for f in fields(WindowBatch)[1:]))

    def parquet_columns(self) -> dict[str, np.ndarray]:
        """The Parquet columns (core/schema.py), converted exactly as WindowFeatures.row() does."""
        p, q = float(PRICE_SCALE), float(QUOTE_SCALE)
        quote = {name: limbs_to_float(self.quotes[:, k]) for k, name in enumerate(QUOTES)}
        columns = {name: getattr(self, name).astype(np.float64) / p for name in _PRICES}
        columns["sell_volume"] = (self.volume - self.buy_volume).astype(np.float64) / p
        columns |= {name: values / q for name, values in quote.items()}
        columns |= {name: getattr(self, name) for name in _AS_STORED}
        columns["whale_threshold"] = np.trunc(self.whale_threshold) / q
        columns["vwap"] = self._vwaps(quote["quote_volume"])
        columns["symbol"] = np.full(len(self), self.symbol, dtype=object)
        columns |= {column.name: np.full(len(self), np.nan) for column in NULLABLE_COLUMNS}  # null: trades only
        return columns

    def _vwaps(self, quote: np.ndarray) -> np.ndarray:
        """float(WindowFeatures.vwap) per window: from floats where no rounding tie is near, else exactly."""
        volume = self.volume.astype(np.float64)
        approx = quote / np.maximum(volume, 1.0)
        whole = np.floor(approx)
        tie_distance = np.abs(approx - whole - 0.5)
        # float quote and volume and the division each err by at most 2**-53 relative: 2**-50 covers all three
        safe = (self.volume > 0) & (approx < _SAFE_VWAP) & (tie_distance > approx * 2.0**-50 + 1e-9)
        vwaps = (whole + (approx - whole > 0.5)) / float(PRICE_SCALE)
        unsafe = np.flatnonzero(~safe)
        quotes = limbs_to_ints(self.quotes[unsafe, 0])
        for i, quote_volume, volume in zip(unsafe.tolist(), quotes, self.volume[unsafe].tolist(), strict=True):
            vwaps[i] = vwap_float(quote_volume, volume)
        return vwaps


_EMPTY = WindowBatch.from_features("", [])
