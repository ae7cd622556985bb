"""`/openapi.json` matches what the gateway does (schemathesis), and `/docs` serves it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from comfysync import create_app
from comfysync.openapi.document import undeclared_routes

from .harness import FIXTURES, Gateway, Simulator

# Requests per operation and generation mode; over the ~45 operations of the
# document this is well past a thousand requests.
EXAMPLES = 25
MINIMUM_REQUESTS = 1000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# A workflow with typed parameters, small enough that any generated value runs fast.
SMALL = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
    },
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "small", "images": ["2", 0]}},
}
SMALL_PARAMS = {
    "description": "A small solid image, inverted.",
    "parameters": {
        "width": {"type": "int", "target": "1.width", "min": 1, "max": 64},
        "height": {"type": "int", "target": "1.height", "min": 1, "max": 64},
        "color": {"type": "int", "target": "1.color", "min": 0, "max": 16777215},
    },
}


@pytest.fixture(scope="module")
def workflows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("workflows")
    (folder / "small.json").write_text(json.dumps(SMALL))
    (folder / "small.params.json").write_text(json.dumps(SMALL_PARAMS))
    for name in ("invert.json", "text_to_size.json"):
        (folder / name).write_text((Path(FIXTURES) / "workflows" / name).read_text())
    return folder


@pytest.fixture(scope="module")
def service(workflows: Path) -> Iterator[Gateway]:
    sim = Simulator().start()
    gateway = Gateway(sim.url, env={"WORKFLOWS_DIR": str(workflows), "RUN_TIMEOUT": "20"}).start()
    yield gateway
    gateway.stop()
    sim.stop()


def test_every_route_is_described(tmp_path: Path) -> None:
    app = create_app(
        {
            "COMFYUI_URL": "http://127.0.0.1:9",
            "WORKFLOWS_DIR": FIXTURES,
            "DATA_DIR": str(tmp_path / "data"),
            "OUTPUT_DIR": str(tmp_path / "out"),
        }
    )
    # Pages for people, not API operations: the docs, the document, the playground.
    pages = ("/docs", "/static", "/openapi.json", "/playground")
    left_out = [r for r in undeclared_routes(app) if r != "/" and not r.startswith(pages)]
    assert left_out == []


def test_each_workflow_has_its_own_typed_operations(service: Gateway) -> None:
    document = service.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/api/workflows/small/generate"]["post"]
    assert operation["operationId"] == "generate_small"
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["width"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 64,
        "default": 8,
    }
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert {"run_small", "generate_invert", "run_text_to_size"} <= set(ids)


def test_a_typed_operation_runs_its_workflow(service: Gateway) -> None:
    answer = service.post("/api/workflows/small/generate", json={"width": 5, "height": 3})
    assert answer.status_code == 200, answer.text
    image = answer.json()["images"][0]
    assert (image["width"], image["height"]) == (5, 3)
    refused = service.post("/api/workflows/small/generate", json={"width": 65})
    assert refused.status_code == 400
    assert refused.json()["field"] == "width"


def test_docs_page_serves_swagger_ui_from_the_gateway(service: Gateway) -> None:
    page = service.get("/docs/")
    assert page.status_code == 200
    assert "/openapi.json" in page.text
    # Every script and stylesheet comes from the gateway itself: /docs works offline.
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.text)
    assert assets and not any(a.startswith(("http:", "https:", "//")) for a in assets)
    for asset in assets:
        assert requests.get(requests.compat.urljoin(page.url, asset), timeout=10).ok


def test_a_bad_body_lists_every_bad_field(service: Gateway) -> None:
    answer = service.post(
        "/api/generate",
        json={"workflow": "invert", "quality": 500, "randomize_seed": "maybe", "priority": 1.5},
    )
    assert answer.status_code == 400
    body = answer.json()
    fields = [e["field"] for e in body["errors"]]
    assert fields == ["quality", "randomize_seed", "priority"]
    assert body["field"] == "quality"
    assert body["error"] == "quality must be a whole number from 1 to 100 (got 500)"
    assert body["errors"][1]["message"] == "'randomize_seed' must be true or false"


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    service: Gateway,
) -> None:
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    session = requests.Session()
    sent = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                nonlocal sent
                response = case.call(base_url=service.url, session=session, timeout=60)
                sent += 1
                case.validate_response(response, checks=CHECKS)

            try:
                call()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label
                continue  # nothing in this operation can be made invalid (a bare string path)
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # noqa: BLE001 - pytest's and schemathesis' own too
                failures.append(f"{operation.label} ({mode.value}): {err}")
    assert not failures, "\n\n".join([*failures, "gateway log:", service.logs()[-6000:]])
    assert sent >= MINIMUM_REQUESTS
    # Refused is refused: no request, however hostile, left a traceback behind.
    assert "Traceback" not in service.logs()
