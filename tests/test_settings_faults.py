"""Issue 14, points 4, 7 and 8: bad settings and bad arguments get one clear line from the real `flowbot`
process, never a traceback nor any part of a secret; a DATA_DIR keeps the window duration it was written with."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from expected_flow import load_csv

GROQ_KEY = "gsk_CANARY7secret0123456789"


def flowbot(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATA_DIR": str(data_dir), "HEALTH_PORT": "0", **env}
    return subprocess.run([sys.executable, "-m", "flowbot.cli", *args], env=environment, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        *[({"WINDOW_DURATION": value}, "WINDOW_DURATION must be a whole number of seconds that divides a minute: "
                                       "1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60")
          for value in ("0.0001", "1e12", "inf", "nan", "7", "2.5", "-5")],
        ({"SHARD_INDEX": "3"}, "SHARD_INDEX must be below SHARD_COUNT (1): 0 to 0"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT: Input should be a valid integer"),
    ],
)
def test_an_invalid_setting_gets_its_name_and_the_allowed_values(tmp_path: Path, env, expected) -> None:
    result = flowbot("flow", "BTCUSDT", data_dir=tmp_path, GROQ_API_KEY=GROQ_KEY, **env)
    assert result.returncode == 2
    assert result.stderr.startswith("flowbot: invalid settings:\n")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert GROQ_KEY[:5] not in result.stderr and "input_value" not in result.stderr


def test_valid_window_durations_and_log_levels_are_accepted(tmp_path: Path) -> None:
    result = flowbot("flow", "BTCUSDT", data_dir=tmp_path, WINDOW_DURATION="15.0", LOG_LEVEL="debug")
    assert result.returncode == 1 and result.stdout.startswith("No stored flow for BTCUSDT")


def test_an_empty_question_exits_non_zero_with_a_clear_line(tmp_path: Path) -> None:
    for question in ("", "   "):
        result = flowbot("ask", question, data_dir=tmp_path)
        assert result.returncode == 2
        assert result.stderr == (
            'flowbot ask: the question is empty; ask e.g. flowbot ask "is BTC being bought right now?"\n'
        )
        assert result.stdout == ""


def test_a_data_dir_refuses_windows_of_another_duration(tmp_path: Path, shared_data: Path) -> None:
    dump = shared_data / "BTCUSDT-aggTrades-2026-01-01.csv"
    first = flowbot("replay", str(dump), data_dir=tmp_path, WINDOW_DURATION="5")
    assert first.returncode == 0, first.stderr
    again = flowbot("replay", str(dump), data_dir=tmp_path, WINDOW_DURATION="1")
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"flowbot: DATA_DIR={tmp_path} holds windows of WINDOW_DURATION=5 s, not 1 s: set WINDOW_DURATION=5, "
        "or use another DATA_DIR (windows of two durations cannot mix)"
    )
    rows = load_csv(dump)
    end = (rows[-1]["T"] // 5000 + 1) * 5000
    last5 = [r for r in rows if end - 300_000 <= r["T"] < end]
    flow = flowbot("flow", "BTCUSDT", "--window", "5m", data_dir=tmp_path, WINDOW_DURATION="5")
    buy = sum((r["q"] for r in last5 if not r["m"]), Decimal(0))
    assert f"Buy volume: {buy.quantize(Decimal('0.0001')):,}" in flow.stdout
    assert f"Trades: {len(last5):,} in " in flow.stdout
