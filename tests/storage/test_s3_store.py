"""S3/R2 storage against a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from comfysync.config import ConfigError, Settings
from comfysync.storage import StoredFile, build_remote_store, upload_all
from comfysync.storage.s3 import S3Store

from .fakes import PROMPT_ID, png_bytes

BUCKET = "comfy-outputs"
KEY_PREFIX = f"outputs/runs/{PROMPT_ID}/"


def spaces_env(endpoint: str, **extra: str) -> dict[str, str]:
    """DigitalOcean-style variables."""
    return {
        "STORAGE_PROVIDER": "s3",
        "SPACES_ENDPOINT": endpoint,
        "SPACES_BUCKET": BUCKET,
        "SPACES_KEY": "spaces-key",
        "SPACES_SECRET": "spaces-secret",
        "SPACES_REGION": "us-east-1",
        **extra,
    }


def r2_env(endpoint: str, **extra: str) -> dict[str, str]:
    """Cloudflare-style variables (with the endpoint override)."""
    return {
        "STORAGE_PROVIDER": "r2",
        "R2_ENDPOINT_URL": endpoint,
        "R2_BUCKET_NAME": BUCKET,
        "R2_ACCESS_KEY": "r2-key",
        "R2_SECRET_KEY": "r2-secret",
        **extra,
    }


@pytest.fixture
def make_store() -> Iterator:
    """Build stores from env mappings and close them after the test."""
    made: list[S3Store] = []

    def make(env: dict[str, str]) -> S3Store:
        store = build_remote_store(Settings.from_env(env).storage)
        assert isinstance(store, S3Store)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.mark.parametrize("family", [spaces_env, r2_env], ids=["spaces", "r2"])
def test_upload_puts_object_with_key_and_content_type(
    family, moto_endpoint, s3_bucket, make_store, stored: StoredFile
) -> None:
    store = make_store(family(moto_endpoint))

    result = store.upload(stored, prompt_id=PROMPT_ID)

    name = stored.key.rsplit("/", 1)[1]
    assert result.remote_key == KEY_PREFIX + name
    assert result.storage == store.name == ("r2" if family is r2_env else "s3")
    assert result.upload_duration is not None and result.upload_duration > 0
    assert (result.key, result.local_path, result.size) == (
        stored.key,
        stored.local_path,
        stored.size,
    )
    head = s3_bucket.head_object(Bucket=BUCKET, Key=result.remote_key)
    assert head["ContentType"] == "image/png"
    body = s3_bucket.get_object(Bucket=BUCKET, Key=result.remote_key)["Body"].read()
    with open(stored.local_path, "rb") as local:
        assert body == local.read()


def test_presigned_url_serves_the_object(moto_endpoint, s3_bucket, make_store, stored) -> None:
    store = make_store(spaces_env(moto_endpoint, PRESIGN_EXPIRES="900"))

    result = store.upload(stored, prompt_id=PROMPT_ID)

    parts = urlsplit(result.url)
    assert f"{parts.scheme}://{parts.netloc}" == moto_endpoint
    assert parts.path == f"/{BUCKET}/{result.remote_key}"
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    response = requests.get(result.url, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"


# Every combination of the URL flags: the public domain never shows the bucket,
# the CDN shows it unless told not to, and path style only shapes presigned URLs.
URL_MODES = ["presign", "r2_public_domain", "spaces_cdn"]


@pytest.mark.parametrize("force_path_style", ["", "false", "true"])
@pytest.mark.parametrize("dont_include_bucket", ["", "false", "true"])
@pytest.mark.parametrize("mode", URL_MODES)
def test_url_shape_for_every_flag_combination(
    mode, dont_include_bucket, force_path_style, moto_endpoint, s3_bucket, make_store, stored
) -> None:
    extra = {
        "SPACES_CDN_DONT_INCLUDE_BUCKET": dont_include_bucket,
        "SPACES_CDN_FORCE_PATH_STYLE": force_path_style,
    }
    if mode == "r2_public_domain":
        extra["R2_PUBLIC_DOMAIN"] = "img.example.com"
    elif mode == "spaces_cdn":
        extra["SPACES_ENDPOINT_CDN"] = "https://cdn.example.com/"
    store = make_store(spaces_env(moto_endpoint, **extra))

    result = store.upload(stored, prompt_id=PROMPT_ID)

    key = result.remote_key
    if mode == "r2_public_domain":
        assert result.url == f"https://img.example.com/{key}"
    elif mode == "spaces_cdn" and dont_include_bucket == "true":
        assert result.url == f"https://cdn.example.com/{key}"
    elif mode == "spaces_cdn":
        assert result.url == f"https://cdn.example.com/{BUCKET}/{key}"
    else:
        # moto listens on an IP address, which botocore always addresses by path.
        assert result.url.startswith(f"{moto_endpoint}/{BUCKET}/{key}?")
        assert requests.get(result.url, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("force_path_style", "expected"),
    [
        ("false", f"https://{BUCKET}.nyc3.digitaloceanspaces.com/outputs/x.png?"),
        ("true", f"https://nyc3.digitaloceanspaces.com/{BUCKET}/outputs/x.png?"),
        # Unset: botocore's "auto", which keeps a custom endpoint's bucket in the path.
        ("", f"https://nyc3.digitaloceanspaces.com/{BUCKET}/outputs/x.png?"),
    ],
)
def test_force_path_style_sets_client_addressing(force_path_style, expected, make_store) -> None:
    env = spaces_env(
        "nyc3.digitaloceanspaces.com",
        SPACES_REGION="nyc3",
        SPACES_CDN_FORCE_PATH_STYLE=force_path_style,
    )
    store = make_store(env)

    # Presigning is local: nothing is sent to the (fictitious here) endpoint.
    assert store.url_for("outputs/x.png").startswith(expected)


def test_r2_account_id_gives_the_cloudflare_endpoint() -> None:
    env = r2_env("", R2_ACCOUNT_ID="0123abcd")
    del env["R2_ENDPOINT_URL"]

    settings = Settings.from_env(env).storage.s3
    assert settings is not None

    assert settings.endpoint_url == "https://0123abcd.r2.cloudflarestorage.com"
    assert settings.region == "auto"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STORAGE_PROVIDER": "r2"}, "R2_BUCKET_NAME or SPACES_BUCKET"),
        (
            {
                "STORAGE_PROVIDER": "r2",
                "R2_BUCKET_NAME": "b",
                "R2_ACCESS_KEY": "k",
                "R2_SECRET_KEY": "s",
            },
            "R2_ACCOUNT_ID or R2_ENDPOINT_URL",
        ),
        ({"STORAGE_PROVIDER": "gcs"}, "STORAGE_PROVIDER"),
        (spaces_env("http://127.0.0.1:1", PRESIGN_EXPIRES="604801"), "PRESIGN_EXPIRES"),
        (spaces_env("http://127.0.0.1:1", PRESIGN_EXPIRES="soon"), "PRESIGN_EXPIRES"),
        (spaces_env("http://127.0.0.1:1", SPACES_CDN_DONT_INCLUDE_BUCKET="maybe"), "SPACES_CDN"),
        (spaces_env("ftp://x"), "SPACES_ENDPOINT"),
        (spaces_env("http://127.0.0.1:1", STORAGE_READ_TIMEOUT="0"), "STORAGE_READ_TIMEOUT"),
        (spaces_env("http://127.0.0.1:1", R2_BASE_PATH="../up"), "R2_BASE_PATH"),
        (
            spaces_env("http://127.0.0.1:1", R2_PUBLIC_DOMAIN="a.example", SPACES_ENDPOINT_CDN="b"),
            "only one of R2_PUBLIC_DOMAIN and SPACES_ENDPOINT_CDN",
        ),
    ],
)
def test_bad_config_fails_naming_the_variable(env, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_remote_store(Settings.from_env(env).storage)


def test_client_has_timeouts_and_library_retries(make_store) -> None:
    store = make_store(
        spaces_env(
            "http://127.0.0.1:1",
            STORAGE_CONNECT_TIMEOUT="2",
            STORAGE_READ_TIMEOUT="7",
            STORAGE_RETRIES="5",
        )
    )

    config = store.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2.0, 7.0)
    assert config.retries == {"total_max_attempts": 6, "mode": "standard"}


def test_missing_bucket_falls_back_to_local(
    moto_endpoint, s3_bucket, make_store, stored, caplog
) -> None:
    store = make_store(spaces_env(moto_endpoint, SPACES_BUCKET="no-such-bucket"))

    with caplog.at_level(logging.WARNING, logger="comfysync.storage"):
        outcome = upload_all(store, [stored], prompt_id=PROMPT_ID)

    assert outcome.files == [stored]
    assert outcome.files[0].storage == "local"
    assert len(outcome.warnings) == 1 and "NoSuchBucket" in outcome.warnings[0]
    assert stored.key in outcome.warnings[0]
    assert any(PROMPT_ID in record.getMessage() for record in caplog.records)


def test_unreachable_endpoint_falls_back_to_local(closed_port, make_store, stored, caplog) -> None:
    store = make_store(
        spaces_env(
            f"http://127.0.0.1:{closed_port}",
            STORAGE_RETRIES="0",
            STORAGE_CONNECT_TIMEOUT="1",
        )
    )

    with caplog.at_level(logging.WARNING, logger="comfysync.storage"):
        outcome = upload_all(store, [stored], prompt_id=PROMPT_ID)

    assert outcome.files[0].storage == "local"
    assert outcome.files[0].url == "http://gateway.test/output_images/" + stored.key
    assert "serving the local copy" in outcome.warnings[0]
    assert [r for r in caplog.records if PROMPT_ID in r.getMessage()]


def test_upload_all_uploads_every_file_in_order(
    moto_endpoint, s3_bucket, make_store, local_store
) -> None:
    files = [
        local_store.write(f"2026-01-02/{PROMPT_ID}-9-{n}-t.png", [png_bytes()], "image/png")
        for n in range(5)
    ]
    store = make_store(spaces_env(moto_endpoint))

    outcome = upload_all(store, files, prompt_id=PROMPT_ID, concurrency=2)

    assert outcome.warnings == []
    assert [f.key for f in outcome.files] == [f.key for f in files]
    assert all(f.storage == "s3" for f in outcome.files)
    listed = s3_bucket.list_objects_v2(Bucket=BUCKET, Prefix=KEY_PREFIX)["Contents"]
    assert len(listed) == 5
