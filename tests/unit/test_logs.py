"""JSON log lines: the fields a log pipeline indexes, from wherever the line was logged."""

from __future__ import annotations

import json
import logging

import gevent
from flask import Flask, g

from comfysync.logs import JsonFormatter, run_context


def line(message: str, *args: object) -> dict:
    record = logging.LogRecord("comfysync.x", logging.WARNING, __file__, 1, message, args, None)
    return json.loads(JsonFormatter().format(record))


def test_a_line_has_time_level_logger_message() -> None:
    entry = line("run %s: %s", "r1", "ok")
    assert entry["message"] == "run r1: ok" and entry["level"] == "WARNING"
    assert entry["logger"] == "comfysync.x" and entry["time"].endswith("Z")
    assert "run_id" not in entry and "request_id" not in entry


def test_run_fields_belong_to_the_greenlet_that_set_them() -> None:
    seen: dict[str, dict] = {}

    def work(name: str) -> None:
        with run_context(run_id=name, prompt_id=f"p-{name}", server="gpu1"):
            gevent.sleep(0.01)  # the other greenlet runs meanwhile
            seen[name] = line("x")

    gevent.joinall([gevent.spawn(work, "a"), gevent.spawn(work, "b")])
    assert seen["a"]["run_id"] == "a" and seen["b"]["run_id"] == "b"
    assert seen["a"]["prompt_id"] == "p-a" and seen["a"]["server"] == "gpu1"
    assert "run_id" not in line("outside")


def test_the_request_id_of_the_request_being_answered() -> None:
    app = Flask(__name__)
    with app.test_request_context("/"):
        g.request_id = "req-7"
        assert line("x")["request_id"] == "req-7"
