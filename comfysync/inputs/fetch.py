"""Fetch an image URL without letting clients reach internal services (SSRF).

Each hop is resolved once, every address is checked, and the connection goes to the
checked address itself (a urllib3 pool pinned to the IP, with the Host header, TLS SNI
and certificate check still on the original name), so a DNS answer that changes
between check and connect (rebinding) cannot redirect us. Redirects are followed by
hand so that every hop is checked the same way. urllib3 is used directly rather than a
`requests.Session`: these are arbitrary client URLs, not one upstream, and requests
would honour `HTTP(S)_PROXY`, which would defeat the pinning.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import SSLError

from comfysync.inputs.decode import check_scheme
from comfysync.inputs.errors import BlockedAddress, TooLarge, Unreachable
from comfysync.inputs.settings import InputSettings, IPNetwork
from comfysync.numbers import parse_whole

Resolver = Callable[[str, int], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 << 10
# Cloud metadata endpoints that sit in otherwise public ranges.
_ALWAYS_BLOCKED = (ipaddress.ip_network("168.63.129.16/32"),)  # Azure wire server
# Prefixes whose last 32 bits are an IPv4 address that a translator (NAT64,
# SIIT) or a stack may end up reaching: judge the embedded address instead.
_EMBEDS_IPV4 = tuple(
    ipaddress.ip_network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96")
)


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve `host` with getaddrinfo (cooperative once gevent has patched socket).

    :raises Unreachable: when the name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise Unreachable(f"cannot resolve host {host!r}") from err
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(ip: IPAddress) -> bool:
    """True unless `ip` is loopback, private, link-local, metadata, reserved or multicast."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_loopback or ip.is_unspecified or ip.is_site_local:
            return False
        # Addresses that embed an IPv4 one are judged by the embedded address.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and any(ip in net for net in _EMBEDS_IPV4):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    if ip.is_multicast or ip.is_unspecified or any(ip in net for net in _ALWAYS_BLOCKED):
        return False
    return ip.is_global


class AddressPolicy:
    """Decides which hosts and addresses may be fetched: public ones plus the allow-list."""

    def __init__(self, hosts: Sequence[str] = (), networks: Sequence[IPNetwork] = ()) -> None:
        self.hosts = tuple(h.lower().rstrip(".") for h in hosts)
        self.networks = tuple(networks)

    @classmethod
    def from_settings(cls, settings: InputSettings) -> AddressPolicy:
        """The policy that `INPUT_ALLOW_HOSTS` describes."""
        return cls(settings.allow_hosts, settings.allow_networks)

    def host_allowed(self, host: str) -> bool:
        """True if `host` is allow-listed by name ('.example.com' covers subdomains)."""
        name = host.lower().rstrip(".")
        for allowed in self.hosts:
            if name == allowed.lstrip(".") or (allowed.startswith(".") and name.endswith(allowed)):
                return True
        return False

    def address_allowed(self, ip: IPAddress) -> bool:
        """True if `ip` is public or inside an allow-listed network."""
        if any(ip.version == net.version and ip in net for net in self.networks):
            return True
        return is_public_address(ip)


