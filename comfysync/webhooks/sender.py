"""Delivering the outbox: every pending delivery of the store, until it lands or expires.

Each process runs one sender over the shared store. A delivery is leased
while an attempt is under way, so two senders never send it at once, and a
sender killed mid-attempt leaves it to be sent again once the lease is over
(at least once, always with the same `webhook-id`). Attempts run in a pool
of their own, each bounded by a timeout: a slow receiver holds a slot, never
a generation.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import urllib3
from gevent.pool import Pool
from urllib3.exceptions import HTTPError as Urllib3Error

from .. import metrics
from ..config import WebhookSettings
from ..errors import GatewayError
from ..greenlets import Background
from ..inputs.errors import BlockedAddress, Unreachable
from ..inputs.fetch import (
    AddressPolicy,
    Resolver,
    default_ca_bundle,
    host_header,
    pick_address,
    pinned_pool,
    request_target,
    system_resolver,
)
from ..numbers import parse_whole
from ..runs.base import DELIVERED, GAVE_UP, PENDING, Delivery, RunStore
from . import signing

log = logging.getLogger(__name__)

# The sender looks at the outbox at least this often (retries come due, wake-ups missed).
IDLE_CHECK = 1.0
# The longest wait between two attempts, whatever the backoff says.
MAX_DELAY = 3600.0
_MAX_ERROR = 300


@dataclass(frozen=True)
class Attempt:
    """How one attempt went: the HTTP status (None: no answer), an error, a Retry-After."""

    status: int | None
    error: str | None = None
    retry: bool = False
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender:
    """Sends due deliveries of the store, `concurrency` at a time, in this process."""

    def __init__(
        self,
        store: RunStore,
        settings: WebhookSettings,
        *,
        resolver: Resolver = system_resolver,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.policy = AddressPolicy(settings.allow_hosts, settings.allow_networks)
        self.resolver = resolver
        self.clock = clock
        self.ca_certs = default_ca_bundle()
        self.timeout = urllib3.Timeout(connect=settings.timeout, read=settings.timeout)
        # An attempt connects, sends and reads within 2 timeouts; the lease outlasts it.
        self.lease = 3 * settings.timeout + 5
        self.background = Background("webhooks")
        self.pool = Pool(settings.concurrency)
        self.sent = 0  # attempts made by this process, for status and benchmarks
        self._pid: int | None = None

    def start(self) -> None:
        """Start delivering in this process (again after a fork)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.background = Background("webhooks")
        self.pool = Pool(self.settings.concurrency)
        self.background.spawn(self._deliver_forever, name="outbox")

    def stop(self) -> None:
        """Stop: attempts under way are dropped, their leases run out, another sender retries."""
        self.background.kill()
        self.pool.kill(block=False)
        self._pid = None

    def _deliver_forever(self) -> None:
        while True:
            try:
                if self._take_due():
                    continue
                wait = IDLE_CHECK
                # With every slot busy, a finished attempt wakes us; asking the
                # outbox meanwhile found the same due deliveries 200 times a second.
                soonest = self.store.next_delivery_at() if self.pool.free_count() > 0 else None
                if soonest is not None:
                    wait = min(IDLE_CHECK, max(0.005, soonest - self.clock()))
            except GatewayError as err:
                log.warning("webhooks: could not read the outbox: %s", err)
                wait = IDLE_CHECK
            self.store.wait_for_deliveries(wait)

    def _take_due(self) -> bool:
        """Start attempts for due deliveries while there is room; whether the pool is full."""
        free = self.pool.free_count()
        if free <= 0:
            return False
        due = self.store.due_deliveries(self.clock(), lease=self.lease, limit=free)
        for delivery in due:
            self.pool.spawn(self._attempt, delivery)
        return len(due) == free

    # -- one attempt ------------------------------------------------------------------

    def _attempt(self, delivery: Delivery) -> None:
        try:
            attempt = self.send(delivery)
            self._record(delivery, attempt)
        except GatewayError as err:
            log.warning("webhook %s: could not record the attempt: %s", delivery.id, err)
        finally:
            self.store.waiters.notify([self.store.waiters.OUTBOX])  # a slot is free

    def send(self, delivery: Delivery) -> Attempt:
        """POST the delivery once, signed now; never raises."""
        self.sent += 1
        try:
            late = Unreachable("the receiver took too long")
            with gevent.Timeout(2 * self.settings.timeout, late):
                return self._post(delivery)
        except BlockedAddress as err:
            return Attempt(None, f"refused: {err}")
        except Unreachable as err:
            return Attempt(None, str(err), retry=True)

    def _post(self, delivery: Delivery) -> Attempt:
        scheme, host, port, ip = pick_address(delivery.url, self.policy, self.resolver)
        pool = pinned_pool(scheme, host, port, ip, timeout=self.timeout, ca_certs=self.ca_certs)
        body = delivery.body.encode()
        headers = signing.headers(
            self.settings.secret, delivery.id, int(self.clock()), delivery.body
        ) | {
            "Host": host_header(scheme, host, port),
            "Content-Type": "application/json",
            "User-Agent": "comfysync-webhooks/1",
        }
        try:
            response = pool.urlopen(
                "POST",
                request_target(delivery.url),
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            try:
                response.read(64 << 10)  # what the receiver says does not matter; its status does
            finally:
                response.close()
        except (Urllib3Error, OSError) as err:
            raise Unreachable(f"no answer from {host!r} ({type(err).__name__})") from err
        finally:
            pool.close()
        status = response.status
        if 200 <= status < 300:
            return Attempt(status)
        retry = status == 429 or status >= 500
        wait = _retry_after(response.headers.get("Retry-After"), self.clock()) if retry else None
        kind = "redirect not followed" if 300 <= status < 400 else "answered"
        return Attempt(status, f"{kind} HTTP {status}", retry=retry, retry_after=wait)

    def _record(self, delivery: Delivery, attempt: Attempt) -> None:
        now = self.clock()
        delivery.attempts += 1
        delivery.last_status = attempt.status
        delivery.last_error = attempt.error[:_MAX_ERROR] if attempt.error else None
        if attempt.delivered:
            delivery.state = DELIVERED
            delivery.delivered_at = now
        elif attempt.retry:
            delay = self.backoff(delivery.attempts, attempt.retry_after)
            if now + delay <= delivery.created_at + self.settings.retry_hours * 3600:
                delivery.next_at = now + delay
            else:
                delivery.state = GAVE_UP
        else:
            delivery.state = GAVE_UP
        outcome = "delivered" if attempt.delivered else delivery.state
        metrics.WEBHOOKS.labels("retrying" if outcome == PENDING else outcome).inc()
        if delivery.state == GAVE_UP:
            log.warning(
                "webhook %s to %s for run %s: gave up after %d attempt(s): %s",
                delivery.id,
                delivery.url,
                delivery.run_id,
                delivery.attempts,
                delivery.last_error,
            )
        self.store.save_delivery(delivery)

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: Retry-After when given, else doubling with jitter."""
        if retry_after is not None:
            return min(MAX_DELAY, max(0.0, retry_after))
        delay = self.settings.retry_base * 2 ** min(attempts - 1, 30)
        # Full jitter over the upper half: receivers back up together, they should not retry so.
        return min(MAX_DELAY, delay * random.uniform(0.5, 1.0))


def _retry_after(value: str | None, now: float) -> float | None:
    """Retry-After in seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    seconds = parse_whole(value.strip())
    if seconds is not None:
        return float(seconds)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)
