"""Typed `inputs` and input images, end to end: the real service under gunicorn, the simulator.

Every gateway here runs under the loopback guard (`isolation.py`): a connection it tries
to open to any address outside loopback is refused before it happens and recorded, so an
address-check bug shows up as a failed test, never as a request leaving this machine.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from .harness import ROOT, Gateway, Simulator
from .isolation import isolated_gateway, outside_connections, stop_quickly
from .pictures import ImageServer, Route, bomb_png, image_server, inverted, pixel, png, size_of

pytestmark = pytest.mark.e2e

PROJECT_WORKFLOWS = os.path.join(ROOT, "workflows")
PHOTO_COLOR = (10, 200, 30)
PHOTO = png((6, 4), PHOTO_COLOR)
BOMB = bomb_png(100_000, 100_000)  # Pillow refuses it when it reads the header
TALL_BOMB = bomb_png(7_000, 7_000)  # under Pillow's limit, over the gateway's 40 Mpx


def _deploy_node(kind: str, input_id: str, **inputs: Any) -> dict[str, Any]:
    return {
        "class_type": f"ComfyUIDeployExternal{kind}",
        "inputs": {"input_id": input_id, **inputs},
        "_meta": {"title": input_id},
    }


# As ComfyUI Deploy exports it: the graph's inputs are external nodes named by input_id.
# Output 4 is the input image scaled to width x height and inverted; output 7 is a
# solid `fill` image as wide as the `label` text is long.
DEPLOY_GRAPH: dict[str, Any] = {
    "2": {
        "class_type": "ImageScale",
        "inputs": {
            "image": ["20", 0],
            "upscale_method": "nearest-exact",
            "width": ["21", 0],
            "height": ["22", 0],
            "crop": "disabled",
        },
    },
    "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "d"}},
    "5": {"class_type": "StringLength", "inputs": {"string": ["23", 0]}},
    "6": {
        "class_type": "EmptyImage",
        "inputs": {"width": ["5", 0], "height": ["22", 0], "batch_size": 1, "color": ["24", 0]},
    },
    "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "l"}},
    "20": _deploy_node("Image", "input_image", default_value_url="", display_name="Input image"),
    "21": _deploy_node("NumberInt", "width", default_value=16),
    "22": _deploy_node("NumberSliderInt", "height", default_value=8, min_value=1, max_value=64),
    "23": _deploy_node("Text", "label", default_value="abc"),
    "24": _deploy_node("NumberInt", "fill", default_value=0),
}

# An inline graph whose LoadImage node gets its image straight in the graph.
LOAD_INVERT: dict[str, Any] = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "li"}},
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{b64(data)}"


def fields_of(response: requests.Response) -> dict[str, dict[str, str]]:
    """The `fields` of an invalid-inputs 400, by parameter name."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid inputs"
    assert body["status_code"] == 400
    return {field["name"]: field for field in body["fields"]}


def first_image(gateway: Gateway, response: requests.Response) -> bytes:
    """The bytes behind the first URL of a successful `/api/generate` answer."""
    assert response.status_code == 200, response.text
    served = gateway.get(response.json()["url"])
    assert served.status_code == 200
    return served.content


def uploaded_inputs(sim: Simulator) -> set[str]:
    """Files the gateway uploaded into the simulator's input folder."""
    folder = os.path.join(sim.workdir, "data", "input")
    return {name for name in os.listdir(folder) if name.startswith("comfysync_")}


@pytest.fixture(scope="module")
def served() -> Iterator[ImageServer]:
    """Images on a loopback HTTP server; `/redirect?to=` answers 302."""
    routes = {
        "/photo.png": Route(body=PHOTO),
        "/bomb.png": Route(body=BOMB),
        "/page.html": Route(body=b"<html>hi</html>", headers={"Content-Type": "text/html"}),
    }
    with image_server(routes) as server:
        yield server


@pytest.fixture(scope="module")
def workflows_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The project's workflows, plus the ComfyUI Deploy graph stored as `deploy_invert`."""
    folder = tmp_path_factory.mktemp("workflows")
    for name in os.listdir(PROJECT_WORKFLOWS):
        if name.endswith(".json"):
            shutil.copy(os.path.join(PROJECT_WORKFLOWS, name), folder / name)
    (folder / "deploy_invert.json").write_text(json.dumps(DEPLOY_GRAPH), encoding="utf-8")
    return str(folder)


