"""Limits for client-supplied images, read from the environment."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from comfysync.config import ConfigError, to_list, to_positive_float, to_size

T = TypeVar("T")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AllowList = tuple[tuple[str, ...], tuple[IPNetwork, ...]]


@dataclass(frozen=True)
class InputSettings:
    """Every limit on fetching, decoding and checking input images."""

    max_bytes: int = 20 << 20
    max_pixels: int = 40_000_000  # about 6300 x 6300; Pillow's own bomb limit is 89M
    fetch_connect_timeout: float = 5.0
    fetch_timeout: float = 30.0  # per socket read, and for the whole fetch of one image
    max_redirects: int = 3
    fetch_concurrency: int = 4
    max_images: int = 8
    allow_hosts: tuple[str, ...] = ()  # host names (".example.com" = subdomains too)
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> InputSettings:
        """Build the settings from `INPUT_*` variables; unset ones keep their defaults.

        :raises ConfigError: naming the first variable whose value is unusable.
        """

        def get(name: str, default: T, convert: Callable[[str], T]) -> T:
            raw = env.get(name)
            if raw is None or not raw.strip():
                return default
            try:
                return convert(raw)
            except ValueError as err:
                raise ConfigError(f"{name}={raw!r} is invalid: {err}") from err

        no_allow_list: AllowList = ((), ())
        hosts, networks = get("INPUT_ALLOW_HOSTS", no_allow_list, to_allow_list)
        return cls(
            max_bytes=get("INPUT_MAX_BYTES", cls.max_bytes, to_size),
            max_pixels=get("INPUT_MAX_PIXELS", cls.max_pixels, _to_positive_int),
            fetch_connect_timeout=get(
                "INPUT_FETCH_CONNECT_TIMEOUT", cls.fetch_connect_timeout, to_positive_float
            ),
            fetch_timeout=get("INPUT_FETCH_TIMEOUT", cls.fetch_timeout, to_positive_float),
            max_redirects=get("INPUT_MAX_REDIRECTS", cls.max_redirects, _to_count),
            fetch_concurrency=get(
                "INPUT_FETCH_CONCURRENCY", cls.fetch_concurrency, _to_positive_int
            ),
            max_images=get("INPUT_MAX_IMAGES", cls.max_images, _to_positive_int),
            allow_hosts=hosts,
            allow_networks=networks,
        )


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


def _to_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _to_count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value
