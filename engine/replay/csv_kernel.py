"""A compiled parse of CSV dump blocks in the canonical form Binance writes, a shortcut before pyarrow's parse.

It accepts only lines whose every field is plainly unambiguous (digits without a sign or leading zeros, decimals
with 1 to 8 decimals, True/False/true/false, '\n' line ends, ASCII), where pyarrow's conversion gives the same
values; on anything else it gives up and the block takes pyarrow's path, which reports bad rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit

INT, DECIMAL, BOOL, SKIP = 0, 1, 2, 3  # field kinds
SLOTS = ("id", "first_id", "last_id", "price", "qty", "time", "is_buyer_maker")  # output rows, by column name
_FIELDS = {
    "id": INT, "first_id": INT, "last_id": INT, "time": INT, "price": DECIMAL, "qty": DECIMAL,
    "is_buyer_maker": BOOL, "is_best_match": BOOL, "quote_qty": SKIP,
}  # is_best_match is checked as pyarrow checks it, not kept; quote_qty is not read
_MAX_INT_DIGITS = 18  # below 10**18: fits int64
_MAX_WHOLE_DIGITS = 10  # a decimal below 10**10 fits int64 in units of 1e-8
_DECIMALS = 8
_COMMA, _NEWLINE, _DOT, _CR = 44, 10, 46, 13


def layout(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per CSV column its field kind and output row (-1: not kept)."""
    kinds = np.array([_FIELDS[name] for name in names], dtype=np.int64)
    slots = np.array([SLOTS.index(name) if name in SLOTS else -1 for name in names], dtype=np.int64)
    return kinds, slots


@njit(cache=True, nogil=True)
def _digits(view, pos, value):
    """Digits from pos: (position after them, value extended by them, how many)."""
    start = pos
    while 48 <= view[pos] <= 57:
        value = value * 10 + np.int64(view[pos] - 48)
        pos += 1
    return pos, value, pos - start


@njit(cache=True, nogil=True)
def _word(view, pos, word):
    """Whether the bytes at pos are `word` (its first letter in either case)."""
    if pos + len(word) >= len(view) or view[pos] | 32 != word[0]:
        return False
    k = 1
    while k < len(word) and view[pos + k] == word[k]:
        k += 1
    return k == len(word)


@njit(cache=True, nogil=True)
def parse_block(view, kinds, slots):
    """The rows of a block of whole lines (ending with '\n') as (int64 values by SLOTS, ok); ok is False (and the
    values unusable) when any line is not in the canonical form."""
    true_word = np.array([116, 114, 117, 101], dtype=np.uint8)
    false_word = np.array([102, 97, 108, 115, 101], dtype=np.uint8)
    n = len(view)
    rows = 0
    for k in range(n):
        rows += view[k] == _NEWLINE
    out = np.zeros((len(SLOTS), rows), dtype=np.int64)
    if n == 0 or view[n - 1] != _NEWLINE:
        return out, False
    last = len(kinds) - 1
    pos = 0
    for r in range(rows):
        for c in range(len(kinds)):
            kind = kinds[c]
            value = 0
            if kind in (INT, DECIMAL):
                lead = view[pos]
                pos, value, count = _digits(view, pos, value)
                if count == 0 or (count > 1 and lead == 48):
                    return out, False
                if count > (_MAX_INT_DIGITS if kind == INT else _MAX_WHOLE_DIGITS):
                    return out, False
                if kind == DECIMAL:
                    decimals = 0
                    if view[pos] == _DOT:
                        pos, value, decimals = _digits(view, pos + 1, value)
                        if decimals == 0 or decimals > _DECIMALS:
                            return out, False
                    for _ in range(_DECIMALS - decimals):
                        value *= 10
            elif kind == BOOL:
                if _word(view, pos, true_word):
                    value = 1
                    pos += len(true_word)
                elif _word(view, pos, false_word):
                    pos += len(false_word)
                else:
                    return out, False
            else:
                while view[pos] != _COMMA and view[pos] != _NEWLINE:
                    if view[pos] == _CR or view[pos] >= 128:
                        return out, False
                    pos += 1
            if view[pos] != (_NEWLINE if c == last else _COMMA):
                return out, False
            pos += 1
            if slots[c] >= 0:
                out[slots[c], r] = value
    return out, True
