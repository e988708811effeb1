"""pyarrow alone reading a Binance aggTrades CSV dump with exact (decimal128) price and quantity: the baseline of
bench.replay (its whole-process run is `python -m bench.pyarrow_read FILE`, which imports nothing else).

    python -m bench.pyarrow_read FILE
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pv

COLUMNS = ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker",
           "is_best_match"]


def read_with_pyarrow(path: Path) -> pa.Table:
    """The CSV as pyarrow reads it, price and quantity as decimal128(20, 8)."""
    return pv.read_csv(
        path, read_options=pv.ReadOptions(column_names=COLUMNS),
        convert_options=pv.ConvertOptions(column_types={"price": pa.decimal128(20, 8),
                                                        "quantity": pa.decimal128(20, 8)}),
    )


if __name__ == "__main__":
    if read_with_pyarrow(Path(sys.argv[1])).num_rows == 0:
        sys.exit("no rows read")
