"""Whether one ComfyUI server is up, as this process sees it, and what happens when it is not.

A server is down when its WebSocket is lost *and* `GET /system_stats` fails:
a dropped socket alone (a proxy's idle cut) is not an outage. A down server
gets nothing new (the router skips it) and is probed with backoff until it
answers again.

Failover of the prompts this process watches on it, when another server is up:
- not started yet: taken back at once and tried elsewhere;
- executing: tried elsewhere once the server has been down `grace` seconds.
A server that comes back within the grace settles its prompts itself (the
watcher reconciles with its history). Every prompt taken back is cancelled on
the server when it answers again, so no attempt runs on two live servers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent
from gevent.event import Event

from ..errors import GatewayError, ServerDown
from ..greenlets import Background
from .client import ComfyClient
from .watcher import ComfyWatcher

log = logging.getLogger(__name__)

PROBE_FIRST = 0.5  # seconds between probes of a down server, doubling
PROBE_MAX = 10.0


class ServerHealth:
    """Up/down for one server in this process, its probes, and failover of its prompts."""

    def __init__(
        self, name: str, client: ComfyClient, watcher: ComfyWatcher, *, grace: float
    ) -> None:
        self.name = name
        self.client = client
        self.watcher = watcher
        self.grace = grace
        self.up = True  # until a probe says otherwise: submits fail fast if it is not
        self.down_since: float | None = None  # monotonic
        self.last_error: str | None = None
        self.taken_back: set[str] = set()  # prompt ids to cancel there once it answers
        self.on_up: Callable[[], None] | None = None  # a server came back: dispatch to it
        # Whether another server is up to take its prompts; without one (a single
        # server, or the whole fleet down) they wait for it to come back, as they
        # always have, instead of failing over to nowhere.
        self.elsewhere: Callable[[], bool] = lambda: False
        self._lost = Event()
        self.background = Background(f"health-{name}")
        watcher.on_connection = self._connection_changed

    def start(self) -> None:
        """Probe in this process (again after a fork)."""
        self.background.kill()
        self.background = Background(f"health-{self.name}")
        self.background.spawn(self._probe_forever, name="probe")

    def stop(self) -> None:
        """Stop probing."""
        self.background.kill()

    def _connection_changed(self, connected: bool) -> None:
        if connected:
            self._mark_up()
        else:
            self._lost.set()  # probe now: down at once if HTTP fails too

    def _probe_forever(self) -> None:
        delay = PROBE_FIRST
        while True:
            self._lost.wait(timeout=delay if not self.watcher.connected else None)
            self._lost.clear()
            if self.watcher.connected:
                delay = PROBE_FIRST
                continue
            try:
                self.client.probe()  # without retries: down now, not after their backoff
            except GatewayError as err:
                # Shown in /api/servers: the server's name, never its address.
                self._mark_down(str(err).replace(self.client.base_url, self.name))
                delay = min(delay * 2, PROBE_MAX)
                continue
            self._mark_up()  # HTTP answers: the socket will follow
            delay = PROBE_FIRST

    def _mark_down(self, error: str) -> None:
        self.last_error = error
        if not self.up:
            self._fail_over(started=time.monotonic() - (self.down_since or 0) >= self.grace)
            return
        self.up = False
        self.down_since = time.monotonic()
        log.warning("ComfyUI server %s is down: %s", self.name, error)
        self._fail_over(started=False)
        if self.grace > 0:
            self.background.spawn_later(self.grace, self._grace_over, name="grace")
        else:
            self._fail_over(started=True)

    def _grace_over(self) -> None:
        if not self.up:
            self._fail_over(started=True)

    def _fail_over(self, *, started: bool) -> None:
        """Give up this process's prompts on the server: queued ones, and with `started` all."""
        if not self.elsewhere():
            return
        for wait in list(self.watcher.waits.values()):
            if not wait.submitted or wait.settled or (wait.started_ms is not None and not started):
                continue
            self.taken_back.add(wait.prompt_id)
            state = "executing" if wait.started_ms is not None else "queued"
            log.info("prompt %s (%s on %s): trying it elsewhere", wait.prompt_id, state, self.name)
            down = f"ComfyUI server {self.name} went down"
            wait.fail(ServerDown(down, prompt_id=wait.prompt_id, server=self.name))

    def _mark_up(self) -> None:
        if self.up:
            return
        down = time.monotonic() - (self.down_since or time.monotonic())
        self.up = True
        self.down_since = None
        log.info("ComfyUI server %s is back after %.1f s", self.name, down)
        if self.taken_back:
            self.background.spawn(self._cancel_taken_back, name="take-back")
        if self.on_up is not None:
            self.on_up()

    def _cancel_taken_back(self) -> None:
        for prompt_id in list(self.taken_back):
            try:
                self.client.cancel(prompt_id)
            except GatewayError as err:
                log.warning("could not cancel prompt %s on %s: %s", prompt_id, self.name, err)
                return  # down again: the next comeback tries again
            self.taken_back.discard(prompt_id)
            gevent.idle()
