"""Versions, aliases and node titles through the real gateway, against the simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .harness import Gateway, Simulator, chain, until
from .pictures import inverted, pixel

pytestmark = pytest.mark.e2e

# Each version paints its own colour, so the image says which one ran.
COLORS = {"v1": 0x101010, "v2": 0x202020, "v3": 0x303030}


def _titled(color: int) -> dict:
    graph = chain(color)
    graph["1"]["_meta"] = {"title": "Canvas"}
    graph["3"]["_meta"] = {"title": "Result"}
    graph["4"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["1", 0], "filename_prefix": "raw"},
        "_meta": {"title": "Raw"},
    }
    return graph


@pytest.fixture(scope="module")
def versioned(shared_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose `paint` workflow has v1-v3, production = v1 and staging = v2."""
    root = tmp_path_factory.mktemp("workflows")
    (root / "paint").mkdir()
    for version, color in COLORS.items():
        (root / "paint" / f"{version}.json").write_text(json.dumps(_titled(color)))
    (root / "paint" / "aliases.json").write_text('{"production": "v1", "staging": "v2"}')
    flat = _titled(0x404040)
    flat["4"]["_meta"]["title"] = "Result"  # two nodes with one title
    (root / "flat.json").write_text(json.dumps(flat))
    gateway = Gateway(shared_sim.url, env={"WORKFLOWS_DIR": str(root)}).start()
    yield gateway
    gateway.stop()


def _color_of(gateway: Gateway, body: dict) -> tuple[int, int, int]:
    response = gateway.post("/api/generate", json={"output_node_id": "Result", **body})
    assert response.status_code == 200, response.text
    images = response.json()["images"]
    assert [image["node_id"] for image in images] == ["3"]
    return pixel(gateway.get(images[0]["url"]).content)


@pytest.mark.parametrize(
    ("workflow", "version"),
    [("paint", "v1"), ("paint@production", "v1"), ("paint@staging", "v2"), ("paint@v3", "v3")],
)
def test_generate_runs_the_version_a_reference_picks(
    versioned: Gateway, workflow: str, version: str
) -> None:
    assert _color_of(versioned, {"workflow": workflow}) == inverted(COLORS[version])


def test_patches_by_title(versioned: Gateway) -> None:
    body = {"workflow": "paint@staging", "patches": {"Canvas": {"inputs": {"color": 0x0000FF}}}}
    assert _color_of(versioned, body) == inverted(0x0000FF)


def test_a_run_started_by_deployment_id_with_an_alias(versioned: Gateway) -> None:
    response = versioned.post(
        "/api/run", json={"deployment_id": "paint@v3", "output_node_id": "Raw"}
    )
    assert response.status_code == 201, response.text
    run_id = response.json()["run_id"]
    path = f"/api/status/{run_id}"
    record = until(lambda: (body := versioned.get(path).json())["status"] == "success" and body)
    assert [image["node_id"] for image in record["images"]] == ["4"]
    assert pixel(versioned.get(record["images"][0]["url"]).content)[0] == 0x30  # not inverted


def test_an_unknown_alias_is_404_naming_what_exists(versioned: Gateway) -> None:
    response = versioned.post("/api/generate", json={"workflow": "paint@canary"})
    assert response.status_code == 404
    body = response.json()
    assert body["versions"] == ["v1", "v2", "v3"]
    assert "production (v1)" in body["error"] and "staging (v2)" in body["error"]


def test_an_ambiguous_title_is_400_with_the_candidates(versioned: Gateway) -> None:
    response = versioned.post(
        "/api/generate", json={"workflow": "flat", "output_node_id": "Result"}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "output_node_id"
    assert response.json()["candidates"] == ["3", "4"]


def test_an_unknown_title_is_400_naming_the_field(versioned: Gateway) -> None:
    body = {"workflow": "paint", "patches": {"Nope": {"inputs": {"color": 1}}}}
    response = versioned.post("/api/generate", json=body)
    assert response.status_code == 400
    assert response.json()["field"] == "patches"
    assert "Nope" in response.json()["error"]


def test_listing_and_schema_show_versions(versioned: Gateway) -> None:
    listing = versioned.get("/api/workflows").json()
    assert listing["workflows"] == ["flat", "paint"]
    assert listing["deployments"] == {
        "paint": {
            "versions": ["v1", "v2", "v3"],
            "aliases": {"production": "v1", "staging": "v2"},
            "default": "v1",
        }
    }
    schema = versioned.get("/api/workflows/paint@staging").json()
    assert schema["name"] == "paint@staging" and schema["version"] == "v2"
    assert versioned.get("/api/workflows/paint@v9").status_code == 404
    assert versioned.get("/api/workflows/paint@..").status_code == 400
