"""Output formats and storage backends, end to end: the real service under gunicorn.

Remote stores are real servers on loopback: moto for S3/R2/Spaces and the signature-checking
fake of `tests/storage/fakes.py` for OSS. Every gateway runs under the loopback guard
(`isolation.py`), with its AWS and storage settings coming from the test alone.
"""

from __future__ import annotations

import base64
import glob
import io
import json
import os
import random
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from PIL import Image

from tests.storage.fakes import FakeOss, fake_oss_server

from .harness import Gateway, Simulator
from .isolation import (
    StartGateway,
    isolated_gateway,
    outside_connections,
    start_gateway,
    stop_quickly,
)
from .pictures import inverted, pixel, size_of

pytestmark = pytest.mark.e2e

__all__ = ["start_gateway"]  # the fixture, used by name below

BUCKET = "comfy-outputs"
COLOR = 0x3366CC


def wide_graph(color: int = COLOR, width: int = 64, height: int = 32) -> dict[str, Any]:
    """EmptyImage (width x height) -> ImageInvert -> SaveImage."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "o"}},
    }


def noise_graph() -> dict[str, Any]:
    """LoadImage of a noisy 64x48 picture -> ImageInvert -> SaveImage: compresses badly."""
    rng = random.Random(7)
    image = Image.new("RGB", (64, 48))
    image.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(64 * 48)])
    out = io.BytesIO()
    image.save(out, "PNG")
    return {
        "1": {
            "class_type": "LoadImage",
            "inputs": {"image": base64.b64encode(out.getvalue()).decode()},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "n"}},
    }


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> bool:
    """Colours after lossy compression."""
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def generate(gateway: Gateway, **body: Any) -> dict[str, Any]:
    body.setdefault("workflow_data", wide_graph())
    response = gateway.post("/api/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def local_copy(gateway: Gateway, filename: str) -> bytes:
    """The bytes the gateway kept on its own disk for an output."""
    found = glob.glob(os.path.join(gateway.output_dir, "*", filename))
    assert len(found) == 1, found
    with open(found[0], "rb") as handle:
        return handle.read()


@pytest.fixture(autouse=True)
def isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """boto3 in this process (the bucket admin) never reads a developer profile."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "BOTO_")):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.mktemp("aws")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def gateway(shared_sim: Simulator) -> Iterator[Gateway]:
    """A gateway storing locally, in front of each simulator version."""
    started = isolated_gateway(shared_sim.url).start()
    yield started
    stop_quickly(started)


@pytest.fixture(scope="module")
def one_sim() -> Iterator[Simulator]:
    """One simulator for the storage tests: uploading does not depend on ComfyUI's version."""
    simulator = Simulator().start()
    yield simulator
    simulator.stop()


# -- output formats --


@pytest.mark.parametrize(
    ("asked", "content_type", "extension", "pil_format"),
    [
        ("jpeg", "image/jpeg", ".jpg", "JPEG"),
        ("JPG", "image/jpeg", ".jpg", "JPEG"),
        ("webp", "image/webp", ".webp", "WEBP"),
        ("png", "image/png", ".png", "PNG"),
    ],
)
def test_output_format_sets_type_extension_and_bytes(
    gateway: Gateway, asked: str, content_type: str, extension: str, pil_format: str
) -> None:
    body = generate(gateway, output_format=asked, quality=80)
    image = body["images"][0]
    assert image["content_type"] == content_type
    assert image["filename"].endswith(extension)
    assert body["url"].endswith(extension)
    served = gateway.get(body["url"])
    assert served.headers["Content-Type"] == content_type
    assert image["bytes"] == len(served.content)
    with Image.open(io.BytesIO(served.content)) as decoded:
        assert decoded.format == pil_format
        assert decoded.size == (64, 32) == (image["width"], image["height"])
    assert close_to(pixel(served.content), inverted(COLOR))


@pytest.mark.parametrize(
    ("limits", "size"),
    [
        ({"max_width": 16}, (16, 8)),
        ({"max_height": 4}, (8, 4)),
        ({"max_width": 16, "max_height": 16}, (16, 8)),
        ({"max_width": 1000, "max_height": 1000}, (64, 32)),  # never enlarged
        ({"max_width": "20"}, (20, 10)),
    ],
)
@pytest.mark.parametrize("output_format", [None, "jpeg", "webp"])
def test_max_size_shrinks_keeping_the_aspect_ratio(
    gateway: Gateway, limits: dict[str, Any], size: tuple[int, int], output_format: str | None
) -> None:
    body = generate(gateway, output_format=output_format, **limits)
    image = body["images"][0]
    assert (image["width"], image["height"]) == size
    assert size_of(gateway.get(body["url"]).content) == size


