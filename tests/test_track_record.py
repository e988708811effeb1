"""Track records from the store agree with `flowbot evaluate`'s measure of the same replay, on real data."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console

from core.settings import Settings
from flowbot.cli import main
from flowbot.evaluate import evaluate
from flowbot.horizons import parse_horizons


def test_flowbot_stats_prints_each_kinds_record_as_evaluate_measures_it(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(_env_file=None, DATA_DIR=str(tmp_path), ALERT_BUDGET_PER_DAY="0")
    outcomes, _ = asyncio.run(evaluate([shared_data / "XRPETH-rest-aggTrades.json"], settings, parse_horizons("15m"),
                                       symbol="XRPETH", console=Console(file=io.StringIO())))
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert main(["stats", "XRPETH"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = []
    for (kind, direction), group in outcomes.groupby(["kind", "direction"]):
        signed = group["signed_ret_15m"].dropna()
        moved = "down" if direction == "sell" else "up"
        expected.append(f"XRPETH {kind}, {direction}, last 30 days: {len(group)} alerts, "
                        f"{(signed > 0).mean():.0%} {moved} after 15 min, median {signed.median() * 100:+.2f}%")
    assert lines == expected
    assert main(["stats", "BTCUSDT"]) == 0
    assert capsys.readouterr().out.strip() == "no track record yet"
