"""Whole numbers from text: ASCII digits only, never an exception."""

from __future__ import annotations

import pytest

from comfysync.comfy.protocol import node_sort_key
from comfysync.numbers import parse_whole


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("20", 20), ("007", 7), ("9" * 18, 10**18 - 1)]
)
def test_ascii_digits_are_read(text: str, value: int) -> None:
    assert parse_whole(text) == value


@pytest.mark.parametrize("text", ["", "²", "٣", "1²", "-1", "+1", " 1", "1.0", "1e3", "9" * 19])
def test_anything_else_is_none(text: str) -> None:
    assert parse_whole(text) is None


def test_node_ids_of_any_text_sort_without_raising() -> None:
    ids = ["10", "9", "²", "9" * 5000, "2:1", "a"]
    assert sorted(ids, key=node_sort_key)[:3] == ["2:1", "9", "10"]
