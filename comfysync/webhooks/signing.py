"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The signed content is `<webhook-id>.<webhook-timestamp>.<body>`, the MAC
HMAC-SHA256 with the secret's key bytes, sent base64 as `v1,<mac>` in
`webhook-signature`; receivers verify with any Standard Webhooks library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def signature(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` value for one attempt."""
    content = f"{message_id}.{timestamp}.{body}".encode()
    mac = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(key: bytes, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The headers of one attempt; without a key, the id and timestamp only (unsigned)."""
    out = {"webhook-id": message_id, "webhook-timestamp": str(timestamp)}
    if key:
        out["webhook-signature"] = signature(key, message_id, timestamp, body)
    return out