@pytest.fixture(scope="module")
def gateway(shared_sim: Simulator, workflows_dir: str) -> Iterator[Gateway]:
    """The gateway with the loopback test server allowed through INPUT_ALLOW_HOSTS."""
    started = isolated_gateway(
        shared_sim.url, WORKFLOWS_DIR=workflows_dir, INPUT_ALLOW_HOSTS="127.0.0.1"
    ).start()
    yield started
    stop_quickly(started)


@pytest.fixture(scope="module")
def strict_gateway() -> Iterator[Gateway]:
    """The gateway with default input settings, on the project's own workflows folder.

    Its tests (address checks, schemas) never depend on ComfyUI's version: one simulator.
    """
    sim = Simulator().start()
    started = isolated_gateway(sim.url, WORKFLOWS_DIR=PROJECT_WORKFLOWS).start()
    yield started
    stop_quickly(started)
    sim.stop()


# -- typed parameters of a named workflow --


def test_named_workflow_inputs_set_size_and_colour(gateway: Gateway) -> None:
    inputs = {"width": 24, "height": "10", "color": "0xff8800"}
    response = gateway.post("/api/generate", json={"workflow": "demo_invert", "inputs": inputs})
    image = first_image(gateway, response)
    assert size_of(image) == (24, 10)
    assert pixel(image) == inverted(0xFF8800)
    described = response.json()["images"][0]
    assert (described["width"], described["height"]) == (24, 10)


def test_named_workflow_without_inputs_keeps_the_graphs_values(gateway: Gateway) -> None:
    response = gateway.post("/api/generate", json={"workflow": "demo_invert"})
    image = first_image(gateway, response)
    assert size_of(image) == (512, 512)
    assert pixel(image) == (255, 255, 255)


def test_every_invalid_input_is_listed_in_one_answer(
    gateway: Gateway, shared_sim: Simulator
) -> None:
    accepted = shared_sim.stats()["prompts_accepted"]
    inputs = {"width": "wide", "height": 5000, "color": -1, "colour": 255, "seed": 1}
    response = gateway.post("/api/generate", json={"workflow": "demo_invert", "inputs": inputs})
    fields = fields_of(response)
    assert set(fields) == {"width", "height", "color", "colour", "seed"}
    assert fields["width"]["reason"] == "not an integer"
    assert fields["height"] == {
        "name": "height",
        "expected": "integer from 1 to 4096",
        "got": "5000",
        "reason": "above the maximum of 4096",
    }
    assert fields["color"]["reason"] == "below the minimum of 0"
    assert fields["colour"]["reason"] == fields["seed"]["reason"] == "unknown parameter"
    assert "width" in fields["colour"]["expected"]
    assert shared_sim.stats()["prompts_accepted"] == accepted  # nothing reached ComfyUI


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("width", "wide", "not an integer"),
        ("width", 2.5, "not a whole number"),
        ("width", True, "expected an integer, got a boolean"),
        ("width", [32], "expected an integer, got an array"),
        ("height", 0, "below the minimum of 1"),
        ("height", 4097, "above the maximum of 4096"),
        ("color", None, "null is not a value"),
        ("colour", 1, "unknown parameter"),
    ],
    ids=["text", "fraction", "boolean", "array", "below_min", "above_max", "null", "unknown"],
)
def test_a_bad_input_is_400_naming_the_field(
    gateway: Gateway, name: str, value: Any, reason: str
) -> None:
    response = gateway.post(
        "/api/generate", json={"workflow": "demo_invert", "inputs": {name: value}}
    )
    assert fields_of(response)[name]["reason"] == reason


def test_inputs_must_be_an_object(gateway: Gateway) -> None:
    response = gateway.post("/api/generate", json={"workflow": "demo_invert", "inputs": [1, 2]})
    assert response.status_code == 400
    assert "'inputs' must be an object" in response.json()["error"]


def test_inputs_on_a_graph_without_parameters_are_unknown(gateway: Gateway) -> None:
    body = {"workflow_data": LOAD_INVERT, "inputs": {"width": 3}}
    fields = fields_of(gateway.post("/api/generate", json=body))
    assert fields["width"]["reason"] == "unknown parameter"


