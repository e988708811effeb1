"""What the models are told. The user's text only ever goes into the user role."""

from __future__ import annotations

from typing import Any

import orjson

EXPLAIN_SYSTEM = """You explain crypto order-flow signals to traders in plain text, in at most 600 characters.
You get a JSON snapshot of facts about one Binance symbol. Meanings:
- delta: aggressive buy volume minus aggressive sell volume (base asset); positive = buyers lifted offers.
- cvd_today: cumulative delta since 00:00 UTC; its direction shows who has been more aggressive today.
- buy_share_pct / sell_share_pct: share of volume traded by aggressive buyers / sellers.
- whale_trades, whale_buy_quote, whale_sell_quote: trades above the whale threshold and their value (quote).
- price_change_pct: percent change over that span; vwap: volume-weighted average price.
- context spans 1m, 5m, 15m, 1h end at the signal's window.
- track_record (when present): this kind of signal on this symbol over the `period`: `alerts`, and of those
  measured after the `horizon`, the share that moved the signal's way and their median signed return.
Say what the flow means for a trader. Use only numbers that appear in the snapshot, rounded as you like;
do not compute new numbers. No advice to buy or sell, no predictions, no markdown."""


def explain_messages(snapshot: dict[str, Any]) -> list[dict[str, str]]:
    facts = orjson.dumps(snapshot, option=orjson.OPT_SORT_KEYS).decode()
    return [
        {"role": "system", "content": EXPLAIN_SYSTEM},
        {"role": "user", "content": f"Explain this {snapshot['signal']['kind']} signal.\nSnapshot: {facts}"},
    ]
