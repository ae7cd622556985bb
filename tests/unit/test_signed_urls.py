"""Signed, expiring URLs for outputs on local disk (LOCAL_URL_SECRET)."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from comfysync import create_app
from comfysync.config import ConfigError
from comfysync.storage.signing import UrlSigner

SECRET = "a-local-url-secret-of-some-length"


@pytest.fixture
def app(tmp_path):
    return create_app(
        {
            "DATA_DIR": str(tmp_path / "data"),
            "OUTPUT_DIR": str(tmp_path / "out"),
            "LOCAL_URL_SECRET": SECRET,
            "LOCAL_URL_TTL": "60",
        }
    )


def _stored_url(app) -> str:
    stored = app.extensions["comfysync"].local.write(
        "2026-12-03/x-9-0-abcd.png", [b"\x89PNG\r\n\x1a\nbytes"], "image/png"
    )
    return stored.url


def _get(client, url: str):
    parts = urlsplit(url)
    answer = client.get(parts.path + ("?" + parts.query if parts.query else ""))
    answer.get_data()
    answer.close()
    return answer


def test_a_signed_url_serves_until_it_expires(app) -> None:
    url = _stored_url(app)
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"expires", "sig"}
    assert time.time() + 50 < int(query["expires"][0]) <= time.time() + 61
    client = app.test_client()
    answer = _get(client, url)
    assert answer.status_code == 200 and answer.data == b"\x89PNG\r\n\x1a\nbytes"
    assert answer.headers["Cache-Control"].startswith("private")


def test_unsigned_tampered_or_expired_urls_are_refused(app) -> None:
    client = app.test_client()
    url = _stored_url(app)
    path = urlsplit(url).path
    assert _get(client, path).status_code == 403
    assert _get(client, url.replace("sig=", "sig=x")).status_code == 403
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    later = url.replace(f"expires={expires}", f"expires={int(expires) + 3600}")
    assert _get(client, later).status_code == 403  # the expiry is signed too
    other = url.replace("x-9-0-abcd.png", "y-9-0-abcd.png")
    assert _get(client, other).status_code == 403  # and the file name
    signer = UrlSigner(SECRET.encode(), ttl=60)
    old = signer.sign("2026-12-03/x-9-0-abcd.png", now=time.time() - 120)
    answer = _get(client, f"{path}?{old}")
    assert answer.status_code == 403 and answer.json["error_type"] == "expired_url"


def test_the_secret_must_be_long(tmp_path) -> None:
    with pytest.raises(ConfigError, match="LOCAL_URL_SECRET"):
        create_app({"DATA_DIR": str(tmp_path / "d"), "LOCAL_URL_SECRET": "short"})