def test_queue_only_endpoint_checks_inputs_too(gateway: Gateway) -> None:
    bad = gateway.post("/api/workflow/demo_invert", json={"inputs": {"width": 0}})
    assert fields_of(bad)["width"]["reason"] == "below the minimum of 1"
    good = gateway.post("/api/workflow/demo_invert", json={"inputs": {"width": 8, "height": 8}})
    assert good.status_code == 200, good.text
    assert good.json()["prompt_id"]


# -- the workflow list and schemas --


def test_workflow_list_has_no_params_entries(strict_gateway: Gateway) -> None:
    response = strict_gateway.get("/api/workflows")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["workflows"]
    expected = sorted(
        name.removesuffix(".json")
        for name in os.listdir(PROJECT_WORKFLOWS)
        if name.endswith(".json") and not name.endswith(".params.json")
    )
    assert body["workflows"] == expected
    assert "demo_invert" in body["workflows"]
    assert not [name for name in body["workflows"] if name.endswith(".params")]


def test_workflow_schema_describes_each_parameter(strict_gateway: Gateway) -> None:
    response = strict_gateway.get("/api/workflows/demo_invert")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "demo_invert"
    assert body["description"].startswith("Model-free demo")
    by_name = {param["name"]: param for param in body["parameters"]}
    assert [param["name"] for param in body["parameters"]] == ["width", "height", "color"]
    assert by_name["width"] == {
        "name": "width",
        "type": "int",
        "default": 512,  # the graph's own value, as there is no declared default
        "required": False,
        "description": "Width in pixels.",
        "display_name": "width",
        "min": 1,
        "max": 4096,
        "choices": None,
        "targets": [{"node": "1", "input": "width"}],
        "source": "declaration",
    }
    assert by_name["color"]["max"] == 0xFFFFFF
    image = strict_gateway.get("/api/workflows/demo_image_invert").json()["parameters"]
    assert image[0]["type"] == "image" and image[0]["required"] is True


def test_schema_of_a_comfyui_deploy_graph_comes_from_its_nodes(gateway: Gateway) -> None:
    body = gateway.get("/api/workflows/deploy_invert").json()
    params = {param["name"]: param for param in body["parameters"]}
    assert list(params) == ["input_image", "width", "height", "label", "fill"]
    assert {param["source"] for param in params.values()} == {"comfyui_deploy"}
    assert params["input_image"]["required"] is True
    assert params["input_image"]["display_name"] == "Input image"
    assert (params["height"]["min"], params["height"]["max"], params["height"]["default"]) == (
        1,
        64,
        8,
    )
    assert params["label"] == params["label"] | {"type": "string", "default": "abc"}


@pytest.mark.parametrize(
    ("name", "status"),
    [("demo_invert.params", 400), ("does_not_exist", 404), ("..%2Fdemo_invert", 404)],
)
def test_schema_of_something_that_is_not_a_workflow(
    strict_gateway: Gateway, name: str, status: int
) -> None:
    response = strict_gateway.get(f"/api/workflows/{name}")
    assert response.status_code == status
    assert response.json()["status_code"] == status


# -- input images: every way of sending one --


def _as_base64(gateway: Gateway, data: bytes, server: ImageServer) -> requests.Response:
    body = {"workflow": "demo_image_invert", "inputs": {"image": b64(data)}}
    return gateway.post("/api/generate", json=body)


def _as_data_url(gateway: Gateway, data: bytes, server: ImageServer) -> requests.Response:
    body = {"workflow": "demo_image_invert", "inputs": {"image": data_url(data)}}
    return gateway.post("/api/generate", json=body)


def _as_upload(gateway: Gateway, data: bytes, server: ImageServer) -> requests.Response:
    return gateway.post(
        "/api/generate",
        data={"payload": json.dumps({"workflow": "demo_image_invert"})},
        files={"image": ("photo.png", data, "image/png")},
    )


def _as_url(gateway: Gateway, data: bytes, server: ImageServer) -> requests.Response:
    path = {PHOTO: "/photo.png", BOMB: "/bomb.png"}[data]
    body = {"workflow": "demo_image_invert", "inputs": {"image": server.url(path)}}
    return gateway.post("/api/generate", json=body)


Sender = Callable[[Gateway, bytes, ImageServer], requests.Response]
SENDERS: list[Sender] = [_as_base64, _as_data_url, _as_upload, _as_url]
SENDER_IDS = ["base64", "data_url", "multipart", "url"]


