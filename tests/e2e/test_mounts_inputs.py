"""Image inputs named `alias:name`, end to end: read from an input mount, nothing outside it."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import ROOT, Gateway, Simulator
from .pictures import inverted, pixel, png, size_of

pytestmark = pytest.mark.e2e

KEY = "0123456789abcdef-key"
CAT_COLOR = (40, 90, 220)
CAT = png((7, 5), CAT_COLOR)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`attachments` (an input mount) with a cat and a link out, `served` (served only)."""
    root = tmp_path_factory.mktemp("mounts")
    (root / "attachments" / "sub").mkdir(parents=True)
    (root / "attachments" / "sub" / "cat.png").write_bytes(CAT)
    (root / "served").mkdir()
    (root / "served" / "other.png").write_bytes(png((3, 3), (1, 1, 1)))
    (root / "x.png").write_bytes(png((2, 2), (255, 0, 0)))
    os.symlink(root / "x.png", root / "attachments" / "leak.png")
    return root


@pytest.fixture(scope="module")
def gateway(folders: Path) -> Iterator[Gateway]:
    sim = Simulator().start()
    started = Gateway(
        sim.url,
        env={
            "WORKFLOWS_DIR": os.path.join(ROOT, "workflows"),
            "FILE_MOUNTS": f"attachments:{folders / 'attachments'};served:{folders / 'served'}",
            "FILE_ACCESS_KEY": KEY,
            "INPUT_MOUNTS": "attachments",
        },
    ).start()
    yield started
    started.stop()
    sim.stop()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def generate(gateway: Gateway, image: str):
    return gateway.post(
        "/api/generate", json={"workflow": "demo_image_invert", "inputs": {"image": image}}
    )


def test_an_image_from_an_input_mount_is_used(gateway: Gateway) -> None:
    response = generate(gateway, "attachments:sub/cat.png")
    assert response.status_code == 200, response.text
    served = gateway.get(response.json()["url"])
    assert served.status_code == 200
    assert size_of(served.content) == (7, 5)
    assert pixel(served.content, (6, 4)) == inverted(CAT_COLOR)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("attachments:../x.png", "blocked path: '..' is not allowed in a mount path"),
        ("attachments:leak.png", "blocked path: 'leak.png' leads outside the mount 'attachments'"),
        ("served:other.png", "blocked path: 'served' is not a mount input images may be read"),
        ("attachments:sub/missing.png", "not found: no file 'sub/missing.png' in the mount"),
    ],
    ids=["traversal", "symlink-out", "not-an-input-mount", "missing"],
)
def test_a_refused_mount_file_is_a_400_naming_the_field(
    gateway: Gateway, value: str, reason: str
) -> None:
    response = generate(gateway, value)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["field"] == "image"
    (field,) = body["fields"]
    assert field["name"] == "image" and field["got"] == value
    assert field["reason"].startswith(reason), field["reason"]


def test_an_input_mount_outside_file_mounts_stops_the_start(folders: Path) -> None:
    gateway = Gateway(
        "http://127.0.0.1:9",
        env={
            "FILE_MOUNTS": f"attachments:{folders / 'attachments'}",
            "FILE_ACCESS_KEY": KEY,
            "INPUT_MOUNTS": "attachments,elsewhere",
        },
    )
    with pytest.raises(RuntimeError) as caught:
        gateway.start()
    assert "INPUT_MOUNTS" in str(caught.value) and "'elsewhere'" in str(caught.value)


def test_output_urls_point_into_the_mount_that_holds_output_dir() -> None:
    sim = Simulator().start()
    gateway = Gateway(
        sim.url,
        env={"WORKFLOWS_DIR": os.path.join(ROOT, "workflows"), "OUTPUT_URL_STYLE": "mounts"},
    )
    # OUTPUT_DIR is `output_images` inside the gateway's own work folder: mount that folder.
    gateway.env |= {"FILE_MOUNTS": f"scratch:{gateway.workdir}", "FILE_ACCESS_KEY": KEY}
    try:
        gateway.start()
        response = gateway.post(
            "/api/generate",
            json={"workflow": "demo_image_invert", "inputs": {"image": data_url(CAT)}},
        )
        assert response.status_code == 200, response.text
        url = response.json()["url"]
        assert url.startswith(f"/comfyui_server/pw={KEY}/files/scratch/output_images/"), url
        served = gateway.get(url)
        assert served.status_code == 200
        assert pixel(served.content, (6, 4)) == inverted(CAT_COLOR)
        assert gateway.get(url.replace(KEY, "wrong-key-0123456789")).status_code == 401
    finally:
        gateway.stop()
        sim.stop()
