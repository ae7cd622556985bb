"""Converters: each takes a variable's raw string and returns its value or raises ValueError.

The reader (`config.reader`) wraps every ValueError into a ConfigError that names
the variable, so the messages here say only what was expected.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AllowList = tuple[tuple[str, ...], tuple[IPNetwork, ...]]

# SigV4 presigned URLs cannot live longer than 7 days (AWS, R2, Spaces and MinIO agree).
PRESIGN_MAX_EXPIRES = 7 * 24 * 3600

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def to_bool(raw: str) -> bool:
    """Parse the usual spellings of a boolean flag."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected true/false")


def to_positive_float(raw: str) -> float:
    """Parse a number of seconds (or any quantity) that must be above zero."""
    value = float(raw)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def to_seconds_or_zero(raw: str) -> float:
    """Parse a duration in seconds that may be 0."""
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


def to_positive_int(raw: str) -> int:
    """Parse a whole number above zero."""
    value = int(raw.strip())
    if value <= 0:
        raise ValueError("must be a whole number greater than 0")
    return value


def to_count(raw: str) -> int:
    """Parse a whole number that may be 0."""
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def to_port(raw: str) -> int:
    """Parse a TCP port number."""
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def to_size(raw: str) -> int:
    """Parse a byte count, with an optional K/M/G suffix (binary multiples)."""
    value = raw.strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(value[-1:], 1)
    number = int(float(value[:-1] if scale > 1 else value) * scale)
    if number <= 0:
        raise ValueError("must be a positive size such as 50M")
    return number


def to_list(raw: str) -> tuple[str, ...]:
    """Split a comma-separated list, dropping blanks."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def to_output_url_style(raw: str) -> str:
    """`storage` (links under /output_images) or `mounts` (links through a file mount)."""
    value = raw.strip().lower()
    if value not in ("storage", "mounts"):
        raise ValueError("expected storage or mounts")
    return value


def to_log_format(raw: str) -> str:
    """`plain` or `json`."""
    value = raw.strip().lower()
    if value not in ("plain", "json"):
        raise ValueError("expected plain or json")
    return value


def to_log_level(raw: str) -> str:
    """Accept a standard logging level name."""
    value = raw.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return value


def to_http_url(raw: str) -> str:
    """Normalise an http(s) base URL; a bare `host:port` gets `http://`."""
    value = raw.strip().rstrip("/")
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http(s) URL such as http://127.0.0.1:8188")
    parts.port  # noqa: B018 - raises ValueError on a malformed port
    return value


def to_https_base(raw: str) -> str:
    """A public base URL; a bare domain such as `img.example.com` means https."""
    value = raw.strip()
    return to_http_url(value if "://" in value else "https://" + value)


def to_redis_url(raw: str) -> str:
    """A Redis address: `redis://` or `rediss://` with a host, or `unix://` with a path."""
    value = raw.strip()
    parts = urlsplit(value)
    expected = "expected a redis://, rediss:// or unix:// URL such as redis://127.0.0.1:6379/0"
    if parts.scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise ValueError(expected)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    elif parts.scheme != "unix" or not parts.path:
        raise ValueError(expected)
    return value


def to_account_id(raw: str) -> str:
    """A Cloudflare account id: it becomes part of a host name."""
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9-]+", value):
        raise ValueError("expected the hexadecimal account id from the Cloudflare dashboard")
    return value


def to_base_path(raw: str) -> str:
    """A key prefix without leading or trailing slashes."""
    value = raw.strip().strip("/")
    if any(part in ("", ".", "..") for part in value.split("/")):
        raise ValueError("expected a prefix such as 'outputs' or 'comfy/outputs'")
    return value


def to_presign_expires(raw: str) -> int:
    """Seconds a presigned URL stays valid, within the SigV4 limit of 7 days."""
    value = to_positive_int(raw)
    if value > PRESIGN_MAX_EXPIRES:
        raise ValueError(f"must be at most {PRESIGN_MAX_EXPIRES} (7 days, the SigV4 limit)")
    return value


def to_allow_list(raw: str) -> AllowList:
    """Split `INPUT_ALLOW_HOSTS` into host names and CIDR networks (a bare IP is a /32)."""
    hosts: list[str] = []
    networks: list[IPNetwork] = []
    for item in to_list(raw):
        try:
            networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
        except ValueError:
            name = item.lower().rstrip(".")
            if not name.lstrip(".") or any(c in name for c in "/:@ "):
                raise ValueError(f"{item!r} is neither a host name nor a CIDR") from None
            hosts.append(name)
    return tuple(hosts), tuple(networks)


def to_webhook_secret(raw: str) -> bytes:
    """A Standard Webhooks secret, `whsec_` and base64 (the prefix is optional): its key bytes."""
    text = raw.strip()
    text = text.removeprefix("whsec_")
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be 'whsec_' and base64 (as Standard Webhooks makes)") from None
    if len(key) < 16:
        raise ValueError("must hold at least 16 bytes of key (24+ base64 characters)")
    return key


def to_origins(raw: str) -> tuple[str, ...]:
    """`CORS_ORIGINS`: `*`, or origins as browsers send them (`https://app.example.com`)."""
    origins = []
    for item in to_list(raw):
        if item == "*":
            origins.append(item)
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"{item!r} is not an origin (scheme://host[:port])")
        origins.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(origins)


def to_stored_workflow(root: str, raw: str) -> str:
    """A workflow reference (`name`, `name@alias`) naming a JSON object under `root`."""
    # Imported here, and the catalog only: the store's parameters import this
    # package, and what they need (Pillow, requests) must not load in gunicorn's master.
    from ..errors import GatewayError
    from ..workflows.catalog import Catalog

    ref = raw.strip()
    catalog = Catalog(root)
    try:
        path = catalog.resolve(ref).path
    except GatewayError as err:
        names = ", ".join(catalog.names()) or "none"
        raise ValueError(f"{err.message} (the workflows in {root!r}: {names})") from err
    try:
        with open(path, "rb") as handle:
            graph = json.load(handle)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {ref}: {err}") from err
    if not isinstance(graph, dict):
        raise ValueError(f"{ref} is not a ComfyUI API-format graph")
    return ref