@pytest.mark.parametrize("send", SENDERS, ids=SENDER_IDS)
def test_input_image_comes_back_inverted(
    gateway: Gateway, served: ImageServer, send: Sender
) -> None:
    response = send(gateway, PHOTO, served)
    image = first_image(gateway, response)
    assert size_of(image) == (6, 4)
    assert pixel(image, (5, 3)) == inverted(PHOTO_COLOR)


def test_url_image_is_fetched_from_the_allowed_host(gateway: Gateway, served: ImageServer) -> None:
    before = len(served.paths)
    first_image(gateway, _as_url(gateway, PHOTO, served))
    assert served.paths[before:] == ["/photo.png"]
    assert outside_connections(gateway) == []


def test_redirect_within_the_allowed_host_is_followed(
    gateway: Gateway, served: ImageServer
) -> None:
    url = served.url("/redirect?to=" + quote("/photo.png"))
    body = {"workflow": "demo_image_invert", "inputs": {"image": url}}
    image = first_image(gateway, gateway.post("/api/generate", json=body))
    assert pixel(image) == inverted(PHOTO_COLOR)


def test_multipart_upload_to_generate_file_streams_the_result(gateway: Gateway) -> None:
    response = gateway.post(
        "/api/generate_file",
        data={"payload": json.dumps({"workflow": "demo_image_invert"})},
        files={"image": ("photo.png", PHOTO, "image/png")},
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    assert pixel(response.content) == inverted(PHOTO_COLOR)


def test_multipart_file_and_field_for_the_same_parameter_is_refused(gateway: Gateway) -> None:
    payload = {"workflow": "demo_image_invert", "inputs": {"image": b64(PHOTO)}}
    response = gateway.post(
        "/api/generate",
        data={"payload": json.dumps(payload)},
        files={"image": ("photo.png", PHOTO, "image/png")},
    )
    assert fields_of(response)["image"]["reason"] == "given twice"


def test_load_image_node_of_an_inline_graph_takes_base64(gateway: Gateway) -> None:
    graph = json.loads(json.dumps(LOAD_INVERT))
    graph["1"]["inputs"]["image"] = b64(PHOTO)
    image = first_image(gateway, gateway.post("/api/generate", json={"workflow_data": graph}))
    assert size_of(image) == (6, 4)
    assert pixel(image) == inverted(PHOTO_COLOR)


def test_load_image_node_patched_with_a_data_url(gateway: Gateway) -> None:
    body = {
        "workflow_data": LOAD_INVERT,
        "patches": {"1": {"inputs": {"image": data_url(png((3, 3), (0, 0, 255)))}}},
    }
    image = first_image(gateway, gateway.post("/api/generate", json=body))
    assert pixel(image) == (255, 255, 0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (data_url(b"hello, not an image"), "not an image"),
        (data_url(PHOTO, "text/html"), "not an image"),
        ("data:image/png;base64,!!!!", "not an image"),
        ("../../etc/passwd", "must be a file name without folders"),
        ("file:///etc/passwd", "blocked address"),
        ("ftp://127.0.0.1/photo.png", "blocked address"),
    ],
    ids=["text_data_url", "html_media_type", "bad_base64", "path_escape", "file", "ftp"],
)
def test_unusable_image_is_400_naming_the_parameter(
    gateway: Gateway, shared_sim: Simulator, value: str, reason: str
) -> None:
    uploads = uploaded_inputs(shared_sim)
    body = {"workflow": "demo_image_invert", "inputs": {"image": value}}
    field = fields_of(gateway.post("/api/generate", json=body))["image"]
    assert field["reason"].startswith(reason)
    assert uploaded_inputs(shared_sim) == uploads


def test_more_images_than_allowed_lists_each_one(gateway: Gateway) -> None:
    graph: dict[str, Any] = {}
    for i in range(9):  # INPUT_MAX_IMAGES is 8 by default
        graph[str(10 + i)] = {"class_type": "LoadImage", "inputs": {"image": b64(PHOTO)}}
        graph[str(30 + i)] = {
            "class_type": "SaveImage",
            "inputs": {"images": [str(10 + i), 0], "filename_prefix": "many"},
        }
    fields = fields_of(gateway.post("/api/generate", json={"workflow_data": graph}))
    assert set(fields) == {f"{10 + i}.image" for i in range(9)}
    assert {field["reason"] for field in fields.values()} == {
        "too many images: at most 8 per request"
    }


