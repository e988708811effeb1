"""Compiled per-trade passes of the window stage: whale thresholds, window sums, CVD and burst baselines.

Amounts stay exact: price x quantity sums are kept in LIMBS base-2**21 limbs (value = sum(limb[j] << 21j)), never
in floats; a float is only made (correctly rounded, as Python's float(int) does) for the Parquet columns.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
LIMBS = 5
BITS = 21
MASK = (1 << BITS) - 1
QUOTE_SUMS = 5  # quote_volume, buy_quote, sell_quote, whale_buy_quote, whale_sell_quote
UNSET = -(2**62)  # no CVD day / first window yet


def _compiled(function: Callable) -> Callable:
    """njit, cached on disk; without the cache where numba finds no writable cache folder at all."""
    try:
        return njit(cache=True, nogil=True)(function)
    except RuntimeError:
        return njit(nogil=True)(function)


@_compiled
def kth_largest_recent(minute, entry_minute, counts, bounds, values, q):
    """The whale percentile for `minute`, numpy's "higher" q-quantile of the notionals of the hour before, if it
    reaches the threshold's minimum (else 0.0: the minimum wins either way).

    Entry e is one minute: counts[e] notionals, of which those at or above the minimum are kept, sorted, in
    values[bounds[e]:bounds[e + 1]]. The q-quantile is the k-th largest with k = n - ceil((n - 1) q).
    """
    n = 0
    kept = 0
    for e in range(len(entry_minute)):
        if minute - HOUR_MS <= entry_minute[e] < minute:
            n += counts[e]
            kept += bounds[e + 1] - bounds[e]
    if n == 0:
        return 0.0
    k = n - np.int64(np.ceil((n - 1) * q))
    if kept < k:
        return 0.0
    # a max-heap of the entries by their largest value not yet taken; the k-th value taken is the answer
    heads = bounds[1:].copy()
    heap = np.empty(len(entry_minute), dtype=np.int64)
    size = 0
    for e in range(len(entry_minute)):
        if minute - HOUR_MS <= entry_minute[e] < minute and heads[e] > bounds[e]:
            heap[size] = e
            size += 1
            _sift_up(heap, size - 1, heads, values)
    best = 0.0
    for _ in range(k):
        e = heap[0]
        heads[e] -= 1
        best = values[heads[e]]
        if heads[e] == bounds[e]:
            size -= 1
            heap[0] = heap[size]
        _sift_down(heap, size, heads, values)
    return best


@_compiled
def _sift_up(heap, i, heads, values):
    """Restore the max-heap (by each entry's next value, values[heads[e] - 1]) after a push at i."""
    while i > 0:
        parent = (i - 1) // 2
        if values[heads[heap[parent]] - 1] >= values[heads[heap[i]] - 1]:
            return
        heap[parent], heap[i] = heap[i], heap[parent]
        i = parent


@_compiled
def _sift_down(heap, size, heads, values):
    """Restore the max-heap after its top changed."""
    i = 0
    while True:
        largest, left, right = i, 2 * i + 1, 2 * i + 2
        if left < size and values[heads[heap[left]] - 1] > values[heads[heap[largest]] - 1]:
            largest = left
        if right < size and values[heads[heap[right]] - 1] > values[heads[heap[largest]] - 1]:
            largest = right
        if largest == i:
            return
        heap[largest], heap[i] = heap[i], heap[largest]
        i = largest


@_compiled
def whale_thresholds(times, price, qty, entry_minute, counts, bounds, values, cached_minute, cached, minimum, q):
    """Each trade's whale threshold (notional: float price x float qty) and the hour of history after the trades.

    Per run of one minute: the threshold is max(minimum, percentile of the previous hour) (kept while the minute
    does not change), then the run's notionals join the history (a run of the newest minute merges into it) and
    minutes older than an hour before the newest are dropped. Returns (thresholds, entry_minute, counts, bounds,
    values, cached_minute, cached), see kth_largest_recent.
    """
    n = len(times)
    count = len(entry_minute)
    e_min = np.empty(count + n, dtype=np.int64)
    e_cnt = np.empty(count + n, dtype=np.int64)
    e_bnd = np.empty(count + n + 1, dtype=np.int64)
    vals = np.empty(len(values) + n, dtype=np.float64)
    e_min[:count] = entry_minute
    e_cnt[:count] = counts
    e_bnd[: count + 1] = bounds
    vals[: len(values)] = values
    head = 0
    out = np.empty(n, dtype=np.float64)
    i = 0
    while i < n:
        minute = times[i] // MINUTE_MS * MINUTE_MS
        stop = i + 1
        while stop < n and times[stop] // MINUTE_MS * MINUTE_MS == minute:
            stop += 1
        if minute != cached_minute:
            cached_minute = minute
            adaptive = kth_largest_recent(minute, e_min[head:count], e_cnt[head:count], e_bnd[head : count + 1],
                                          vals, q)
            cached = max(minimum, adaptive)
        out[i:stop] = cached
        end = e_bnd[count]
        for j in range(i, stop):
            notional = np.float64(price[j]) * np.float64(qty[j])
            if notional >= minimum:
                vals[end] = notional
                end += 1
        if count > head and e_min[count - 1] == minute:
            e_cnt[count - 1] += stop - i
            e_bnd[count] = end
        else:
            e_min[count] = minute
            e_cnt[count] = stop - i
            e_bnd[count + 1] = end
            count += 1
        vals[e_bnd[count - 1] : end].sort()
        newest = e_min[count - 1]
        while head < count and e_min[head] < newest - HOUR_MS:
            head += 1
        i = stop
    first = e_bnd[head]
    return (out, e_min[head:count].copy(), e_cnt[head:count].copy(), e_bnd[head : count + 1] - first,
            vals[first : e_bnd[count]].copy(), cached_minute, cached)


@_compiled
def _add_product(acc, p, q):
    """acc += p x q (0 <= p, q < 2**63) in normalised base-2**21 limbs."""
    p0, p1, p2 = p & MASK, (p >> BITS) & MASK, p >> (2 * BITS)
    q0, q1, q2 = q & MASK, (q >> BITS) & MASK, q >> (2 * BITS)
    acc[0] += p0 * q0
    acc[1] += p0 * q1 + p1 * q0
    acc[2] += p0 * q2 + p1 * q1 + p2 * q0
    acc[3] += p1 * q2 + p2 * q1
    acc[4] += p2 * q2
    for j in range(LIMBS - 1):
        acc[j + 1] += acc[j] >> BITS
        acc[j] &= MASK


@_compiled
def window_sums(starts, price, qty, is_sell, thresholds, lo, hi, prev_hi):
    """One pass over trades sorted by window: per window its sums and extremes (amounts need 0 <= price, qty).

    lo/hi are the id range each record covers; a record starting more than one id after the previous record's
    end leaves missing ids (a backward jump is a new sequence). Returns (first index of each window, ints, quotes)
    with ints[:, k] = high, low, volume, buy_volume, whale_count, missing_ids and quotes[w, s] the limbs of the
    QUOTE_SUMS sums.
    """
    n = len(price)
    windows = 0
    for i in range(n):
        if i == 0 or starts[i] != starts[i - 1]:
            windows += 1
    first = np.empty(windows, dtype=np.int64)
    ints = np.zeros((windows, 6), dtype=np.int64)
    quotes = np.zeros((windows, QUOTE_SUMS, LIMBS), dtype=np.int64)
    w = -1
    for i in range(n):
        p, q = price[i], qty[i]
        if p < 0 or q < 0:
            raise ValueError("window sums need non-negative prices and quantities")
        if i == 0 or starts[i] != starts[i - 1]:
            w += 1
            first[w] = i
            ints[w, 0] = p
            ints[w, 1] = p
        row = ints[w]
        row[0] = max(row[0], p)
        row[1] = min(row[1], p)
        row[2] += q
        side = 2 if is_sell[i] else 1
        if not is_sell[i]:
            row[3] += q
        _add_product(quotes[w, side], p, q)
        if np.float64(p) * np.float64(q) >= thresholds[i]:
            row[4] += 1
            _add_product(quotes[w, side + 2], p, q)
        gap = lo[i] - prev_hi - 1
        if gap > 0:
            row[5] += gap
        prev_hi = hi[i]
    for w in range(windows):
        total = quotes[w, 0]
        total += quotes[w, 1] + quotes[w, 2]
        for j in range(LIMBS - 1):
            total[j + 1] += total[j] >> BITS
            total[j] &= MASK
    return first, ints, quotes


@_compiled
def limbs_to_float(limbs):
    """float() of each non-negative limb value, correctly rounded (half to even) like Python's float(int)."""
    out = np.empty(len(limbs), dtype=np.float64)
    for r in range(len(limbs)):
        digits = np.zeros(LIMBS + 2, dtype=np.int64)
        digits[:LIMBS] = limbs[r]
        for j in range(LIMBS - 1, LIMBS + 1):
            digits[j + 1] = digits[j] >> BITS
            digits[j] &= MASK
        top = LIMBS + 1
        while top > 0 and digits[top] == 0:
            top -= 1
        if top <= 2:
            out[r] = np.float64((digits[2] << (2 * BITS)) + (digits[1] << BITS) + digits[0])
            continue
        # the top 55..63 bits, the rest folded into a sticky lowest bit (round to odd, then to nearest: exact)
        window = (digits[top] << (2 * BITS)) + (digits[top - 1] << BITS) + digits[top - 2]
        shift = 0
        while window < (1 << 62):
            window <<= 1
            shift += 1
        below = digits[top - 3]
        window |= below >> (BITS - shift)
        sticky = (below & ((1 << (BITS - shift)) - 1)) != 0
        for j in range(top - 3):
            sticky = sticky or digits[j] != 0
        if sticky:
            window |= 1
        out[r] = np.ldexp(np.float64(window), BITS * (top - 2) - shift)
    return out


@_compiled
def flow_state(starts, counts, deltas, window_ms, cvd_day, cvd, recent_starts, recent_counts, first_window, span):
    """Per window in order: CVD (restarting each UTC day) and the mean trade count of the `span` windows before.

    The recent (start, count) queue drops windows older than `span` windows before the current one; empty windows
    count as 0 and the mean is over at most the windows since the first one. Returns (cvd per window, baseline
    per window, cvd_day, cvd, recent starts, recent counts, first_window).
    """
    n = len(starts)
    out_cvd = np.empty(n, dtype=np.int64)
    baseline = np.empty(n, dtype=np.float64)
    q_start = np.empty(len(recent_starts) + n, dtype=np.int64)
    q_count = np.empty(len(recent_starts) + n, dtype=np.int64)
    q_start[: len(recent_starts)] = recent_starts
    q_count[: len(recent_starts)] = recent_counts
    head, tail = 0, len(recent_starts)
    total = 0
    for j in range(tail):
        total += q_count[j]
    for i in range(n):
        start = starts[i]
        day = start // DAY_MS
        if day != cvd_day:
            cvd_day, cvd = day, 0
        cvd += deltas[i]
        out_cvd[i] = cvd
        if first_window == UNSET:
            first_window = start
        horizon = start - span * window_ms
        while head < tail and q_start[head] < horizon:
            total -= q_count[head]
            head += 1
        slots = min(span, (start - first_window) // window_ms)
        baseline[i] = total / slots if slots else 0.0
        q_start[tail], q_count[tail] = start, counts[i]
        tail += 1
        total += counts[i]
    return (out_cvd, baseline, cvd_day, cvd, q_start[head:tail].copy(), q_count[head:tail].copy(), first_window)
