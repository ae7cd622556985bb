"""Greenlets: background ones in a group their owner kills, per-request ones bounded."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import gevent
from gevent.pool import Group, Pool

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _log_failure(greenlet: gevent.Greenlet) -> None:
    log.error("background task %s failed", greenlet.name, exc_info=greenlet.exc_info)


class Background:
    """A named group of greenlets owned by one component and killed with it."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.group = Group()

    def spawn(self, func: Callable[..., Any], *args: Any, name: str = "") -> gevent.Greenlet:
        """Start `func(*args)`; pass plain data, never a request or app context."""
        greenlet = self._member(func, args, name)
        greenlet.start()
        return greenlet

    def spawn_later(
        self, seconds: float, func: Callable[..., Any], *args: Any, name: str = ""
    ) -> gevent.Greenlet:
        """Start `func(*args)` in `seconds`, unless killed before."""
        greenlet = self._member(func, args, name)
        greenlet.start_later(seconds)
        return greenlet

    def _member(self, func: Callable[..., Any], args: tuple, name: str) -> gevent.Greenlet:
        greenlet = gevent.Greenlet(func, *args)
        greenlet.name = f"{self.owner}:{name or getattr(func, '__name__', 'task')}"
        greenlet.link_exception(_log_failure)
        self.group.add(greenlet)
        return greenlet

    def kill(self, timeout: float = 2.0) -> None:
        """Stop every greenlet of the group, waiting at most `timeout` seconds."""
        self.group.kill(block=True, timeout=timeout)


@dataclass
class Finished(Generic[R]):
    """One item's end in `bounded_map`: its value, or what it raised, or not done in time."""

    value: R | None = None
    error: BaseException | None = None
    done: bool = True

    def get(self) -> R:
        """The value; re-raises the item's exception."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class _Expired(BaseException):
    """Our own deadline: never caught as a work item's error, nor mistaken for its own."""


def bounded_map(
    work: Callable[[T], R], items: Sequence[T], size: int, *, timeout: float
) -> list[Finished[R]]:
    """Run `work` over `items`, at most `size` at once, all within `timeout` seconds.

    Results come back in the order of `items`. Whatever an item raises is kept
    in its `Finished` (never raised here); an item still running at the
    deadline is killed and reported `done=False`. One item runs in the
    calling greenlet, without a pool: the common case of one output or image.
    """

    def guarded(item: T) -> Finished[R]:
        try:
            return Finished(work(item))
        except Exception as err:  # noqa: BLE001 - handed to the caller to judge
            return Finished(error=err)

    if len(items) == 1:
        try:
            with gevent.Timeout(timeout, _Expired):
                return [guarded(items[0])]
        except _Expired:
            return [Finished(done=False)]
    pool = Pool(max(1, size))
    try:
        greenlets = [pool.spawn(guarded, item) for item in items]
        gevent.joinall(greenlets, timeout=timeout)
        return [g.value if g.ready() else Finished(done=False) for g in greenlets]
    finally:
        pool.kill(block=False)
