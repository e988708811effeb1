"""Context summaries: running sums must equal a plain sum over the span's windows, also after corrections."""

from __future__ import annotations

import itertools
import random

from core.features import WindowFeatures
from engine.analysis.context import CONTEXT_SPANS, SymbolContext, summarize
from engine.analysis.window_batch import WindowBatch


def window(start: int, rng: random.Random) -> WindowFeatures:
    buy, sell = rng.randint(0, 10**9), rng.randint(0, 10**9)
    o, c = rng.randint(10**12, 2 * 10**12), rng.randint(10**12, 2 * 10**12)
    return WindowFeatures(
        "BTCUSDT", start, start + 5000, o, max(o, c) + rng.randint(0, 10**9), min(o, c) - rng.randint(0, 10**9), c,
        buy + sell, (buy + sell) * o, buy, sell, buy * o, sell * o, buy - sell, 0, rng.randint(1, 50),
        rng.randint(0, 2), rng.randint(0, 10**20), rng.randint(0, 10**20), start, start + 1, rng.randint(0, 3),
        10**20, rng.random() < 0.1, 1.0,
    )


def test_running_summaries_equal_plain_sums_over_each_span_with_gaps_and_corrections() -> None:
    rng = random.Random(3)
    context = SymbolContext("BTCUSDT")
    start = 1_700_000_000_000
    for i in range(1500):
        start += 5000 * rng.choice([1, 1, 1, 2, 7])  # some windows have no trades
        context.add(window(start, rng))
        if i % 97 == 0 and len(context.windows) > 3:
            old = context.windows[-3]
            context.add(window(old.window_start, rng))  # a correction of an earlier window
        if i % 50 == 0 or i > 1490:
            end = context.windows[-1].window_end
            for span, ms in CONTEXT_SPANS.items():
                assert context.summary(span) == summarize("BTCUSDT", span, end - ms, end, context.windows)
    assert context.windows[-1].window_end - context.windows[0].window_start <= 3_600_000 + 5000


def test_windows_given_as_columns_summarise_like_objects() -> None:
    rng = random.Random(5)
    starts = [1_700_000_000_000 + 5000 * k for k in range(2000) if rng.random() < 0.8]
    cuts = [0, *itertools.accumulate([3, 300, 70] * 4)]
    batches = [[window(s, rng) for s in starts[a:b]] for a, b in itertools.pairwise(cuts)]
    objects, columns = SymbolContext("BTCUSDT"), SymbolContext("BTCUSDT")
    for batch in filter(None, batches):
        objects.extend(batch)
        columns.extend_batch(WindowBatch.from_features("BTCUSDT", batch))
        if len(batch) == 3:  # read in between: objects are made, and later batches add to them
            assert columns.summaries() == objects.summaries()
    assert list(columns.windows) == list(objects.windows)
    assert columns.summaries() == objects.summaries() and len(objects.summaries()) == 4