def test_generate_file_sends_the_converted_bytes(gateway: Gateway) -> None:
    body = {"workflow_data": wide_graph(), "output_format": "webp", "max_width": 32}
    response = gateway.post("/api/generate_file", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/webp"
    assert response.headers["Content-Disposition"].endswith('.webp"')
    assert size_of(response.content) == (32, 16)


@pytest.mark.parametrize("output_format", ["jpeg", "webp"])
def test_lower_quality_gives_a_smaller_file(gateway: Gateway, output_format: str) -> None:
    sizes = [
        generate(gateway, workflow_data=noise_graph(), output_format=output_format, quality=q)[
            "images"
        ][0]["bytes"]
        for q in (10, 95)
    ]
    assert sizes[0] < sizes[1] * 0.7


@pytest.mark.parametrize("quality", [25, 90])
def test_jpeg_is_encoded_at_the_quality_asked(gateway: Gateway, quality: int) -> None:
    body = generate(gateway, output_format="jpeg", quality=quality)
    reference = io.BytesIO()
    Image.new("RGB", (8, 8)).save(reference, "JPEG", quality=quality)
    with Image.open(io.BytesIO(gateway.get(body["url"]).content)) as served:
        with Image.open(reference) as expected:
            assert served.quantization == expected.quantization  # type: ignore[attr-defined]


def _png_text(data: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return dict(image.text)  # type: ignore[attr-defined]


def _exif(data: bytes) -> dict[int, Any]:
    with Image.open(io.BytesIO(data)) as image:
        return dict(image.getexif())


def test_png_keeps_the_prompt_chunk_unless_stripped(gateway: Gateway) -> None:
    kept = gateway.get(generate(gateway)["url"]).content
    assert "3" in json.loads(_png_text(kept)["prompt"])  # ComfyUI's graph, node ids as keys
    body = generate(gateway, strip_metadata=True)
    stripped = gateway.get(body["url"]).content
    assert _png_text(stripped) == {}
    assert b"tEXt" not in stripped and b"iTXt" not in stripped
    assert body["images"][0]["content_type"] == "image/png"
    assert pixel(stripped) == inverted(COLOR)


@pytest.mark.parametrize("output_format", ["jpeg", "webp"])
def test_lossy_formats_carry_the_prompt_unless_stripped(
    gateway: Gateway, output_format: str
) -> None:
    kept = gateway.get(generate(gateway, output_format=output_format)["url"]).content
    assert str(_exif(kept).get(0x0110, "")).startswith("prompt:")
    body = generate(gateway, output_format=output_format, strip_metadata="true")
    stripped = gateway.get(body["url"]).content
    assert _exif(stripped) == {}
    assert b"prompt" not in stripped


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("output_format", "gif"),
        ("output_format", "bmp"),
        ("output_format", 5),
        ("quality", 0),
        ("quality", 101),
        ("quality", "high"),
        ("quality", True),
        ("quality", 2.5),
        ("max_width", 0),
        ("max_width", -16),
        ("max_width", "wide"),
        ("max_width", 1e308),
        ("max_width", 10**300),
        ("max_height", 0),
        ("max_height", False),
        ("strip_metadata", "maybe"),
        ("strip_metadata", 3),
    ],
)
def test_bad_output_option_is_400_naming_it(
    gateway: Gateway, shared_sim: Simulator, field: str, value: Any
) -> None:
    accepted = shared_sim.stats()["prompts_accepted"]
    response = gateway.post("/api/generate", json={"workflow_data": wide_graph(), field: value})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["field"] == field
    assert field in body["error"]
    assert shared_sim.stats()["prompts_accepted"] == accepted  # nothing was run


# -- /output_images --


def test_stored_output_is_served_with_safe_headers(gateway: Gateway) -> None:
    body = generate(gateway)
    served = gateway.get(body["url"])
    assert served.status_code == 200
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age=" in served.headers["Cache-Control"]
    assert "sandbox" in served.headers["Content-Security-Policy"]


def test_output_folders_cannot_be_listed_or_left(gateway: Gateway) -> None:
    body = generate(gateway)
    day = body["url"].split("/")[2]
    for path in (
        f"/output_images/{day}/",
        f"/output_images/{day}",
        "/output_images/",
        "/output_images",
        "/output_images/%2e%2e/gateway.log",  # the gateway's log sits beside the folder
        "/output_images/" + day + "/%2e%2e/%2e%2e/gateway.log",
    ):
        response = gateway.get(path)
        assert response.status_code == 404, path
        assert body["images"][0]["filename"] not in response.text
        assert "Booting worker" not in response.text


def test_unknown_output_name_is_404(gateway: Gateway) -> None:
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert gateway.get(f"/output_images/{day}/nope-3-0-deadbeef.png").status_code == 404


