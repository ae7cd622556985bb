"""OSS storage: oss2 against a local fake that verifies V1 signatures as OSS does."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from comfysync.config import ConfigError, Settings
from comfysync.storage import build_remote_store, upload_all
from comfysync.storage.oss import OssStore

from .fakes import PROMPT_ID, FakeOss, fake_oss_server

BUCKET = "comfy-bucket"
KEY_ID, SECRET = "LTAI5tFakeKeyId", "fake-secret-value"


@pytest.fixture
def oss() -> Iterator[FakeOss]:
    """A fake OSS endpoint that knows one key pair and one bucket."""
    with fake_oss_server(BUCKET, {KEY_ID: SECRET}) as fake:
        yield fake


def oss_env(endpoint: str, **extra: str) -> dict[str, str]:
    """The variables users already set for OSS."""
    return {
        "ENABLE_OSS": "true",
        "OSS_ACCESS_KEY_ID": KEY_ID,
        "OSS_ACCESS_KEY_SECRET": SECRET,
        "OSS_ENDPOINT": endpoint,
        "OSS_BUCKET_NAME": BUCKET,
        "STORAGE_RETRIES": "0",
        **extra,
    }


@pytest.fixture
def make_store() -> Iterator:
    """Build OSS stores from env mappings and close them after the test."""
    made: list[OssStore] = []

    def make(env: dict[str, str]) -> OssStore:
        store = build_remote_store(Settings.from_env(env).storage)
        assert isinstance(store, OssStore)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def test_upload_stores_object_and_returns_signed_url(oss, make_store, stored) -> None:
    store = make_store(oss_env(oss.endpoint, OSS_BASE_PATH="/comfy/outputs/"))

    before = time.time()
    result = store.upload(stored, prompt_id=PROMPT_ID)

    name = stored.key.rsplit("/", 1)[1]
    assert result.remote_key == f"comfy/outputs/runs/{PROMPT_ID}/{name}"
    assert result.storage == "oss"
    assert result.upload_duration is not None and result.upload_duration > 0
    stored_object = oss.objects[result.remote_key]
    assert stored_object.content_type == "image/png"
    with open(stored.local_path, "rb") as local:
        assert stored_object.body == local.read()

    parts = urlsplit(result.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{oss.endpoint}/{BUCKET}/{result.remote_key}"
    )
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert set(query) == {"OSSAccessKeyId", "Expires", "Signature"}
    assert query["OSSAccessKeyId"] == KEY_ID
    # 30 days by default.
    assert abs(int(query["Expires"]) - (before + 30 * 86400)) <= 5
    response = requests.get(result.url, timeout=5)
    assert response.status_code == 200
    assert response.content == stored_object.body


def test_url_expiry_is_configurable(oss, make_store, stored) -> None:
    store = make_store(oss_env(oss.endpoint, OSS_URL_EXPIRES="120"))

    before = time.time()
    result = store.upload(stored, prompt_id=PROMPT_ID)

    expires = int(parse_qs(urlsplit(result.url).query)["Expires"][0])
    assert abs(expires - (before + 120)) <= 5


def test_public_base_url_gives_unsigned_urls(oss, make_store, stored) -> None:
    store = make_store(oss_env(oss.endpoint, OSS_PUBLIC_BASE_URL="cdn.example.com/"))

    result = store.upload(stored, prompt_id=PROMPT_ID)

    assert result.url == f"https://cdn.example.com/{result.remote_key}"


@pytest.mark.parametrize(
    "change",
    [
        {"OSS_ACCESS_KEY_SECRET": "wrong-secret"},
        {"OSS_ACCESS_KEY_ID": "LTAIunknown"},
        {"OSS_BUCKET_NAME": "other-bucket"},
    ],
    ids=["wrong-secret", "unknown-key", "missing-bucket"],
)
def test_refused_upload_falls_back_to_local(oss, make_store, stored, caplog, change) -> None:
    store = make_store({**oss_env(oss.endpoint), **change})

    with caplog.at_level(logging.WARNING, logger="comfysync.storage"):
        outcome = upload_all(store, [stored], prompt_id=PROMPT_ID)

    assert outcome.files == [stored]
    assert outcome.files[0].storage == "local"
    assert len(outcome.warnings) == 1
    assert oss.objects == {}
    failures = [r for r in caplog.records if PROMPT_ID in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING


def test_wrong_secret_is_refused_with_signature_mismatch(oss, make_store, stored) -> None:
    store = make_store(oss_env(oss.endpoint, OSS_ACCESS_KEY_SECRET="wrong-secret"))

    outcome = upload_all(store, [stored], prompt_id=PROMPT_ID)

    assert "403 SignatureDoesNotMatch" in outcome.warnings[0]


def test_transient_5xx_is_retried_by_the_adapter(oss, make_store, stored) -> None:
    oss.fail_next = 2
    store = make_store(oss_env(oss.endpoint, STORAGE_RETRIES="2"))

    result = store.upload(stored, prompt_id=PROMPT_ID)

    assert result.storage == "oss"
    assert [line.split()[0] for line in oss.requests] == ["PUT", "PUT", "PUT"]


def test_unreachable_endpoint_falls_back_to_local(closed_port, make_store, stored) -> None:
    store = make_store(oss_env(f"http://127.0.0.1:{closed_port}", STORAGE_CONNECT_TIMEOUT="1"))

    outcome = upload_all(store, [stored], prompt_id=PROMPT_ID)

    assert outcome.files[0].storage == "local"
    assert "RequestError" in outcome.warnings[0]


def test_incomplete_config_warns_once_and_uses_local(caplog) -> None:
    env = {"ENABLE_OSS": "true", "OSS_ACCESS_KEY_ID": KEY_ID, "OSS_ENDPOINT": "oss.example.com"}

    with caplog.at_level(logging.WARNING):
        storage = Settings.from_env(env).storage
        store = build_remote_store(storage)

    assert store is None
    assert (storage.provider, storage.oss) == ("local", None)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "OSS_ACCESS_KEY_SECRET" in message and "OSS_BUCKET_NAME" in message
    assert "OSS_ENDPOINT" not in message


def test_storage_provider_oss_behaves_like_enable_oss(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert build_remote_store(Settings.from_env({"STORAGE_PROVIDER": "oss"}).storage) is None
    assert len(caplog.records) == 1


def test_reading_incomplete_settings_logs_nothing(caplog) -> None:
    """gunicorn.conf.py reads settings in the master too; the warning is the worker's, once."""
    with caplog.at_level(logging.WARNING):
        storage = Settings.from_env({"ENABLE_OSS": "true", "OSS_BUCKET_NAME": BUCKET}).storage

    assert caplog.records == []
    assert storage.oss_missing == ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_ENDPOINT")


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"OSS_URL_EXPIRES": "-5"}, "OSS_URL_EXPIRES"),
        ({"OSS_URL_EXPIRES": "a month"}, "OSS_URL_EXPIRES"),
        ({"OSS_ENDPOINT": "ftp://oss.example.com"}, "OSS_ENDPOINT"),
        ({"OSS_BASE_PATH": "a//b"}, "OSS_BASE_PATH"),
        ({"STORAGE_RETRIES": "-1"}, "STORAGE_RETRIES"),
        ({"ENABLE_OSS": "sometimes"}, "ENABLE_OSS"),
    ],
)
def test_invalid_values_fail_naming_the_variable(change, variable) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({**oss_env("https://oss-cn-hangzhou.aliyuncs.com"), **change})


def test_local_needs_no_remote_store() -> None:
    assert build_remote_store(Settings.from_env({}).storage) is None
    local = Settings.from_env({"STORAGE_PROVIDER": "local", "ENABLE_OSS": "false"}).storage
    assert build_remote_store(local) is None


def test_signed_url_for_a_real_endpoint_uses_the_bucket_host(make_store) -> None:
    store = make_store(oss_env("oss-cn-hangzhou.aliyuncs.com"))

    url = store.url_for("outputs/runs/p/x.png")

    assert url.startswith(f"https://{BUCKET}.oss-cn-hangzhou.aliyuncs.com/outputs/runs/p/x.png?")
