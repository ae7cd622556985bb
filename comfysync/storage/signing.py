"""Signed, expiring URLs for outputs kept on local disk (`LOCAL_URL_SECRET`).

A URL carries `expires` (epoch seconds) and `sig`, an HMAC-SHA256 of the
file's key and that time: neither can be changed without the secret, and
the file server refuses what is unsigned, tampered with or expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlencode

from ..errors import Forbidden
from ..numbers import parse_whole


class BadSignature(Forbidden):
    error_type = "bad_signature"
    description = "This output URL is not signed, or not by this gateway"


class ExpiredUrl(Forbidden):
    error_type = "expired_url"
    description = "This output URL has expired; ask for the run again for a fresh one"


class UrlSigner:
    """Signs output keys for `ttl` seconds with `secret`."""

    def __init__(self, secret: bytes, ttl: int) -> None:
        self.secret = secret
        self.ttl = ttl

    def _mac(self, key: str, expires: int) -> str:
        mac = hmac.new(self.secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, key: str, now: float | None = None) -> str:
        """The query string (`expires=…&sig=…`) that opens `key` for `ttl` seconds."""
        expires = int((time.time() if now is None else now) + self.ttl)
        return urlencode({"expires": expires, "sig": self._mac(key, expires)})

    def verify(self, key: str, expires: str | None, sig: str | None) -> None:
        """:raises BadSignature: unsigned or tampered with. :raises ExpiredUrl: past its time."""
        stamp = parse_whole(expires or "")
        if stamp is None or not sig or not hmac.compare_digest(sig, self._mac(key, stamp)):
            raise BadSignature()
        if stamp < time.time():
            raise ExpiredUrl()