# -- S3-compatible storage on moto --


def spaces_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "STORAGE_PROVIDER": "s3",
        "SPACES_ENDPOINT": endpoint,
        "SPACES_BUCKET": BUCKET,
        "SPACES_KEY": "spaces-key",
        "SPACES_SECRET": "spaces-secret-value",
        "SPACES_REGION": "us-east-1",
        "STORAGE_RETRIES": "0",
        "STORAGE_CONNECT_TIMEOUT": "2",
        **extra,
    }


def r2_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "STORAGE_PROVIDER": "r2",
        "R2_ENDPOINT_URL": endpoint,
        "R2_BUCKET_NAME": BUCKET,
        "R2_ACCESS_KEY": "r2-key",
        "R2_SECRET_KEY": "r2-secret-value",
        "STORAGE_RETRIES": "0",
        "STORAGE_CONNECT_TIMEOUT": "2",
        **extra,
    }


@pytest.mark.parametrize(("family", "provider"), [(spaces_env, "s3"), (r2_env, "r2")])
def test_s3_output_is_a_presigned_url_serving_the_same_bytes(
    start_gateway: StartGateway,
    one_sim: Simulator,
    moto_endpoint: str,
    s3_bucket: Any,
    family: Any,
    provider: str,
) -> None:
    gateway = start_gateway(one_sim.url, **family(moto_endpoint, PRESIGN_EXPIRES="900"))
    body = generate(gateway)
    image = body["images"][0]
    assert body["storage"] == image["storage"] == provider
    assert "warnings" not in body
    prompt_id, filename = body["prompt_id"], image["filename"]
    key = f"outputs/runs/{prompt_id}/{filename}"

    parts = urlsplit(body["url"])
    assert f"{parts.scheme}://{parts.netloc}" == moto_endpoint
    assert parts.path == f"/{BUCKET}/{key}"
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "X-Amz-Signature" in query

    fetched = requests.get(body["url"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == local_copy(gateway, filename)
    assert pixel(fetched.content) == inverted(COLOR)

    listed = s3_bucket.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert [obj["Key"] for obj in listed] == [key]
    head = s3_bucket.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == image["bytes"]
    assert outside_connections(gateway) == []


def test_s3_object_of_a_converted_output_has_its_type(
    start_gateway: StartGateway, one_sim: Simulator, moto_endpoint: str, s3_bucket: Any
) -> None:
    env = spaces_env(moto_endpoint, SPACES_BASE_PATH="/team/renders/")
    gateway = start_gateway(one_sim.url, **env)
    body = generate(gateway, output_format="webp", max_width=16)
    image = body["images"][0]
    key = f"team/renders/runs/{body['prompt_id']}/{image['filename']}"
    assert key.endswith(".webp")
    head = s3_bucket.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentType"] == "image/webp"
    stored = s3_bucket.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert stored == local_copy(gateway, image["filename"])
    assert size_of(stored) == (16, 8)


@pytest.mark.parametrize(
    ("family", "extra", "base"),
    [
        (
            spaces_env,
            {"SPACES_ENDPOINT_CDN": "https://cdn.example.test/"},
            "https://cdn.example.test/" + BUCKET,
        ),
        (
            spaces_env,
            {"SPACES_ENDPOINT_CDN": "cdn.example.test", "SPACES_CDN_DONT_INCLUDE_BUCKET": "true"},
            "https://cdn.example.test",
        ),
        (r2_env, {"R2_PUBLIC_DOMAIN": "img.example.test"}, "https://img.example.test"),
    ],
    ids=["spaces_cdn", "spaces_cdn_without_bucket", "r2_public_domain"],
)
def test_cdn_or_public_domain_gives_a_plain_url(
    start_gateway: StartGateway,
    one_sim: Simulator,
    moto_endpoint: str,
    s3_bucket: Any,
    family: Any,
    extra: dict[str, str],
    base: str,
) -> None:
    gateway = start_gateway(one_sim.url, **family(moto_endpoint, **extra))
    body = generate(gateway)
    key = f"outputs/runs/{body['prompt_id']}/{body['images'][0]['filename']}"
    assert body["url"] == f"{base}/{key}"
    assert s3_bucket.head_object(Bucket=BUCKET, Key=key)["ContentType"] == "image/png"
    assert outside_connections(gateway) == []  # the CDN host is named, never contacted


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("missing_bucket", "NoSuchBucket"), ("closed_port", "Could not connect")],
)
def test_failing_bucket_falls_back_to_the_local_copy(
    start_gateway: StartGateway,
    one_sim: Simulator,
    moto_endpoint: str,
    s3_bucket: Any,
    mode: str,
    reason: str,
) -> None:
    if mode == "missing_bucket":
        env = spaces_env(moto_endpoint, SPACES_BUCKET="no-such-bucket")
    else:
        env = spaces_env(f"http://127.0.0.1:{_closed_port()}")
    gateway = start_gateway(one_sim.url, **env)
    started = time.monotonic()
    response = gateway.post("/api/generate", json={"workflow_data": wide_graph()})
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 20
    body = response.json()
    assert body["storage"] == body["images"][0]["storage"] == "local"
    assert body["url"].startswith("/output_images/")
    assert len(body["warnings"]) == 1
    warning = body["warnings"][0]
    assert reason in warning and "local copy" in warning
    assert "spaces-secret-value" not in warning
    served = gateway.get(body["url"])
    assert served.status_code == 200
    assert pixel(served.content) == inverted(COLOR)


