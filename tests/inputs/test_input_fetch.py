"""Safe URL fetching: address checks (SSRF), pinning, redirects, limits."""

from __future__ import annotations

import ipaddress

import pytest

from comfysync.config.convert import to_allow_list
from comfysync.inputs.errors import BlockedAddress, TooLarge, Unreachable
from comfysync.inputs.fetch import AddressPolicy, ImageFetcher, is_public_address
from comfysync.inputs.settings import InputSettings


def settings(allow: str = "", **overrides) -> InputSettings:
    hosts, networks = to_allow_list(allow) if allow else ((), ())
    values = {"fetch_timeout": 2.0, "fetch_connect_timeout": 1.0, **overrides}
    return InputSettings(allow_hosts=hosts, allow_networks=networks, **values)


def fake_resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    """Maps test host names to addresses without any DNS lookup."""

    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise Unreachable(f"cannot resolve host {host!r}")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.9.9.9",
        "::1",
        "10.1.2.3",
        "172.16.0.5",
        "192.168.1.10",
        "169.254.169.254",  # AWS/GCP/Azure/OpenStack metadata
        "169.254.1.1",
        "100.100.100.200",  # Alibaba metadata (shared address space)
        "168.63.129.16",  # Azure wire server
        "fd00:ec2::254",  # AWS IPv6 metadata
        "fe80::1",
        "0.0.0.0",
        "224.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
    ],
)
def test_non_public_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


def test_loopback_is_blocked_by_default(image_server, loopback_only) -> None:
    fetcher = ImageFetcher(settings())
    with pytest.raises(BlockedAddress):
        fetcher.fetch(image_server.url("/image.png"))
    assert image_server.requests == [] and loopback_only == []


def test_localhost_name_is_blocked_by_default(image_server) -> None:
    fetcher = ImageFetcher(settings(), resolver=fake_resolver({"localhost": ["127.0.0.1"]}))
    with pytest.raises(BlockedAddress):
        fetcher.fetch(image_server.url("/image.png", host="localhost"))
    assert image_server.requests == []


@pytest.mark.parametrize(
    "address", ["10.0.0.7", "172.20.1.1", "192.168.0.2", "169.254.169.254", "fd00:ec2::254"]
)
def test_name_resolving_to_internal_address_is_blocked_before_connecting(
    address: str, loopback_only
) -> None:
    calls: list[str] = []
    fetcher = ImageFetcher(settings(), resolver=fake_resolver({"internal.test": [address]}, calls))
    with pytest.raises(BlockedAddress) as caught:
        fetcher.fetch("http://internal.test/latest/meta-data/")
    assert calls == ["internal.test"]
    assert loopback_only == []  # no connection was attempted at all
    assert address not in caught.value.reason  # the internal address is not disclosed


def test_any_blocked_address_among_several_is_skipped(image_server, png) -> None:
    # Public-looking answers that are blocked are never used; the allowed one is.
    fetcher = ImageFetcher(
        settings(allow="127.0.0.1"),
        resolver=fake_resolver({"mixed.test": ["10.0.0.1", "127.0.0.1"]}),
    )
    assert fetcher.fetch(image_server.url("/image.png", host="mixed.test")) == png


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x.png", "gopher://x/", "dict://x:11211/"]
)
def test_other_schemes_are_blocked(url: str) -> None:
    with pytest.raises(BlockedAddress):
        ImageFetcher(settings(), resolver=fake_resolver({})).fetch(url)


def test_allow_listed_loopback_server_is_fetched(image_server, png, loopback_only) -> None:
    fetcher = ImageFetcher(settings(allow="127.0.0.1"))
    assert fetcher.fetch(image_server.url("/image.png")) == png
    assert loopback_only == [("127.0.0.1", image_server.port)]
    assert image_server.requests[0]["Accept-Encoding"] == "identity"


def test_connection_is_pinned_to_the_checked_address(image_server, png, loopback_only) -> None:
    # A rebinding resolver: first answer passes the check, a second would be internal.
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    fetcher = ImageFetcher(settings(allow="127.0.0.0/8"), resolver=rebinding)
    assert fetcher.fetch(image_server.url("/image.png", host="images.test")) == png
    assert calls == ["images.test"]  # one lookup per hop: nothing to rebind
    assert loopback_only == [("127.0.0.1", image_server.port)]
    assert image_server.requests[0]["Host"] == f"images.test:{image_server.port}"