def test_missing_required_image_is_400(gateway: Gateway) -> None:
    response = gateway.post("/api/generate", json={"workflow": "demo_image_invert"})
    assert fields_of(response)["image"]["reason"] == "required"


def test_image_from_a_page_that_is_not_an_image_is_400(
    gateway: Gateway, served: ImageServer
) -> None:
    body = {"workflow": "demo_image_invert", "inputs": {"image": served.url("/page.html")}}
    field = fields_of(gateway.post("/api/generate", json=body))["image"]
    assert field["reason"].startswith("not an image")


# -- decompression bombs --


@pytest.mark.parametrize("send", SENDERS, ids=SENDER_IDS)
def test_decompression_bomb_is_400_naming_the_parameter(
    gateway: Gateway, shared_sim: Simulator, served: ImageServer, send: Sender
) -> None:
    uploads = uploaded_inputs(shared_sim)
    field = fields_of(send(gateway, BOMB, served))["image"]
    assert field["reason"].startswith("too large")
    assert uploaded_inputs(shared_sim) == uploads  # never handed to ComfyUI


def test_image_over_the_pixel_limit_is_400(gateway: Gateway) -> None:
    body = {"workflow": "demo_image_invert", "inputs": {"image": b64(TALL_BOMB)}}
    field = fields_of(gateway.post("/api/generate", json=body))["image"]
    assert field["reason"].startswith("too large")
    assert "7000x7000" in field["reason"]


def test_bomb_in_an_inline_load_image_node_names_the_node(gateway: Gateway) -> None:
    graph = json.loads(json.dumps(LOAD_INVERT))
    graph["1"]["inputs"]["image"] = data_url(BOMB)
    fields = fields_of(gateway.post("/api/generate", json={"workflow_data": graph}))
    assert fields["1.image"]["reason"].startswith("too large")


# -- addresses that may not be fetched --


def _blocked(gateway: Gateway, url: str) -> dict[str, str]:
    """Send `url` as the image and return the 400's field; no connection may go out."""
    tried = len(outside_connections(gateway))
    body = {"workflow": "demo_image_invert", "inputs": {"image": url}}
    field = fields_of(gateway.post("/api/generate", json=body))["image"]
    assert outside_connections(gateway)[tried:] == [], "the gateway tried to connect out"
    return field


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_url_is_blocked_by_default(
    strict_gateway: Gateway, served: ImageServer, host: str
) -> None:
    before = len(served.paths)
    field = _blocked(strict_gateway, f"http://{host}:{served.port}/photo.png")
    assert field["reason"].startswith("blocked address")
    assert field["got"] == f"http://{host}:{served.port}/photo.png"
    assert served.paths[before:] == []  # the server never saw a request


