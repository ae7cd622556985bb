"""Rate limits per API key (or per client address when keys are off).

A fixed window per bucket: simple, one counter per window, and the same
answer in every worker when the counters live in Redis (`REDIS_URL`); else
each worker process counts for itself (the limit is then per worker). A
counter store that fails lets the request through: a limiter outage must
not stop generation.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, g, request

from .auth import current_key
from .errors import RateLimited
from .keys import Rate

log = logging.getLogger(__name__)

# Past windows are forgotten this often (in-process counters).
_SWEEP_EVERY = 60.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window ends

    def headers(self) -> dict[str, str]:
        """The `RateLimit-*` headers of the IETF draft (as Flask-Limiter and GitHub send)."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


class MemoryCounters:
    """Window counters in this process."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        self.swept = time.monotonic()

    def incr(self, bucket: str, window: int, start: int) -> int:
        now = time.monotonic()
        if now - self.swept > _SWEEP_EVERY:
            self.swept = now
            current = int(time.time())
            self.counts = {k: v for k, v in self.counts.items() if k[1] + 86400 > current}
        key = (f"{bucket}:{window}", start)
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]


class RedisCounters:
    """Window counters in Redis, shared by every worker and instance: INCR, then EXPIRE."""

    def __init__(self, url: str, prefix: str = "comfysync:ratelimit:") -> None:
        import redis

        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def incr(self, bucket: str, window: int, start: int) -> int:
        key = f"{self.prefix}{bucket}:{window}:{start}"
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, window + 1)
        count, _ = pipe.execute()
        return int(count)


class RateLimiter:
    """Counts requests per bucket and window; `check` says whether one more may go."""

    def __init__(self, counters: Any) -> None:
        self.counters = counters

    def check(self, bucket: str, rate: Rate, now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        start = int(now // rate.window * rate.window)
        reset = max(1, math.ceil(start + rate.window - now))
        try:
            count = self.counters.incr(bucket, rate.window, start)
        except Exception as err:  # noqa: BLE001 - any counter failure lets the request through
            log.warning("rate limit counters unavailable (%s); not limiting", err)
            return Verdict(True, rate.limit, rate.limit, reset)
        return Verdict(count <= rate.limit, rate.limit, max(0, rate.limit - count), reset)


def build_limiter(redis_url: str) -> RateLimiter:
    return RateLimiter(RedisCounters(redis_url) if redis_url else MemoryCounters())


def check_rate() -> None:
    """`before_request` hook (after the key check): count this request against its limit.

    :raises RateLimited: the bucket's window is full; with Retry-After and RateLimit-*.
    """
    gateway = current_app.extensions["comfysync"]
    key = current_key()
    rate = (key.rate_limit if key is not None else None) or gateway.settings.service.rate_limit
    if rate is None:
        return
    bucket = f"key:{key.name}" if key is not None else f"addr:{request.remote_addr}"
    verdict = gateway.limiter.check(bucket, rate)
    g.rate_limit = verdict
    if not verdict.allowed:
        err = RateLimited(f"More than {rate} requests; retry in {verdict.reset} s", limit=str(rate))
        err.headers.update(verdict.headers() | {"Retry-After": str(verdict.reset)})
        raise err


def add_rate_headers(response: Response) -> Response:
    """`after_request` hook: the RateLimit-* headers of a counted request."""
    verdict = g.get("rate_limit")
    if verdict is not None:
        for name, value in verdict.headers().items():
            response.headers.setdefault(name, value)
    return response
