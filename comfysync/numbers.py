"""Whole numbers read from text a client or a server sent: query strings, ids, headers."""

from __future__ import annotations

# 18 digits always fit a signed 64-bit integer, and never trip Python's limit
# on converting long digit strings (int() of thousands of digits raises).
_MAX_DIGITS = 18


def parse_whole(text: str) -> int | None:
    """`text` as a whole number written in ASCII digits, None for anything else.

    `str.isdigit()` alone accepts "²" (which `int()` then refuses) and "٣"
    (which it reads as 3): neither is a number in a URL, a node id or a header.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        return None
    return int(text)
