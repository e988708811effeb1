"""Sequencing: once, in id order; gaps held, filled or recorded exactly."""

from __future__ import annotations

import random
from decimal import Decimal

import orjson
import pytest

from core.events import Gap
from core.health import SymbolHealth
from core.trades import Trade
from engine.connection.sequencer import Sequencer
from engine.venues.binance.messages import trade_from_aggtrade, trade_from_trade


def _recorded(shared_data, file: str, symbol: str, parse) -> list[Trade]:
    lines = (shared_data / file).read_bytes().splitlines()
    return [parse(d) for d in (orjson.loads(line)["data"] for line in lines) if d["s"] == symbol]


class Harness:
    def __init__(self, symbol: str, by_trade_ids: bool = False) -> None:
        self.released: list[Trade] = []
        self.gaps_opened = 0
        self.unfilled: list[Gap] = []
        self.health = SymbolHealth(symbol)
        self.seq = Sequencer(
            symbol, by_trade_ids=by_trade_ids, health=self.health, release=self.released.append,
            on_gap=lambda _: self._opened(), on_unfilled=self.unfilled.append,
        )

    def _opened(self) -> None:
        self.gaps_opened += 1


@pytest.fixture
def btc(shared_data) -> list[Trade]:
    return _recorded(shared_data, "binance-spot-aggtrade-ws.jsonl", "BTCUSDT", trade_from_aggtrade)


def test_duplicates_and_local_disorder_come_out_once_in_order(btc: list[Trade]) -> None:
    rng = random.Random(7)
    noisy = []
    for i in range(0, len(btc), 5):
        chunk = btc[i : i + 5] + rng.sample(btc[max(0, i - 20) : i + 5], 3)
        rng.shuffle(chunk)
        noisy.extend(chunk)
    h = Harness("BTCUSDT")
    h.seq.accept(btc[0])
    for trade in noisy:
        h.seq.accept(trade)
    assert [t.id for t in h.released] == [t.id for t in btc]
    assert h.released == btc
    assert h.health.duplicates == len(noisy) + 1 - len(btc)
    assert h.seq.pending == {} and h.unfilled == []
    assert h.health.gaps_found == h.health.gaps_filled


def test_a_gap_holds_later_trades_until_filled(btc: list[Trade]) -> None:
    h = Harness("BTCUSDT")
    for trade in btc[:100] + btc[110:150]:
        h.seq.accept(trade)
    assert [t.id for t in h.released] == [t.id for t in btc[:100]]
    assert h.seq.missing() == (btc[100].id, btc[109].id)
    assert h.gaps_opened == 1
    for trade in btc[100:110]:
        h.seq.accept(trade)
    assert h.released == btc[:150]
    assert (h.health.gaps_found, h.health.gaps_filled, h.health.gaps_unfilled) == (1, 1, 0)


def test_an_unfillable_gap_is_recorded_exactly_and_nothing_else_is_lost(btc: list[Trade]) -> None:
    h = Harness("BTCUSDT")
    kept = btc[:50] + btc[53:80] + btc[90:]
    for trade in kept:
        h.seq.accept(trade)
    first = h.seq.skip_gap("REST refused")
    second = h.seq.skip_gap("REST refused")
    assert h.seq.skip_gap("nothing open") is None
    assert (first.first_missing, first.last_missing) == (btc[50].id, btc[52].id)
    assert (second.first_missing, second.last_missing) == (btc[80].id, btc[89].id)
    assert h.released == kept
    assert h.health.missing_ids == 13 and h.unfilled == [first, second]
    assert (h.health.gaps_found, h.health.gaps_filled, h.health.gaps_unfilled) == (2, 0, 2)


def test_trade_stream_gap_filled_from_covering_aggtrades_keeps_exact_quantities(shared_data) -> None:
    trades = _recorded(shared_data, "binance-spot-ethusdt-trade-ws.jsonl", "ETHUSDT", trade_from_trade)
    # aggTrades as Binance forms them: consecutive trades with the same time, price and side
    groups: list[list[Trade]] = []
    for t in trades:
        g = groups[-1] if groups else None
        if g and (g[-1].trade_time, g[-1].price, g[-1].is_sell) == (t.trade_time, t.price, t.is_sell):
            g.append(t)
        else:
            groups.append([t])
    aggregates = [
        Trade("ETHUSDT", 5_000 + n, g[0].id, g[-1].id, g[0].price, sum(t.qty for t in g), g[0].trade_time,
              g[0].trade_time, g[0].is_sell)
        for n, g in enumerate(groups)
    ]
    multi = next(i for i, g in enumerate(groups) if len(g) >= 3 and i > 5)
    group = groups[multi]
    # drop the last two trades of a multi-trade aggTrade and the whole next aggTrade
    missing_ids = {t.id for t in group[-2:]} | {t.id for t in groups[multi + 1]}
    h = Harness("ETHUSDT", by_trade_ids=True)
    for t in trades:
        if t.id not in missing_ids:
            h.seq.accept(t)
    assert h.seq.missing() == (min(missing_ids), max(missing_ids))
    h.seq.fill_from_aggregates(aggregates[multi - 2 : multi + 3])
    assert h.seq.missing() is None
    covered = [i for t in h.released for i in range(t.first_id, t.last_id + 1)]
    assert covered == [t.id for t in trades]
    assert sum(t.qty for t in h.released) == sum(t.qty for t in trades)
    fill = [t for t in h.released if t.id in missing_ids]
    assert Decimal(fill[0].qty) == sum(t.qty for t in group[-2:])


def test_ids_restarting_lower_start_a_new_sequence_and_old_higher_ids_are_stale(btc: list[Trade]) -> None:
    h = Harness("BTCUSDT")
    for trade in btc[:20]:
        h.seq.accept(trade)
    hour = 3_600_000
    relisted = [t._replace(id=t.id - 10**6, trade_time=t.trade_time + hour) for t in btc[20:30]]
    for trade in relisted:
        h.seq.accept(trade)
    assert h.released == btc[:20] + relisted
    assert h.health.sequence_resets == 1 and h.health.duplicates == 0
    old_session = btc[40]  # a higher id than the new sequence, printed an hour before it
    assert not h.seq.accept(old_session)
    assert h.health.stale == 1 and h.seq.pending == {} and h.seq.missing() is None
