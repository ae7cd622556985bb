"""The seed-004 file server: mounts behind a key, nothing outside them."""

from __future__ import annotations

import os

import pytest

from comfysync import create_app
from comfysync.config import ConfigError, Settings

KEY = "0123456789abcdef-key"


@pytest.fixture
def tree(tmp_path):
    attachments = tmp_path / "attachments"
    (attachments / "sub").mkdir(parents=True)
    (attachments / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (attachments / "sub" / "notes.txt").write_text("hello")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    os.symlink(secret, attachments / "leak.txt")  # a link out of the mount
    os.symlink(attachments / "cat.png", attachments / "sub" / "again.png")  # one inside
    return tmp_path


class Closing:
    """A test client whose answers are read and closed at once (files are streamed)."""

    def __init__(self, client) -> None:
        self.client = client

    def get(self, path: str, **kwargs):
        answer = self.client.get(path, **kwargs)
        answer.get_data()
        answer.close()
        return answer


@pytest.fixture
def client(tree):
    app = create_app(
        {
            "WORKFLOWS_DIR": str(tree),
            "OUTPUT_DIR": str(tree / "out"),
            "DATA_DIR": str(tree / "data"),
            "COMFYUI_URL": "http://127.0.0.1:9",
            "FILE_MOUNTS": f"attachments:{tree / 'attachments'}; other:{tree / 'out'}",
            "FILE_ACCESS_KEY": KEY,
        }
    )
    return Closing(app.test_client())


def test_a_file_with_the_key_in_the_path_or_a_header(client) -> None:
    answer = client.get(f"/comfyui_server/pw={KEY}/files/attachments/cat.png")
    assert answer.status_code == 200 and answer.data == b"\x89PNG\r\n\x1a\nfake"
    assert answer.mimetype == "image/png"
    assert answer.headers["Cache-Control"] == "private, max-age=3600"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    text = client.get(
        "/comfyui_server/files/attachments/sub/notes.txt", headers={"X-File-Access-Key": KEY}
    )
    assert text.status_code == 200 and text.data == b"hello"
    assert text.mimetype == "text/plain"
    inside = client.get(f"/comfyui_server/pw={KEY}/files/attachments/sub/again.png")
    assert inside.status_code == 200  # a link that stays inside the mount is fine


@pytest.mark.parametrize(
    "path",
    [
        "/comfyui_server/pw=wrong/files/attachments/cat.png",
        "/comfyui_server/files/attachments/cat.png",
    ],
)
def test_a_wrong_or_missing_key_is_a_401(client, path) -> None:
    answer = client.get(path)
    assert answer.status_code == 401 and answer.json["error_type"] == "unauthorized"


@pytest.mark.parametrize(
    "name",
    ["leak.txt", "%2e%2e/secret.txt", "sub/%2e%2e/%2e%2e/secret.txt", "..%2fsecret.txt"],
)
def test_nothing_outside_the_mount(client, name) -> None:
    answer = client.get(f"/comfyui_server/pw={KEY}/files/attachments/{name}")
    assert answer.status_code in (403, 404)
    assert b"do not serve" not in answer.data
    assert answer.is_json


def test_unknown_alias_file_or_folder_is_a_404(client) -> None:
    for name in ("nobody/cat.png", "attachments/missing.png", "attachments/sub"):
        answer = client.get(f"/comfyui_server/pw={KEY}/files/{name}")
        assert answer.status_code == 404 and answer.json["error_type"] == "not_found"


def test_mounts_need_a_long_key(tree) -> None:
    with pytest.raises(ConfigError, match="FILE_ACCESS_KEY"):
        create_app({"DATA_DIR": str(tree / "d"), "FILE_MOUNTS": f"a:{tree}"})
    with pytest.raises(ConfigError, match="FILE_MOUNTS"):
        create_app({"DATA_DIR": str(tree / "d"), "FILE_MOUNTS": "no path", "FILE_ACCESS_KEY": KEY})


def test_without_mounts_the_route_is_a_404(tree) -> None:
    client = create_app({"DATA_DIR": str(tree / "d"), "OUTPUT_DIR": str(tree / "o")}).test_client()
    answer = client.get(f"/comfyui_server/pw={KEY}/files/attachments/cat.png")
    assert answer.status_code == 404


def _output_settings(tree, **env: str):
    return Settings.from_env(
        {"FILE_MOUNTS": f"top:{tree};out:{tree / 'out'}", "FILE_ACCESS_KEY": KEY, **env}
    ).service


def test_output_urls_through_the_innermost_mount_holding_output_dir(tree) -> None:
    service = _output_settings(tree, OUTPUT_URL_STYLE="mounts", OUTPUT_DIR=str(tree / "out" / "a"))
    assert service.output_url_prefix == f"/comfyui_server/pw={KEY}/files/out/a"
    assert _output_settings(tree).output_url_prefix == "/output_images"  # the default: storage


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OUTPUT_URL_STYLE": "mounts", "OUTPUT_DIR": "/"}, "inside none of FILE_MOUNTS"),
        (
            {"OUTPUT_URL_STYLE": "mounts", "LOCAL_URL_SECRET": "s" * 16},
            "cannot be used with LOCAL_URL_SECRET",
        ),
        ({"OUTPUT_URL_STYLE": "links"}, "expected storage or mounts"),
    ],
)
def test_a_bad_output_url_style_is_a_start_up_error(tree, env, problem) -> None:
    with pytest.raises(ConfigError, match="OUTPUT_URL_STYLE") as caught:
        _output_settings(tree, **{"OUTPUT_DIR": str(tree / "out"), **env})
    assert problem in str(caught.value)
