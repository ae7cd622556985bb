"""Named keys from API_KEYS_FILE: scopes, workflows, own runs only, rate limits."""

from __future__ import annotations

import hashlib
import json

import pytest

from comfysync import create_app
from comfysync.config import ConfigError
from comfysync.keys import Rate, load_keys_file, main, parse_rate
from comfysync.ratelimit import MemoryCounters, RateLimiter
from comfysync.runs import RunRecord

KEYS = {"gen": "csk_generate-only", "reader": "csk_runs-only", "ops": "csk_admin", "w": "csk_w"}


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def app(tmp_path):
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "allowed.json").write_text(json.dumps({"1": {"class_type": "A", "inputs": {}}}))
    (workflows / "other.json").write_text(json.dumps({"1": {"class_type": "A", "inputs": {}}}))
    keys = tmp_path / "keys.toml"
    keys.write_text(
        f"""
[[keys]]
name = "gen"
sha256 = "{_sha(KEYS["gen"])}"
scopes = ["generate"]

[[keys]]
name = "reader"
sha256 = "{_sha(KEYS["reader"])}"
scopes = ["runs"]

[[keys]]
name = "ops"
sha256 = "{_sha(KEYS["ops"])}"

[[keys]]
name = "w"
sha256 = "{_sha(KEYS["w"])}"
scopes = ["generate", "runs"]
workflows = ["allowed"]
rate_limit = "3/minute"
"""
    )
    return create_app(
        {
            "WORKFLOWS_DIR": str(workflows),
            "OUTPUT_DIR": str(tmp_path / "out"),
            "DATA_DIR": str(tmp_path / "data"),
            "COMFYUI_URL": "http://127.0.0.1:9",
            "COMFYUI_RETRIES": "0",
            "API_KEYS_FILE": str(keys),
            "API_KEYS": "plain-key",
        }
    )


def _as(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS.get(name, name)}"}


def _run_of(app, key_name: str | None) -> str:
    record, _ = app.extensions["comfysync"].runs.create(
        RunRecord.new({"workflow": "allowed"}, key_name=key_name)
    )
    return record.id


def test_scopes_decide_the_routes(app) -> None:
    client = app.test_client()
    assert client.get("/api/workflows", headers=_as("gen")).status_code == 200
    refused = client.get("/api/workflows", headers=_as("reader"))
    assert refused.status_code == 403 and refused.json["error_type"] == "forbidden"
    assert "reader" in refused.json["error"]
    assert client.get("/api/runs", headers=_as("reader")).status_code == 200
    assert client.get("/api/history", headers=_as("gen")).status_code == 403
    assert client.get("/api/comfyui-queue-status", headers=_as("reader")).status_code == 403
    assert client.get("/api/workflows", headers=_as("nobody")).status_code == 401
    # The plain API_KEYS key may do everything, as before.
    assert client.get("/api/history", headers=_as("plain-key")).status_code != 403


def test_a_key_limited_to_workflows_runs_only_those(app) -> None:
    client = app.test_client()
    other = client.post("/api/run", json={"workflow": "other"}, headers=_as("w"))
    assert other.status_code == 403 and "'other'" in other.json["error"]
    inline = client.post(
        "/api/run",
        json={"workflow_data": {"1": {"class_type": "A", "inputs": {}}}},
        headers=_as("w"),
    )
    assert inline.status_code == 403 and "inline" in inline.json["error"]
    mine = client.post("/api/run", json={"workflow": "allowed"}, headers=_as("w"))
    assert mine.status_code == 201, mine.json
    record = app.extensions["comfysync"].runs.get(mine.json["run_id"])
    assert record.key_name == "w"


def test_a_key_reads_only_its_own_runs(app) -> None:
    client = app.test_client()
    mine, theirs = _run_of(app, "reader"), _run_of(app, "gen")
    assert client.get(f"/api/status/{mine}", headers=_as("reader")).status_code == 200
    hidden = client.get(f"/api/status/{theirs}", headers=_as("reader"))
    assert hidden.status_code == 404 and hidden.json["error_type"] == "not_found"
    assert client.post(f"/api/run/{theirs}/cancel", headers=_as("reader")).status_code == 404
    assert client.get(f"/api/status/{theirs}/events", headers=_as("reader")).status_code == 404
    listed = {r["run_id"] for r in client.get("/api/runs", headers=_as("reader")).json["runs"]}
    assert listed == {mine}
    # The admin scope sees every run.
    assert client.get(f"/api/status/{theirs}", headers=_as("ops")).status_code == 200
    everything = {r["run_id"] for r in client.get("/api/runs", headers=_as("ops")).json["runs"]}
    assert {mine, theirs} <= everything


def test_idempotency_keys_are_per_api_key(app) -> None:
    client = app.test_client()
    body = {"workflow": "allowed"}
    first = client.post("/api/run", json=body, headers=_as("w") | {"Idempotency-Key": "k"})
    again = client.post("/api/run", json=body, headers=_as("w") | {"Idempotency-Key": "k"})
    assert first.json["run_id"] == again.json["run_id"]
    other = client.post("/api/run", json=body, headers=_as("ops") | {"Idempotency-Key": "k"})
    assert other.status_code == 201 and other.json["run_id"] != first.json["run_id"]


def test_a_rate_limit_per_key_with_the_standard_headers(app) -> None:
    client = app.test_client()
    answers = [client.get("/api/workflows", headers=_as("w")) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" for a in answers)
    limited = answers[-1]
    assert limited.json["error_type"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Other keys have their own counts (and no limit here).
    assert client.get("/api/workflows", headers=_as("gen")).status_code == 200


def test_rate_limit_per_address_without_keys(tmp_path) -> None:
    client = create_app(
        {"DATA_DIR": str(tmp_path / "d"), "OUTPUT_DIR": str(tmp_path / "o"), "RATE_LIMIT": "2/hour"}
    ).test_client()
    codes = [client.get("/api/workflows").status_code for _ in range(3)]
    assert 429 not in codes[:2] and codes[2] == 429


def test_fixed_windows_start_over() -> None:
    limiter = RateLimiter(MemoryCounters())
    rate = Rate(2, 60)
    assert [limiter.check("b", rate, now=120.0 + i).allowed for i in range(3)] == [True] * 2 + [
        False
    ]
    fresh = limiter.check("b", rate, now=180.5)
    assert fresh.allowed and fresh.remaining == 1 and fresh.reset == 60


def test_a_failing_counter_store_limits_nothing() -> None:
    class Down:
        def incr(self, *args):
            raise ConnectionError("redis is away")

    assert RateLimiter(Down()).check("b", Rate(1, 1)).allowed


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('[[keys]]\nname = "a"\nsha256 = "xyz"', "sha256"),
        ('[[keys]]\nname = "a b"\nsha256 = "' + "0" * 64 + '"', "name"),
        ('[[keys]]\nname = "a"\nsha256 = "' + "0" * 64 + '"\nscopes = ["root"]', "scopes"),
        ('[[keys]]\nname = "a"\nsha256 = "' + "0" * 64 + '"\nkey = "plain"', "unknown"),
        ('[[keys]]\nname = "a"\nsha256 = "' + "0" * 64 + '"\nrate_limit = "fast"', "rate"),
        ("keys = []", "non-empty"),
        ("not toml [", "TOML"),
    ],
)
def test_bad_keys_files_stop_the_service(tmp_path, text, error) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        create_app({"DATA_DIR": str(tmp_path / "d"), "API_KEYS_FILE": str(path)})


def test_json_keys_files_and_the_key_maker(tmp_path, capsys) -> None:
    assert main(["new", "ci-bot"]) == 0
    captured = capsys.readouterr()
    key = captured.err.rsplit(" ", 1)[1].strip()
    assert f'sha256 = "{_sha(key)}"' in captured.out and 'name = "ci-bot"' in captured.out
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"name": "ci-bot", "sha256": _sha(key)}]}))
    (loaded,) = load_keys_file(str(path))
    assert loaded.name == "ci-bot" and loaded.digest == hashlib.sha256(key.encode()).digest()
    assert parse_rate("10/second") == Rate(10, 1) and str(parse_rate("5 / hours")) == "5/hour"
