"""A track record as one line ("BTCUSDT absorption, buy, last 30 days: 41 alerts, 59% up after 15 min, median
+0.11%") and the table `flowbot stats` prints."""

from __future__ import annotations

from storage.track_record import RECORD_DAYS, Record

NO_RECORD = "no track record yet"


def record_line(record: Record | None, days: int = RECORD_DAYS) -> str:
    if record is None or record.hit_rate is None or record.median_signed_ret is None:
        return NO_RECORD
    moved = "down" if record.direction == "sell" else "up"
    return (f"{record.symbol} {record.kind}, {record.direction}, last {days} days: {record.alerts} alerts, "
            f"{record.hit_rate:.0%} {moved} after 15 min, median {record.median_signed_ret * 100:+.2f}%")