# Literal addresses: ipaddress parses them, so they are judged before any connection.
INTERNAL_URLS = [
    "http://10.0.0.1/image.png",
    "http://172.16.5.4/image.png",
    "http://192.168.1.1/image.png",
    "http://100.64.0.1/image.png",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",  # AWS, GCP, Azure instance metadata
    "http://168.63.129.16/machine",  # Azure wire server (a public-looking address)
    "http://0.0.0.0/image.png",
    "http://[::1]/image.png",
    "http://[fd00::1]/image.png",  # IPv6 unique local
    "http://[fe80::1]/image.png",  # IPv6 link-local
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    "http://[::ffff:169.254.169.254]/latest/",  # IPv4-mapped
    "http://[64:ff9b::a9fe:a9fe]/latest/",  # NAT64 of 169.254.169.254
    "http://[2002:a9fe:a9fe::1]/latest/",  # 6to4 of 169.254.169.254
    "https://10.0.0.1:8443/image.png",
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_address_is_blocked_before_any_connection(
    strict_gateway: Gateway, url: str
) -> None:
    field = _blocked(strict_gateway, url)
    assert field["reason"].startswith("blocked address")
    # The answer does not help map the network: it names the host, not what it resolved to.
    assert "resolves to an address that may not be fetched" in field["reason"]


# IPv6 forms that carry an internal IPv4 address in their last 32 bits, as the 6to4,
# NAT64 and IPv4-mapped forms above do; the guard refuses the connection if it is tried.
EMBEDDED_IPV4_URLS = [
    "http://[::a9fe:a9fe]/latest/",  # IPv4-compatible ::169.254.169.254 (::/96)
    "http://[::7f00:1]/",  # IPv4-compatible ::127.0.0.1
    "http://[64:ff9b:1::a9fe:a9fe]/latest/",  # local-use NAT64 prefix (RFC 8215)
    "http://[::ffff:0:a00:1]/",  # IPv4-translated ::ffff:0:10.0.0.1 (RFC 2765)
]


@pytest.mark.parametrize("url", EMBEDDED_IPV4_URLS)
def test_ipv6_forms_of_internal_ipv4_addresses_are_blocked(
    strict_gateway: Gateway, url: str
) -> None:
    assert _blocked(strict_gateway, url)["reason"].startswith("blocked address")


def _parses_without_dns(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except OSError:
        return False
    return True


# Not addresses to Python, so they go through the resolver: the C library reads them as
# numbers (no DNS query) and the address they resolve to is what gets checked.
NUMERIC_HOSTS = [
    ("2852039166", "decimal 169.254.169.254"),
    ("0xa9fea9fe", "hex 169.254.169.254"),
    ("10.1", "short 10.0.0.1"),
    ("0177.0.0.1", "octal 127.0.0.1"),
    ("127.1", "short 127.0.0.1"),
]


@pytest.mark.parametrize(("host", "meaning"), NUMERIC_HOSTS, ids=[h for h, _ in NUMERIC_HOSTS])
def test_host_that_resolves_to_an_internal_address_is_blocked(
    strict_gateway: Gateway, served: ImageServer, host: str, meaning: str
) -> None:
    if not _parses_without_dns(host):
        pytest.skip(f"this C library would look {host!r} ({meaning}) up in DNS")
    before = len(served.paths)
    field = _blocked(strict_gateway, f"http://{host}:{served.port}/photo.png")
    assert field["reason"].startswith("blocked address")
    assert served.paths[before:] == []


@pytest.mark.parametrize(
    "authority",
    ["127.0.0.1:{port}@10.0.0.1", "127.0.0.1:{port}\\@169.254.169.254", "[::1]@192.168.1.1"],
)
def test_userinfo_tricks_do_not_hide_the_real_host(
    gateway: Gateway, served: ImageServer, authority: str
) -> None:
    before = len(served.paths)
    field = _blocked(gateway, f"http://{authority.format(port=served.port)}/photo.png")
    assert field["reason"].startswith("blocked address")
    assert served.paths[before:] == []


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/image.png",
        "http://192.168.1.1/image.png",
        "http://[fd00::1]/image.png",
        "http://2852039166/latest/meta-data/",
        "file:///etc/passwd",
    ],
)
def test_redirect_into_a_blocked_address_is_refused(
    gateway: Gateway, served: ImageServer, target: str
) -> None:
    if "2852039166" in target and not _parses_without_dns("2852039166"):
        pytest.skip("this C library would look the decimal host up in DNS")
    before = len(served.paths)
    field = _blocked(gateway, served.url("/redirect?to=" + quote(target, safe="")))
    assert field["reason"].startswith("blocked address")
    assert [path.split("?")[0] for path in served.paths[before:]] == ["/redirect"]


# -- a ComfyUI Deploy graph, driven purely by input_id --


def test_comfyui_deploy_graph_runs_on_plain_comfyui(gateway: Gateway) -> None:
    inputs = {
        "input_image": b64(PHOTO),
        "width": 12,
        "height": "10",
        "label": "seven!!",
        "fill": "0x123456",
    }
    response = gateway.post("/api/generate", json={"workflow_data": DEPLOY_GRAPH, "inputs": inputs})
    assert response.status_code == 200, response.text
    images = response.json()["images"]
    assert [image["node_id"] for image in images] == ["4", "7"]
    scaled = gateway.get(images[0]["url"]).content
    assert size_of(scaled) == (12, 10)
    assert pixel(scaled, (11, 9)) == inverted(PHOTO_COLOR)
    label = gateway.get(images[1]["url"]).content
    assert size_of(label) == (len("seven!!"), 10)
    assert pixel(label) == (0x12, 0x34, 0x56)


