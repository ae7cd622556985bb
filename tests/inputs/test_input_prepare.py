"""Preparing a request's images: fetch/decode/verify concurrently, upload, point nodes."""

from __future__ import annotations

import base64

import gevent
import pytest

from comfysync.config.convert import to_allow_list
from comfysync.errors import ComfyUnavailable
from comfysync.inputs import ImageFetcher, ImageJob, InputSettings, InvalidInputs, prepare_images

from .conftest import make_png


def graph_with_load_image(value: str) -> dict:
    return {
        "10": {"inputs": {"image": value}, "class_type": "LoadImage", "_meta": {"title": "Load"}},
        "11": {"inputs": {"image": ["10", 0]}, "class_type": "ImageInvert"},
    }


class Uploads:
    """Stands in for the ComfyUI client's upload: records files, returns ComfyUI's name."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def __call__(self, data: bytes, filename: str) -> str:
        self.files[filename] = data
        return f"uploaded/{filename}"


@pytest.fixture
def uploads() -> Uploads:
    return Uploads()


@pytest.fixture
def local_settings() -> InputSettings:
    hosts, networks = to_allow_list("127.0.0.1")
    return InputSettings(
        allow_hosts=hosts, allow_networks=networks, fetch_timeout=2.0, fetch_connect_timeout=1.0
    )


def test_base64_data_url_and_file_jobs_are_uploaded(png, uploads) -> None:
    graph = graph_with_load_image("example.png")
    graph["12"] = {"inputs": {"image": "x.png"}, "class_type": "LoadImage"}
    graph["13"] = {"inputs": {"image": "y.png"}, "class_type": "LoadImage"}
    encoded = base64.b64encode(png).decode()
    jobs = [
        ImageJob("raw", encoded, (("10", "image"),)),
        ImageJob("data", f"data:image/png;base64,{encoded}", (("12", "image"),)),
        ImageJob("file", png, (("13", "image"),)),
    ]
    out = prepare_images(graph, jobs, upload=uploads, settings=InputSettings())
    assert len(uploads.files) == 3 and set(uploads.files.values()) == {png}
    names = [out[node]["inputs"]["image"] for node in ("10", "12", "13")]
    assert len(set(names)) == 3
    assert all(name.startswith("uploaded/comfysync_") and name.endswith(".png") for name in names)
    assert graph["10"]["inputs"]["image"] == "example.png"  # the input graph is untouched


def test_url_job_is_fetched_from_allow_listed_local_server(
    image_server, png, uploads, local_settings
) -> None:
    jobs = [ImageJob("image", image_server.url("/image.png"), (("10", "image"),))]
    out = prepare_images(
        graph_with_load_image("example.png"), jobs, upload=uploads, settings=local_settings
    )
    assert list(uploads.files.values()) == [png]
    assert out["10"]["inputs"]["image"].startswith("uploaded/comfysync_image_")


def test_load_image_inputs_holding_urls_or_base64_are_prepared(
    image_server, png, uploads, local_settings
) -> None:
    graph = graph_with_load_image(image_server.url("/image.png"))
    graph["12"] = {"inputs": {"image": base64.b64encode(png).decode()}, "class_type": "LoadImage"}
    graph["13"] = {"inputs": {"image": "already-there.png"}, "class_type": "LoadImage"}
    out = prepare_images(graph, [], upload=uploads, settings=local_settings)
    assert len(uploads.files) == 2
    assert out["10"]["inputs"]["image"].startswith("uploaded/comfysync_10-image_")
    assert out["12"]["inputs"]["image"].startswith("uploaded/comfysync_12-image_")
    assert out["13"]["inputs"]["image"] == "already-there.png"


def test_every_failure_is_listed_and_nothing_is_uploaded(image_server, uploads) -> None:
    png_b64 = base64.b64encode(make_png()).decode()
    graph = graph_with_load_image(image_server.url("/image.png"))  # loopback: blocked
    jobs = [
        ImageJob("good", png_b64, (("11", "unused"),)),
        ImageJob("text", image_server.url("/text", host="127.0.0.1"), (("11", "x"),)),
        ImageJob("garbage", "data:image/png;base64,aGVsbG8=", (("11", "y"),)),
        ImageJob("big", make_png((60, 60)), (("11", "z"),)),
    ]
    hosts, networks = to_allow_list("127.0.0.2")  # not the server's address
    settings = InputSettings(allow_hosts=hosts, allow_networks=networks, max_pixels=1000)
    with pytest.raises(InvalidInputs) as caught:
        prepare_images(graph, jobs, upload=uploads, settings=settings)
    reasons = {f.name: f.reason for f in caught.value.fields}
    assert set(reasons) == {"text", "garbage", "big", "10.image"}
    assert reasons["text"].startswith("blocked address")
    assert reasons["10.image"].startswith("blocked address")
    assert reasons["garbage"].startswith("not an image")
    assert reasons["big"].startswith("too large")
    assert uploads.files == {}
    body = caught.value.to_dict()
    assert body["error"] == "invalid inputs" and body["status_code"] == 400
    assert set(body["fields"][0]) == {"name", "expected", "got", "reason"}


def test_unreachable_url_is_a_field_error(image_server, uploads, local_settings) -> None:
    jobs = [ImageJob("image", image_server.url("/missing"), (("10", "image"),))]
    with pytest.raises(InvalidInputs) as caught:
        prepare_images(
            graph_with_load_image("a.png"), jobs, upload=uploads, settings=local_settings
        )
    (field,) = caught.value.fields
    assert field.name == "image" and field.reason.startswith("unreachable")
    assert field.got == image_server.url("/missing")


def test_too_many_images(png, uploads) -> None:
    jobs = [ImageJob(f"i{n}", png, (("10", "image"),)) for n in range(3)]
    with pytest.raises(InvalidInputs, match="invalid inputs") as caught:
        prepare_images(
            graph_with_load_image("a.png"),
            jobs,
            upload=uploads,
            settings=InputSettings(max_images=2),
        )
    assert "too many images" in caught.value.fields[0].reason


def test_alpha_job_uploads_rgba_png(uploads) -> None:
    from io import BytesIO

    from PIL import Image

    jpeg = BytesIO()
    Image.new("RGB", (4, 4)).save(jpeg, format="JPEG")
    jobs = [ImageJob("mask", jpeg.getvalue(), (("10", "image"),), alpha=True)]
    prepare_images(graph_with_load_image("a.png"), jobs, upload=uploads, settings=InputSettings())
    ((name, data),) = uploads.files.items()
    assert name.endswith(".png")
    with Image.open(BytesIO(data)) as image:
        assert image.mode == "RGBA"


def test_fetches_run_concurrently_within_the_bound(png, uploads) -> None:
    running, peak = 0, 0

    class SlowFetcher(ImageFetcher):
        def fetch(self, url: str) -> bytes:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            gevent.sleep(0.05)
            running -= 1
            return png

    settings = InputSettings(fetch_concurrency=3)
    jobs = [
        ImageJob(f"i{n}", f"https://img{n}.example/a.png", (("10", "image"),)) for n in range(7)
    ]
    prepare_images(
        graph_with_load_image("a.png"),
        jobs,
        upload=uploads,
        settings=settings,
        fetcher=SlowFetcher(settings),
    )
    assert peak == 3
    assert len(uploads.files) == 7


def test_upload_errors_propagate(png) -> None:
    def failing_upload(data: bytes, filename: str) -> str:
        raise ComfyUnavailable("ComfyUI is down")

    jobs = [ImageJob("image", png, (("10", "image"),))]
    with pytest.raises(ComfyUnavailable):
        prepare_images(
            graph_with_load_image("a.png"), jobs, upload=failing_upload, settings=InputSettings()
        )


def test_plain_file_names_need_no_upload(uploads) -> None:
    jobs = [ImageJob("image", "photos/cat.png", (("10", "image"),))]
    out = prepare_images(
        graph_with_load_image("a.png"), jobs, upload=uploads, settings=InputSettings()
    )
    assert out["10"]["inputs"]["image"] == "photos/cat.png" and uploads.files == {}
