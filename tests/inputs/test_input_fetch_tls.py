"""HTTPS fetching pinned to the checked IP still verifies the certificate by host name."""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from comfysync.config.convert import to_allow_list
from comfysync.inputs.errors import Unreachable
from comfysync.inputs.fetch import ImageFetcher
from comfysync.inputs.settings import InputSettings

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _name(common: str):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_certs(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `host` signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("comfysync test CA"))
        .issuer_name(_name("comfysync test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path, png: bytes) -> Iterator[dict]:
    ca_path, cert_path, key_path = _write_certs(tmp_path, "images.test")
    seen: dict = {"sni": [], "host": []}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda sock, name, ctx: seen["sni"].append(name)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            seen["host"].append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args) -> None:
            pass

    class TLSServer(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self):
            sock, address = super().get_request()
            sock.settimeout(5)
            try:
                return context.wrap_socket(sock, server_side=True), address
            except (ssl.SSLError, OSError):
                sock.close()
                raise

        def handle_error(self, request, client_address) -> None:
            pass  # the certificate-mismatch test aborts handshakes on purpose

    httpd = TLSServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield {"port": httpd.server_address[1], "ca": str(ca_path), "seen": seen}
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _fetcher(ca: str) -> ImageFetcher:
    hosts, networks = to_allow_list("127.0.0.1")
    settings = InputSettings(
        allow_hosts=hosts, allow_networks=networks, fetch_timeout=3.0, fetch_connect_timeout=2.0
    )
    table = {"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
    return ImageFetcher(settings, resolver=lambda host, port: table[host], ca_certs=ca)


def test_https_uses_host_name_for_sni_and_certificate(tls_server, png, loopback_only) -> None:
    port = tls_server["port"]
    body = _fetcher(tls_server["ca"]).fetch(f"https://images.test:{port}/image.png")
    assert body == png
    assert tls_server["seen"]["sni"] == ["images.test"]
    assert tls_server["seen"]["host"] == [f"images.test:{port}"]
    assert loopback_only == [("127.0.0.1", port)]


def test_https_certificate_for_another_name_is_refused(tls_server) -> None:
    with pytest.raises(Unreachable, match="TLS"):
        _fetcher(tls_server["ca"]).fetch(f"https://other.test:{tls_server['port']}/image.png")
