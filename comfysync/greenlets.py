"""Background greenlets: spawned into a group their owner kills, failures logged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.pool import Group

log = logging.getLogger(__name__)


def _log_failure(greenlet: gevent.Greenlet) -> None:
    log.error("background task %s failed", greenlet.name, exc_info=greenlet.exc_info)


class Background:
    """A named group of greenlets owned by one component and killed with it."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.group = Group()

    def spawn(self, func: Callable[..., Any], *args: Any, name: str = "") -> gevent.Greenlet:
        """Start `func(*args)`; pass plain data, never a request or app context."""
        greenlet = gevent.Greenlet(func, *args)
        greenlet.name = f"{self.owner}:{name or getattr(func, '__name__', 'task')}"
        greenlet.link_exception(_log_failure)
        self.group.start(greenlet)
        return greenlet

    def kill(self, timeout: float = 2.0) -> None:
        """Stop every greenlet of the group, waiting at most `timeout` seconds."""
        self.group.kill(block=True, timeout=timeout)