class ImageFetcher:
    """Downloads image URLs under the limits and address policy of `InputSettings`."""

    def __init__(
        self,
        settings: InputSettings,
        resolver: Resolver = system_resolver,
        ca_certs: str | None = None,
    ) -> None:
        self.settings = settings
        self.policy = AddressPolicy.from_settings(settings)
        self.resolver = resolver
        self.ca_certs = ca_certs or default_ca_bundle()
        self.timeout = urllib3.Timeout(
            connect=settings.fetch_connect_timeout, read=settings.fetch_timeout
        )

    def fetch(self, url: str) -> bytes:
        """Return the body of `url`, following up to `max_redirects` checked redirects.

        :raises BlockedAddress: bad scheme, or a hop resolves to a disallowed address.
        :raises Unreachable: DNS, connection, TLS, timeout, HTTP status or redirect errors.
        :raises TooLarge: the body is over `max_bytes`.
        """
        deadline = time.monotonic() + self.settings.fetch_timeout
        for _hop in range(self.settings.max_redirects + 1):
            response, pool = self._request(url)
            try:
                location = response.headers.get("Location")
                if response.status in _REDIRECTS and location:
                    url = urljoin(url, location.strip())
                    continue
                if response.status != 200:
                    raise Unreachable(f"the server answered HTTP {response.status}")
                return self._read(response, deadline)
            finally:
                # Close the response too: its file object keeps the socket open even
                # after the pool has closed the connection.
                response.close()
                pool.close()
        raise Unreachable(f"more than {self.settings.max_redirects} redirects")

    def check(self, url: str) -> tuple[str, str, int, str]:
        """Validate one hop and pick the address to connect to: (scheme, host, port, ip).

        :raises BlockedAddress: for a bad scheme or a disallowed address.
        :raises Unreachable: for a malformed URL or a name that does not resolve.
        """
        check_scheme(url)
        return pick_address(url, self.policy, self.resolver)

    def _request(self, url: str) -> tuple[urllib3.BaseHTTPResponse, urllib3.HTTPConnectionPool]:
        scheme, host, port, ip = self.check(url)
        pool = pinned_pool(scheme, host, port, ip, timeout=self.timeout, ca_certs=self.ca_certs)
        headers = {
            "Host": host_header(scheme, host, port),
            "User-Agent": "comfysync-image-fetch/1",
            "Accept": "image/*",
            # Compressed transfer would let a tiny body inflate past the size cap.
            "Accept-Encoding": "identity",
        }
        try:
            response = pool.urlopen(
                "GET",
                request_target(url),
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
                assert_same_host=False,
            )
        except SSLError as err:
            pool.close()
            raise Unreachable(f"TLS handshake with {host!r} failed") from err
        except (Urllib3Error, OSError) as err:
            pool.close()
            raise Unreachable(f"could not fetch from {host!r} ({type(err).__name__})") from err
        return response, pool

    def _read(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        limit = self.settings.max_bytes
        declared = parse_whole(response.headers.get("Content-Length", "")) or 0
        if declared > limit:
            raise _too_large(limit)
        body = bytearray()
        try:
            # read1 returns what has arrived, so a server dripping one byte at a time
            # cannot keep us past the deadline (a plain read waits for the full chunk).
            while chunk := response.read1(_CHUNK, decode_content=False):
                body += chunk
                if len(body) > limit:
                    raise _too_large(limit)
                if time.monotonic() > deadline:
                    raise Unreachable("the download took too long")
        except (Urllib3Error, OSError) as err:
            raise Unreachable(f"the download failed ({type(err).__name__})") from err
        return bytes(body)


def pick_address(url: str, policy: AddressPolicy, resolver: Resolver) -> tuple[str, str, int, str]:
    """Resolve an http(s) URL's host and pick an address `policy` allows: (scheme, host, port, ip).

    :raises BlockedAddress: not http(s), or no address of the host may be reached.
    :raises Unreachable: a malformed URL or a name that does not resolve.
    """
    try:
        # Both refuse malformed hosts (unbalanced or misused brackets, bad ports).
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError as err:
        raise Unreachable(f"malformed URL ({err})") from err
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedAddress("only http and https URLs are fetched")
    if not host:
        raise Unreachable("the URL has no host")
    port = port or (443 if scheme == "https" else 80)
    try:
        candidates = [str(ipaddress.ip_address(host))]
    except ValueError:
        candidates = list(resolver(host, port))
    if not candidates:
        raise Unreachable(f"cannot resolve host {host!r}")
    trusted_name = policy.host_allowed(host)
    for candidate in candidates:
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if trusted_name or policy.address_allowed(ip):
            return scheme, host, port, str(ip)
    # Deliberately vague: naming the internal address would help someone map it.
    raise BlockedAddress(f"{host!r} resolves to an address that may not be fetched")


def pinned_pool(
    scheme: str,
    host: str,
    port: int,
    ip: str,
    *,
    timeout: urllib3.Timeout,
    ca_certs: str | None,
) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to the checked `ip`, TLS still verified against `host`."""
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            ip,
            port,
            timeout=timeout,
            maxsize=1,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,
            server_hostname=host,  # SNI
            assert_hostname=host,  # certificate must name the host, not the IP
        )
    return urllib3.HTTPConnectionPool(ip, port, timeout=timeout, maxsize=1, retries=False)


def request_target(url: str) -> str:
    """The path and query of a URL, as the request line names them."""
    parts = urlsplit(url.strip())
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def host_header(scheme: str, host: str, port: int) -> str:
    """The Host header for a URL's host and port (the port only when not the default)."""
    value = f"[{host}]" if ":" in host else host
    if port != (443 if scheme == "https" else 80):
        value += f":{port}"
    return value


def default_ca_bundle() -> str | None:
    """certifi's CA bundle when installed, else None (the system store)."""
    try:
        import certifi
    except ImportError:  # fall back to the system store
        return None
    return certifi.where()


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"over the limit of {limit} bytes")
