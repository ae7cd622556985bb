"""How records are written: orjson, with `json` for what orjson refuses; read with `json`."""

from __future__ import annotations

import json

from comfysync.runs import RunRecord
from comfysync.runs.base import dump_json


def test_a_record_round_trips() -> None:
    record = RunRecord.new({"prompt": "ünïcode ✓", "seed": 2**63 - 1}, graph={"3": {"inputs": {}}})
    assert RunRecord.from_json(record.to_json()) == record


def test_integers_past_64_bits_are_kept_exactly() -> None:
    value = {"seed": 10**40, "nested": [2**64]}
    assert json.loads(dump_json(value)) == value
