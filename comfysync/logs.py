"""Logging: plain lines, or one JSON object a line (`LOG_FORMAT=json`) for log pipelines.

A JSON line carries `run_id`, `prompt_id`, `server` and `request_id` when
they are known where the line was logged: the request id from the request
being answered, the run's fields from `run_context`, which the dispatcher
enters for the greenlet seeing a run through (gevent gives each greenlet its
own context variables, so concurrent runs never mix).
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_RUN: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("run", default=None)


@contextmanager
def run_context(**fields: str | None) -> Iterator[None]:
    """Tag this greenlet's log lines with a run's `run_id`, `prompt_id`, `server`."""
    token = _RUN.set({k: v for k, v in fields.items() if v is not None})
    try:
        yield
    finally:
        _RUN.reset(token)


def _request_id() -> str | None:
    from flask import g, has_request_context

    return g.get("request_id") if has_request_context() else None


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, message, context."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_RUN.get() or {})
        request_id = _request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Give the root logger a handler in `fmt` ("json" or "plain") unless it has one.

    Under gunicorn with LOG_FORMAT=json, `gunicorn_logconfig` set it up already.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(PLAIN))
    logging.basicConfig(level=level, handlers=[handler])


def gunicorn_logconfig(level: str) -> dict[str, object]:
    """gunicorn's `logconfig_dict` for JSON lines from its own loggers too."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"console": handler},
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }
