"""The Flask app without ComfyUI: routing, errors and API keys."""

from __future__ import annotations

import json
import os

import pytest

from comfysync import create_app
from comfysync.config import RunSettings, ServiceSettings, Settings


@pytest.fixture
def app(tmp_path):
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "one.json").write_text(json.dumps({"1": {"class_type": "A", "inputs": {}}}))
    (workflows / "one.params.json").write_text("{}")
    (workflows / "notes.txt").write_text("not a workflow")
    return create_app(
        {
            "WORKFLOWS_DIR": str(workflows),
            "OUTPUT_DIR": str(tmp_path / "out"),
            "DATA_DIR": str(tmp_path / "data"),
            "COMFYUI_URL": "http://127.0.0.1:9",
            "COMFYUI_RETRIES": "0",
        }
    )


@pytest.fixture
def client(app):
    return app.test_client()


def test_workflow_list_skips_declarations(client) -> None:
    assert client.get("/api/workflows").json == {"workflows": ["one"]}


def test_comfy_down_is_503(client) -> None:
    response = client.get("/api/test_comfy")
    assert response.status_code == 503
    assert response.json["status"] == "error"
    assert response.json["comfyui_url"] == "http://127.0.0.1:9/system_stats"


def test_api_keys(tmp_path) -> None:
    app = create_app(
        {
            "API_KEYS": "k1",
            "WORKFLOWS_DIR": str(tmp_path),
            "OUTPUT_DIR": str(tmp_path),
            "DATA_DIR": str(tmp_path),
        }
    )
    client = app.test_client()
    assert client.get("/api/workflows").status_code == 401
    assert client.get("/api/workflows", headers={"Authorization": "Bearer k1"}).status_code == 200
    assert client.get("/api/workflows", headers={"Authorization": "Basic k1"}).status_code == 401
    # OPTIONS is no way around the key (there is no CORS policy to answer for).
    refused = client.options("/api/generate")
    assert refused.status_code == 401 and refused.json["status_code"] == 401
    assert "Allow" not in refused.headers
    keyed = client.options("/api/generate", headers={"Authorization": "Bearer k1"})
    assert keyed.status_code == 200


def test_mapping_config_ignores_the_process_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("API_KEYS", "from-the-shell")
    monkeypatch.setenv("GENERATION_TIMEOUT", "nonsense")
    app = create_app(
        {"WORKFLOWS_DIR": str(tmp_path), "OUTPUT_DIR": str(tmp_path), "DATA_DIR": str(tmp_path)}
    )
    assert app.extensions["comfysync"].settings.service.api_keys == ()
    assert app.test_client().get("/api/workflows").status_code == 200


def test_settings_instance_is_used_as_given(tmp_path) -> None:
    settings = Settings(
        service=ServiceSettings(
            api_keys=("k1",), workflows_dir=str(tmp_path), output_dir=str(tmp_path)
        ),
        runs=RunSettings(data_dir=str(tmp_path)),
    )
    app = create_app(settings)
    assert app.extensions["comfysync"].settings is settings
    assert app.test_client().get("/api/workflows").status_code == 401


def test_output_images_are_served_without_listing(app, client) -> None:
    stored = app.extensions["comfysync"].local.write("d/x.png", [b"\x89PNG"], "image/png")
    with client.get("/output_images/d/x.png") as response:
        assert response.status_code == 200 and response.data == b"\x89PNG"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response.headers["Content-Security-Policy"]
    assert client.get("/output_images/d/").status_code == 404
    assert client.get("/output_images/../x.png").status_code == 404
    assert os.path.exists(stored.local_path)


def test_errors_are_json_with_status_code(client) -> None:
    response = client.post("/api/generate", data="[1]", content_type="application/json")
    assert response.status_code == 400
    assert response.json["status_code"] == 400
    assert client.get("/api/generate").status_code == 405
    assert client.get("/api/generate").json["status_code"] == 405


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_refused(client, constant: str) -> None:
    body = '{"workflow": "one", "patches": {"1": {"cfg": ' + constant + "}}}"
    response = client.post("/api/generate", data=body, content_type="application/json")
    assert response.status_code == 400
    assert f"{constant} is not a JSON number" in response.json["error"]
    multipart = client.post(
        "/api/generate", data={"payload": body}, content_type="multipart/form-data"
    )
    assert multipart.status_code == 400
    assert "is not a JSON number" in multipart.json["error"]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/history?max_items=%C2%B2", "max_items"),  # "²"
        ("/api/history?max_items=" + "9" * 5000, "max_items"),
        ("/api/runs?limit=%D9%A3", "limit"),  # "٣"
    ],
)
def test_query_numbers_in_other_digits_are_400(client, url: str, field: str) -> None:
    response = client.get(url)
    assert response.status_code == 400
    assert response.json["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # deeper than json can read
        '{"workflow": "one", "patches": {"1": ' + '{"a": ' * 300 + "1" + "}" * 302,
        '{"workflow_data": ' + "[" * 65 + "]" * 65 + "}",
    ],
)
def test_deeply_nested_bodies_are_400(client, body: str) -> None:
    response = client.post("/api/generate", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "nested deeper than 64 levels" in response.json["error"]
    multipart = client.post(
        "/api/generate", data={"payload": body}, content_type="multipart/form-data"
    )
    assert multipart.status_code == 400
    assert "nested deeper than 64 levels" in multipart.json["error"]


def test_a_body_nested_to_the_limit_is_read(client) -> None:
    body = '{"workflow": "one", "x": ' + "[" * 63 + "]" * 63 + "}"
    response = client.post("/api/generate", data=body, content_type="application/json")
    assert "nested" not in response.json["error"]


def test_a_bug_is_a_json_500_logged_with_the_request_id(app, caplog) -> None:
    def broken():
        raise KeyError("a bug")

    app.add_url_rule("/api/broken", view_func=broken)
    client = app.test_client()
    with caplog.at_level("ERROR", logger="comfysync.errors"):
        response = client.get("/api/broken", headers={"X-Request-Id": "req-42.a"})
    assert response.status_code == 500
    assert response.json == {
        "status": "error",
        "error": "Internal error",
        "error_type": "internal_error",
        "status_code": 500,
        "request_id": "req-42.a",
    }
    assert response.headers["X-Request-Id"] == "req-42.a"
    (entry,) = [r for r in caplog.records if r.name == "comfysync.errors"]
    assert "GET /api/broken (request req-42.a, key -)" in entry.getMessage()
    assert entry.exc_info is not None and entry.exc_info[0] is KeyError


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 129, "ünï"])
def test_every_answer_carries_a_request_id(client, incoming: str | None) -> None:
    headers = {"X-Request-Id": incoming} if incoming is not None else {}
    response = client.get("/api/nothing-here", headers=headers)
    assert response.status_code == 404
    request_id = response.headers["X-Request-Id"]
    assert request_id != incoming and len(request_id) == 32


def _cors_app(tmp_path, origins: str, keys: str = "k1"):
    return create_app(
        {
            "WORKFLOWS_DIR": str(tmp_path),
            "OUTPUT_DIR": str(tmp_path / "out"),
            "DATA_DIR": str(tmp_path / "data"),
            "COMFYUI_URL": "http://127.0.0.1:9",
            "API_KEYS": keys,
            "CORS_ORIGINS": origins,
        }
    ).test_client()


def _preflight(client, origin: str, headers: str = "authorization, content-type"):
    return client.options(
        "/api/generate",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


def test_cors_preflight_for_a_listed_origin_needs_no_key(tmp_path) -> None:
    client = _cors_app(tmp_path, "https://www.figma.com, http://localhost:3000")
    answer = _preflight(client, "https://www.figma.com")
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "https://www.figma.com"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert answer.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert "Origin" in answer.headers["Vary"]
    # The real request still needs its key, and carries the CORS headers either way.
    refused = client.get("/api/workflows", headers={"Origin": "https://www.figma.com"})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == "https://www.figma.com"
    ok = client.get(
        "/api/workflows",
        headers={"Origin": "http://localhost:3000", "Authorization": "Bearer k1"},
    )
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "X-Run-Id" in ok.headers["Access-Control-Expose-Headers"]


def test_cors_refuses_other_origins_and_headers(tmp_path) -> None:
    client = _cors_app(tmp_path, "https://www.figma.com")
    other = _preflight(client, "https://evil.example")
    assert other.status_code == 403 and other.json["error_type"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in other.headers
    odd = _preflight(client, "https://www.figma.com", "x-forwarded-for")
    assert odd.status_code == 403
    answer = client.get(
        "/api/workflows", headers={"Origin": "https://evil.example", "Authorization": "Bearer k1"}
    )
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers


def test_cors_star_never_comes_with_credentials(tmp_path) -> None:
    client = _cors_app(tmp_path, "*")
    answer = _preflight(client, "https://anywhere.example")
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in answer.headers


def test_without_cors_origins_a_preflight_is_just_an_unkeyed_options(tmp_path) -> None:
    client = _cors_app(tmp_path, "")
    answer = _preflight(client, "https://www.figma.com")
    assert answer.status_code == 401 and "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize("value", ["figma.com", "https://x.com/path", "ftp://x.com"])
def test_cors_origins_must_be_origins(tmp_path, value) -> None:
    from comfysync.config import ConfigError

    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        _cors_app(tmp_path, value)
