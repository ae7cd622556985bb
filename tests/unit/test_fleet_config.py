"""The fleet's settings: COMFYUI_URLS, the servers file, per-server headers."""

from __future__ import annotations

import json

import pytest

from comfysync.config import ConfigError, Settings
from comfysync.config.fleet import ComfyServer


def servers(**env: str) -> tuple[ComfyServer, ...]:
    return Settings.from_env(env).comfy.servers


def test_one_server_keeps_its_old_name_and_url() -> None:
    (only,) = servers(COMFYUI_URL="10.0.0.5:8188")
    assert (only.name, only.url, only.tags, only.max_inflight) == (
        "default",
        "http://10.0.0.5:8188",
        frozenset(),
        None,
    )


def test_urls_with_names_options_and_defaults() -> None:
    gpu1, second = servers(
        COMFYUI_URLS="gpu1=http://10.0.0.5:8188;tags=sdxl|flux;max_inflight=1, https://b.example/c/",
        COMFYUI_MAX_INFLIGHT="3",
    )
    assert (gpu1.name, gpu1.url, gpu1.tags) == ("gpu1", "http://10.0.0.5:8188", {"sdxl", "flux"})
    assert (second.name, second.url) == ("comfy2", "https://b.example/c")
    settings = Settings.from_env({"COMFYUI_URLS": "gpu1=a:1;max_inflight=1,b:2"})
    assert [settings.comfy.limit(s) for s in settings.comfy.servers] == [1, 2]


def test_headers_per_server_from_the_environment() -> None:
    (gpu1, other) = servers(
        COMFYUI_URLS="gpu-1=a:1,b:2",
        COMFYUI_HEADERS_GPU_1="Authorization: Bearer abc; X-Team: art",
        COMFYUI_HEADERS_COMFY2='{"X-Key": "k"}',
    )
    assert gpu1.headers == {"Authorization": "Bearer abc", "X-Team": "art"}
    assert other.headers == {"X-Key": "k"}
    assert "abc" not in repr(gpu1)  # secrets stay out of logs


def test_a_servers_file_in_json_and_in_toml(tmp_path) -> None:
    listed = tmp_path / "fleet.json"
    listed.write_text(
        json.dumps(
            {
                "servers": [
                    {"name": "a", "url": "http://h:1", "headers": {"X": "1"}, "tags": ["sdxl"]},
                    {"url": "http://h:2", "max_inflight": 4},
                ]
            }
        )
    )
    a, b = servers(COMFYUI_SERVERS_FILE=str(listed))
    assert (a.name, a.headers, a.tags) == ("a", {"X": "1"}, {"sdxl"})
    assert (b.name, b.max_inflight) == ("comfy2", 4)
    toml = tmp_path / "fleet.toml"
    toml.write_text('[[servers]]\nname = "t"\nurl = "http://h:3"\ntags = ["x"]\n')
    (t,) = servers(COMFYUI_SERVERS_FILE=str(toml))
    assert (t.name, t.url, t.tags) == ("t", "http://h:3", {"x"})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"COMFYUI_URLS": "a=h:1,a=h:2"}, "a repeats"),
        ({"COMFYUI_URLS": "bad name=h:1"}, "server name"),
        ({"COMFYUI_URLS": "a=ftp://h"}, "http(s) URL"),
        ({"COMFYUI_URLS": "a=h:1;colour=red"}, "unknown server option 'colour'"),
        ({"COMFYUI_URLS": "a=h:1;max_inflight=-1"}, "max_inflight"),
        ({"COMFYUI_URLS": "a=h:1", "COMFYUI_HEADERS_A": "no colon"}, "COMFYUI_HEADERS_A"),
        ({"COMFYUI_URLS": "a=h:1", "COMFYUI_SERVERS_FILE": "f.json"}, "not both"),
        ({"COMFYUI_SERVERS_FILE": "/nonexistent/fleet.json"}, "cannot be read"),
    ],
)
def test_bad_fleet_settings_name_the_problem(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_a_bad_servers_file_names_the_file(tmp_path) -> None:
    broken = tmp_path / "fleet.json"
    broken.write_text("{nope")
    with pytest.raises(ConfigError, match="fleet.json.*not valid JSON"):
        Settings.from_env({"COMFYUI_SERVERS_FILE": str(broken)})
    broken.write_text('{"servers": [{"name": "a"}]}')
    with pytest.raises(ConfigError, match="server a"):
        Settings.from_env({"COMFYUI_SERVERS_FILE": str(broken)})
