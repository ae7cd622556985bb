"""API keys: when `API_KEYS` is set, every `/api` route needs one of them."""

from __future__ import annotations

import hmac

from flask import current_app, request

from .errors import Unauthorized


def require_api_key() -> None:
    """`before_request` hook: check `Authorization: Bearer <key>` in constant time.

    :raises Unauthorized: when keys are configured and none matches.
    """
    keys: tuple[str, ...] = current_app.extensions["comfysync"].settings.service.api_keys
    # OPTIONS too: answered without a key it told anyone every route's methods.
    if not keys:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    supplied = token.strip().encode() if scheme.lower() == "bearer" else b""
    matched = False
    for key in keys:  # compare against every key, so timing reveals nothing
        matched |= hmac.compare_digest(supplied, key.encode())
    if not matched:
        raise Unauthorized()
