"""Scripted model behaviour shared by the AI tests."""

from __future__ import annotations

import orjson

from fakes.chat_completions import Reply


def grounded_answer(body: dict) -> Reply:
    """An answer that cites numbers from the facts it was sent (what a good model does)."""
    snapshot = orjson.loads(body["messages"][-1]["content"].split("Snapshot: ", 1)[1])
    evidence = snapshot["signal"]["evidence"]
    five = snapshot["context"]["5m"]
    return Reply(text=f"{evidence['whale_count']} whale trade(s) hit {snapshot['symbol']}; over 5m buyers took "
                      f"{five['buy_share_pct']}% of volume and price moved {five['price_change_pct']}%.")