def test_comfyui_deploy_defaults_come_from_the_nodes(gateway: Gateway, served: ImageServer) -> None:
    inputs = {"input_image": served.url("/photo.png")}
    response = gateway.post("/api/generate", json={"workflow": "deploy_invert", "inputs": inputs})
    assert response.status_code == 200, response.text
    images = response.json()["images"]
    assert [(image["width"], image["height"]) for image in images] == [(16, 8), (3, 8)]


def test_comfyui_deploy_image_wired_in_is_used_when_none_is_given(gateway: Gateway) -> None:
    graph = json.loads(json.dumps(DEPLOY_GRAPH))
    graph["30"] = {
        "class_type": "EmptyImage",
        "inputs": {"width": 5, "height": 5, "batch_size": 1, "color": 0xFF0000},
    }
    graph["20"]["inputs"]["default_value"] = ["30", 0]
    response = gateway.post("/api/generate", json={"workflow_data": graph})
    assert pixel(first_image(gateway, response)) == (0, 255, 255)


def test_comfyui_deploy_inputs_are_checked_like_declared_ones(gateway: Gateway) -> None:
    inputs = {"height": 65, "width": "wide", "extra": 1}
    body = {"workflow_data": DEPLOY_GRAPH, "inputs": inputs}
    fields = fields_of(gateway.post("/api/generate", json=body))
    assert set(fields) == {"input_image", "height", "width", "extra"}
    assert fields["input_image"]["reason"] == "required"
    assert fields["height"]["reason"] == "above the maximum of 64"
    assert fields["extra"]["reason"] == "unknown parameter"


def test_comfyui_deploy_image_as_multipart_upload(gateway: Gateway) -> None:
    payload = {"workflow_data": DEPLOY_GRAPH, "inputs": {"width": 4, "height": 4}}
    response = gateway.post(
        "/api/generate_file",
        data={"payload": json.dumps(payload)},
        files={"input_image": ("in.png", PHOTO, "image/png")},
    )
    assert response.status_code == 200, response.text
    assert size_of(response.content) == (4, 4)
    assert pixel(response.content) == inverted(PHOTO_COLOR)


# -- file names outside ComfyUI's input folder --

ESCAPES = [
    "/etc/passwd",
    "../../../etc/hostname",
    "..\\..\\secret.png",
    "sub/../../x.png",
    "ComfyUI_00001_.png [output]",
    "x.png [temp]",
    "x.png[input]",
]


@pytest.mark.parametrize("name", ESCAPES)
@pytest.mark.parametrize("via", ["workflow_data", "patches"])
def test_a_loader_never_opens_a_file_outside_the_input_folder(
    shared_gateway: Gateway, shared_sim: Simulator, name: str, via: str
) -> None:
    accepted = shared_sim.stats()["prompts_accepted"]
    graph = json.loads(json.dumps(LOAD_INVERT))
    if via == "workflow_data":
        graph["1"]["inputs"]["image"] = name
        body: dict[str, Any] = {"workflow_data": graph}
    else:
        body = {"workflow_data": graph, "patches": {"1": {"inputs": {"image": name}}}}
    response = shared_gateway.post("/api/generate", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "1.image"
    assert "input folder" in response.json()["error"]
    assert shared_sim.stats()["prompts_accepted"] == accepted  # never submitted


@pytest.mark.parametrize(
    ("class_type", "input_name"),
    [
        ("LoadImageMask", "image"),
        ("LoadAudio", "audio"),
        ("LoadVideo", "file"),
        ("LoadLatent", "latent"),
        ("VHS_LoadVideo", "video"),
    ],
)
def test_every_known_loader_is_checked(
    shared_gateway: Gateway, class_type: str, input_name: str
) -> None:
    graph = {
        "1": {"class_type": class_type, "inputs": {input_name: "/etc/passwd"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
    }
    response = shared_gateway.post("/api/generate", json={"workflow_data": graph})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == f"1.{input_name}"


def test_a_linked_file_name_is_left_to_comfyui(shared_gateway: Gateway) -> None:
    graph = json.loads(json.dumps(LOAD_INVERT))
    graph["9"] = {"class_type": "PrimitiveString", "inputs": {"value": "missing.png"}}
    graph["1"]["inputs"]["image"] = ["9", 0]
    response = shared_gateway.post("/api/generate", json={"workflow_data": graph})
    assert "input folder" not in response.text  # whatever ComfyUI makes of it, not refused
