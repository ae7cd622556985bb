"""The ComfyUI servers behind the gateway: one (`COMFYUI_URL`) or a fleet.

A fleet is named in `COMFYUI_URLS` or in a small file, `COMFYUI_SERVERS_FILE`
(JSON, or TOML when the name ends in `.toml`). Either way each server gets a
name: clients and view URLs see the name, never the address.

    COMFYUI_URLS=gpu1=http://10.0.0.5:8188;tags=sdxl|flux,gpu2=http://10.0.0.6:8188;max_inflight=1
    COMFYUI_HEADERS_GPU1=Authorization: Bearer abc; X-Team: art

    {"servers": [{"name": "gpu1", "url": "https://gpu1.example", "headers": {...},
                  "max_inflight": 1, "tags": ["sdxl"]}]}
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from .convert import to_http_url
from .reader import ConfigError, Reader, declare, declare_prefix

# The name a lone COMFYUI_URL server has always had: runs recorded before a
# fleet existed name it.
DEFAULT_SERVER_NAME = "default"
HEADERS_PREFIX = declare_prefix("COMFYUI_HEADERS_")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")

declare("COMFYUI_URLS", "COMFYUI_SERVERS_FILE", "FAILOVER_GRACE")


@dataclass(frozen=True)
class ComfyServer:
    """One ComfyUI server: its name, address, request headers, room and tags."""

    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False, hash=False, compare=False)
    max_inflight: int | None = None  # None: COMFYUI_MAX_INFLIGHT
    tags: frozenset[str] = frozenset()


def headers_variable(name: str) -> str:
    """The variable holding a server's request headers: COMFYUI_HEADERS_GPU1 for gpu1."""
    return HEADERS_PREFIX + re.sub(r"[^A-Z0-9]", "_", name.upper())


def read_servers(env: Reader, single_url: str) -> tuple[ComfyServer, ...]:
    """The fleet from the file or COMFYUI_URLS, else the one server at `single_url`.

    :raises ConfigError: naming the variable (or file) with an unusable value.
    """
    path = env.raw("COMFYUI_SERVERS_FILE")
    listed = env.raw("COMFYUI_URLS")
    if path and listed:
        raise ConfigError("Set COMFYUI_URLS or COMFYUI_SERVERS_FILE, not both")
    if path:
        servers = _from_file(path)
        where = f"COMFYUI_SERVERS_FILE {path!r}"
    elif listed:
        servers = [_from_entry(entry, i) for i, entry in enumerate(_split(listed), start=1)]
        where = "COMFYUI_URLS"
    else:
        servers = [ComfyServer(DEFAULT_SERVER_NAME, single_url)]
        where = "COMFYUI_URL"
    if not servers:
        raise ConfigError(f"{where} names no server")
    names = [s.name for s in servers]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ConfigError(f"{where}: server names must be unique, {', '.join(doubled)} repeats")
    return tuple(_with_env_headers(env, s) for s in servers)


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _from_entry(entry: str, index: int) -> ComfyServer:
    """`[name=]url[;max_inflight=N][;tags=a|b]` from COMFYUI_URLS."""
    head, *options = [p.strip() for p in entry.split(";")]
    name, url = f"comfy{index}", head
    if "=" in head and not head.split("=", 1)[0].count("/"):
        name, url = (p.strip() for p in head.split("=", 1))
    values: dict[str, Any] = {"name": name, "url": url}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise ConfigError(f"COMFYUI_URLS: {option!r} should be key=value")
        if key.strip() == "tags":
            values["tags"] = [t for t in value.split("|") if t.strip()]
        else:
            values[key.strip()] = value.strip()
    return _server(values, "COMFYUI_URLS")


def _from_file(path: str) -> list[ComfyServer]:
    where = f"COMFYUI_SERVERS_FILE {path!r}"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f) if path.endswith(".toml") else json.load(f)
    except OSError as err:
        raise ConfigError(f"{where} cannot be read: {err.strerror or err}") from err
    except (ValueError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{where} is not valid {_kind(path)}: {err}") from err
    entries = data.get("servers") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ConfigError(f"{where} must hold a list of servers under 'servers'")
    servers = []
    for i, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: server {i} must be an object")
        servers.append(_server({"name": f"comfy{i}", **entry}, where))
    return servers


def _kind(path: str) -> str:
    return "TOML" if path.endswith(".toml") else "JSON"


def _server(values: dict[str, Any], where: str) -> ComfyServer:
    known = {"name", "url", "headers", "max_inflight", "tags"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown server option {unknown[0]!r}")
    name = str(values["name"])
    if not _NAME.match(name):
        raise ConfigError(f"{where}: server name {name!r} must be letters, digits, '-' or '_'")
    try:
        url = to_http_url(str(values.get("url") or ""))
    except ValueError as err:
        raise ConfigError(f"{where}: server {name}: {err}") from err
    headers = values.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigError(f"{where}: server {name}: 'headers' must map names to strings")
    limit = values.get("max_inflight")
    if limit is not None:
        try:
            limit = int(limit)
            if limit < 0:
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: server {name}: max_inflight must be 0 or more") from None
    tags = values.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) and _TAG.match(t) for t in tags):
        raise ConfigError(f"{where}: server {name}: tags must be short words")
    return ComfyServer(name, url, dict(headers), limit, frozenset(tags))


def _with_env_headers(env: Reader, server: ComfyServer) -> ComfyServer:
    variable = headers_variable(server.name)
    raw = env.prefixed(HEADERS_PREFIX).get(variable, "").strip()
    if not raw:
        return server
    return ComfyServer(
        server.name,
        server.url,
        {**server.headers, **parse_headers(variable, raw)},
        server.max_inflight,
        server.tags,
    )


def parse_headers(variable: str, raw: str) -> dict[str, str]:
    """`Name: value; Other: value`, or a JSON object of names to values."""
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise ConfigError(f"{variable} is not a valid JSON object: {err}") from err
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError(f"{variable} must map header names to strings")
        return {str(k): v for k, v in data.items()}
    headers = {}
    for part in raw.split(";"):
        name, sep, value = part.partition(":")
        if not part.strip():
            continue
        name = name.strip()
        if not sep or not name or any(c in name for c in " \t\r\n"):
            raise ConfigError(f"{variable}: {part.strip()!r} should be 'Header-Name: value'")
        if any(c in value for c in "\r\n"):
            raise ConfigError(f"{variable}: header values cannot hold line breaks")
        headers[name] = value.strip()
    return headers