def test_allow_list_by_host_name(image_server, png) -> None:
    resolver = fake_resolver({"cdn.internal.test": ["127.0.0.1"]})
    fetcher = ImageFetcher(settings(allow=".internal.test"), resolver=resolver)
    assert fetcher.fetch(image_server.url("/image.png", host="cdn.internal.test")) == png
    other = ImageFetcher(settings(allow="other.test"), resolver=resolver)
    with pytest.raises(BlockedAddress):
        other.fetch(image_server.url("/image.png", host="cdn.internal.test"))


def test_redirect_into_blocked_address_is_refused(image_server, loopback_only) -> None:
    resolver = fake_resolver({"metadata.test": ["169.254.169.254"]})
    fetcher = ImageFetcher(settings(allow="127.0.0.1"), resolver=resolver)
    target = "http://metadata.test/latest/meta-data/iam"
    with pytest.raises(BlockedAddress):
        fetcher.fetch(image_server.url(f"/redirect?to={target}"))
    assert [r["path"] for r in image_server.requests] == [f"/redirect?to={target}"]
    assert {host for host, _ in loopback_only} == {"127.0.0.1"}


def test_redirect_to_private_literal_is_refused(image_server) -> None:
    fetcher = ImageFetcher(settings(allow="127.0.0.1"))
    with pytest.raises(BlockedAddress):
        fetcher.fetch(image_server.url("/redirect?to=http://10.0.0.1/x.png"))


def test_allowed_redirect_is_followed(image_server, png) -> None:
    fetcher = ImageFetcher(settings(allow="127.0.0.1"))
    assert fetcher.fetch(image_server.url("/redirect?to=/image.png")) == png


def test_redirect_loop_is_bounded(image_server) -> None:
    fetcher = ImageFetcher(settings(allow="127.0.0.1", max_redirects=2))
    with pytest.raises(Unreachable, match="more than 2 redirects"):
        fetcher.fetch(image_server.url("/loop"))
    assert len(image_server.requests) == 3


def test_http_error_status_is_unreachable(image_server) -> None:
    with pytest.raises(Unreachable, match="HTTP 404"):
        ImageFetcher(settings(allow="127.0.0.1")).fetch(image_server.url("/missing"))


def test_declared_length_over_cap_is_too_large(image_server) -> None:
    fetcher = ImageFetcher(settings(allow="127.0.0.1", max_bytes=1000))
    with pytest.raises(TooLarge):
        fetcher.fetch(image_server.url("/huge-declared"))


def test_streamed_body_is_cut_at_cap(image_server) -> None:
    fetcher = ImageFetcher(settings(allow="127.0.0.1", max_bytes=200_000))
    with pytest.raises(TooLarge):
        fetcher.fetch(image_server.url("/stream"))


def test_slow_server_hits_the_deadline(image_server) -> None:
    fetcher = ImageFetcher(settings(allow="127.0.0.1", fetch_timeout=0.5))
    with pytest.raises(Unreachable):
        fetcher.fetch(image_server.url("/slow"))


def test_refused_connection_is_unreachable(image_server) -> None:
    port = image_server.port
    fetcher = ImageFetcher(settings(allow="127.0.0.1"))
    with pytest.raises(Unreachable):
        fetcher.fetch(f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/x.png")


def test_unresolvable_host_is_unreachable() -> None:
    with pytest.raises(Unreachable, match="cannot resolve"):
        ImageFetcher(settings(), resolver=fake_resolver({})).fetch("http://nowhere.test/a.png")


@pytest.mark.parametrize(
    "url",
    [
        "http://[zzz]/x.png",
        "http://[::1/x.png",
        "http://::1]/x.png",
        "http://[1.2.3.4]/x.png",
        "http://example.test:99999/x.png",
        "http://example.test:-1/x.png",
    ],
)
def test_a_malformed_host_or_port_is_refused_as_such(url: str) -> None:
    fetcher = ImageFetcher(settings(), resolver=fake_resolver({"example.test": ["8.8.8.8"]}))
    with pytest.raises(Unreachable, match="malformed URL"):
        fetcher.fetch(url)


def test_policy_networks_and_hosts() -> None:
    hosts, networks = to_allow_list("images.corp.test, .cdn.test, 10.8.0.0/16, 192.168.1.5")
    policy = AddressPolicy(hosts, networks)
    assert policy.host_allowed("IMAGES.corp.test.") and policy.host_allowed("a.cdn.test")
    assert not policy.host_allowed("evilcdn.test")
    assert policy.address_allowed(ipaddress.ip_address("10.8.3.4"))
    assert policy.address_allowed(ipaddress.ip_address("192.168.1.5"))
    assert not policy.address_allowed(ipaddress.ip_address("192.168.1.6"))
