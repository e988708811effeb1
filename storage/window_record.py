"""The window duration a DATA_DIR was written with, recorded in it, so that windows of two durations never mix
(a flow span summing 1 s and 5 s windows of the same trades would count them twice)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

RECORD_NAME = "flowbot-data.json"


class WindowDurationMismatch(Exception):
    """DATA_DIR holds windows of another WINDOW_DURATION than the one asked for."""


def claim_window_duration(data_dir: Path, window_ms: int) -> None:
    """Record `window_ms` in DATA_DIR on its first use; refuse a DATA_DIR recorded with another duration."""
    record = data_dir / RECORD_NAME
    recorded = recorded_window_ms(data_dir)
    if recorded is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = record.with_name(f".{RECORD_NAME}.{os.getpid()}.tmp")
        temporary.write_bytes(orjson.dumps({"window_duration_s": window_ms / 1000}))
        os.replace(temporary, record)
        return
    if recorded != window_ms:
        raise WindowDurationMismatch(
            f"DATA_DIR={data_dir} holds windows of WINDOW_DURATION={recorded / 1000:g} s, not {window_ms / 1000:g} s: "
            f"set WINDOW_DURATION={recorded / 1000:g}, or use another DATA_DIR (windows of two durations cannot mix)"
        )


def recorded_window_ms(data_dir: Path) -> int | None:
    """The window duration recorded in DATA_DIR (ms), or None when it has none (or an unreadable one)."""
    try:
        value = orjson.loads((data_dir / RECORD_NAME).read_bytes())["window_duration_s"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return round(value * 1000) if isinstance(value, int | float) and value > 0 else None