# -- Aliyun OSS on the signature-checking fake --

OSS_BUCKET = "comfy-oss"
OSS_KEYS = {"oss-key-id": "oss-secret-value"}


@pytest.fixture
def oss() -> Iterator[FakeOss]:
    with fake_oss_server(OSS_BUCKET, OSS_KEYS) as fake:
        yield fake


def oss_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "ENABLE_OSS": "true",
        "OSS_ACCESS_KEY_ID": "oss-key-id",
        "OSS_ACCESS_KEY_SECRET": "oss-secret-value",
        "OSS_ENDPOINT": endpoint,
        "OSS_BUCKET_NAME": OSS_BUCKET,
        "STORAGE_RETRIES": "0",
        **extra,
    }


def test_oss_output_is_a_signed_url_serving_the_same_bytes(
    start_gateway: StartGateway, one_sim: Simulator, oss: FakeOss
) -> None:
    gateway = start_gateway(one_sim.url, **oss_env(oss.endpoint, OSS_URL_EXPIRES="600"))
    body = generate(gateway)
    image = body["images"][0]
    assert body["storage"] == image["storage"] == "oss"
    key = f"outputs/runs/{body['prompt_id']}/{image['filename']}"
    assert oss.objects[key].content_type == "image/png"

    parts = urlsplit(body["url"])
    assert f"{parts.scheme}://{parts.netloc}" == oss.endpoint
    assert parts.path == f"/{OSS_BUCKET}/{key}"
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert set(query) == {"OSSAccessKeyId", "Expires", "Signature"}
    assert query["OSSAccessKeyId"] == "oss-key-id"
    assert 0 < int(query["Expires"]) - time.time() <= 600

    fetched = requests.get(body["url"], timeout=10)  # the fake checks the signature
    assert fetched.status_code == 200
    assert fetched.content == local_copy(gateway, image["filename"]) == oss.objects[key].body


def test_oss_public_base_url_gives_a_plain_url(
    start_gateway: StartGateway, one_sim: Simulator, oss: FakeOss
) -> None:
    env = oss_env(oss.endpoint, OSS_PUBLIC_BASE_URL="img.example.test/")
    gateway = start_gateway(one_sim.url, **env)
    body = generate(gateway)
    key = f"outputs/runs/{body['prompt_id']}/{body['images'][0]['filename']}"
    assert body["url"] == f"https://img.example.test/{key}"
    assert key in oss.objects


def test_oss_wrong_secret_falls_back_to_the_local_copy(
    start_gateway: StartGateway, one_sim: Simulator, oss: FakeOss
) -> None:
    env = oss_env(oss.endpoint, OSS_ACCESS_KEY_SECRET="not-the-secret")
    gateway = start_gateway(one_sim.url, **env)
    body = generate(gateway)
    assert body["storage"] == "local"
    assert len(body["warnings"]) == 1
    assert "SignatureDoesNotMatch" in body["warnings"][0]
    assert "not-the-secret" not in body["warnings"][0]
    assert oss.objects == {}
    served = gateway.get(body["url"])
    assert served.status_code == 200
    assert pixel(served.content) == inverted(COLOR)


@pytest.mark.parametrize(
    "missing", ["OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_ENDPOINT", "OSS_BUCKET_NAME"]
)
def test_incomplete_oss_config_still_starts_and_stores_locally(
    start_gateway: StartGateway, one_sim: Simulator, oss: FakeOss, missing: str
) -> None:
    env = oss_env(oss.endpoint)
    del env[missing]
    gateway = start_gateway(one_sim.url, **env)
    body = generate(gateway)
    assert body["storage"] == "local"
    assert "warnings" not in body
    assert gateway.get(body["url"]).status_code == 200
    assert oss.requests == []
    assert f"OSS storage is enabled but {missing} is not set" in gateway.logs()
