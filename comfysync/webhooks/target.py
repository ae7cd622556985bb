"""What a request's `"webhook"` asks for: a receiver URL and the events it wants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import BadRequest

SUCCEEDED = "run.succeeded"
FAILED = "run.failed"
CANCELLED = "run.cancelled"
PROGRESS = "run.progress"
EVENTS = (SUCCEEDED, FAILED, CANCELLED, PROGRESS)
DEFAULT_EVENTS = (SUCCEEDED, FAILED, CANCELLED)
# Run event types -> webhook event types.
OF_RUN_EVENT = {"succeeded": SUCCEEDED, "failed": FAILED, "cancelled": CANCELLED}
_MAX_URL = 2048


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    events: tuple[str, ...] = DEFAULT_EVENTS

    def wants(self, event: str) -> bool:
        return event in self.events


def check_url(url: Any, field: str = "webhook") -> str:
    """An absolute http(s) URL with a host (where it may point is checked when sending).

    :raises BadRequest: anything else.
    """
    if not isinstance(url, str) or not url.strip() or len(url) > _MAX_URL:
        raise BadRequest(
            f"'{field}' must be an http(s) URL of at most {_MAX_URL} characters", field=field
        )
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise BadRequest(f"'{field}' is not a valid URL", field=field) from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise BadRequest(f"'{field}' must be an http(s) URL with a host", field=field)
    if parts.username is not None or parts.password is not None:
        raise BadRequest(f"'{field}' must not carry credentials", field=field)
    return url


def read_target(body: dict[str, Any], default_url: str) -> WebhookTarget | None:
    """The webhook of a request: `"webhook": URL` or `{"url", "events"}`, else the default.

    `"webhook": null` or `false` turns the default off for this run.

    :raises BadRequest: a malformed webhook, or `{"events"}` with no URL and no default.
    """
    if "webhook" not in body:
        return WebhookTarget(default_url) if default_url else None
    asked = check_webhook(body["webhook"])
    if asked is None:
        return None
    url, events = asked
    return WebhookTarget(url or check_url(default_url, "webhook.url"), events)


def check_webhook(raw: Any) -> tuple[str | None, tuple[str, ...]] | None:
    """A request's `"webhook"` value: its URL (None: the default's) and events; None for off.

    :raises BadRequest: naming the field.
    """
    if raw is None or raw is False:
        return None
    if isinstance(raw, str):
        return check_url(raw), DEFAULT_EVENTS
    if not isinstance(raw, dict):
        raise BadRequest('\'webhook\' must be a URL or {"url", "events"}', field="webhook")
    unknown = raw.keys() - {"url", "events"}
    if unknown:
        raise BadRequest(
            f"unknown 'webhook' field(s): {', '.join(sorted(map(str, unknown)))}", field="webhook"
        )
    url = check_url(raw["url"], "webhook.url") if raw.get("url") else None
    events = raw.get("events", list(DEFAULT_EVENTS))
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(e, str) and e in EVENTS for e in events)
    ):
        raise BadRequest(
            f"'webhook.events' must be a list of {', '.join(EVENTS)}", field="webhook.events"
        )
    return url, tuple(dict.fromkeys(events))


def stored_target(request: dict[str, Any], default_url: str) -> WebhookTarget | None:
    """The webhook of a recorded request (checked when it was accepted)."""
    try:
        return read_target(request, default_url)
    except BadRequest:
        return None
