"""Input images named `alias:name`: read only from INPUT_MOUNTS, never from outside them."""

from __future__ import annotations

import os

import pytest

from comfysync.config import ConfigError, Settings
from comfysync.inputs import ImageJob, InputSettings, InvalidInputs, prepare_images
from comfysync.inputs.decode import SourceKind, classify
from comfysync.mounts import parse_mounts

from .conftest import bomb_png, make_png

KEY = "0123456789abcdef-key"
CAT = make_png((5, 3), color=(1, 2, 3))


@pytest.fixture
def tree(tmp_path):
    attachments = tmp_path / "attachments"
    (attachments / "sub").mkdir(parents=True)
    (attachments / "cat.png").write_bytes(CAT)
    (attachments / "sub" / "deep.png").write_bytes(CAT)
    (attachments / "notes.txt").write_text("not an image")
    (attachments / "bomb.png").write_bytes(bomb_png(7_000, 7_000))
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "secret.png").write_bytes(make_png())
    os.symlink(tmp_path / "private" / "secret.png", attachments / "leak.png")
    os.symlink(attachments / "cat.png", attachments / "sub" / "again.png")
    return tmp_path


@pytest.fixture
def settings(tree) -> InputSettings:
    mounts = parse_mounts(f"attachments:{tree / 'attachments'};private:{tree / 'private'}")
    return InputSettings(mounts=mounts[:1])  # only `attachments` is an input mount


class Uploads:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def __call__(self, data: bytes, filename: str) -> str:
        self.files[filename] = data
        return filename


def graph() -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}}}


def prepare(value: str, settings: InputSettings, uploads: Uploads | None = None) -> dict:
    job = ImageJob("photo", value, (("1", "image"),))
    return prepare_images(graph(), [job], upload=uploads or Uploads(), settings=settings)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("attachments:cat.png", SourceKind.MOUNT),
        ("attachments:sub/deep.png", SourceKind.MOUNT),
        ("file:/etc/passwd", SourceKind.MOUNT),  # an alias nobody allowed: refused later
        ("http://example.com/a.png", SourceKind.URL),
        ("HTTPS://example.com/a.png", SourceKind.URL),
        ("ftp://example.com/a.png", SourceKind.OTHER_SCHEME),
        ("data:image/png;base64,AAAA", SourceKind.DATA_URL),
        ("http:cat.png", SourceKind.NAME),  # a scheme word is never an alias
        ("cat.png", SourceKind.NAME),
        ("photo 1.png [input]", SourceKind.NAME),
    ],
)
def test_values_are_classified(value: str, kind: SourceKind) -> None:
    assert classify(value) is kind


def test_a_mount_file_is_verified_and_uploaded(settings) -> None:
    uploads = Uploads()
    out = prepare("attachments:cat.png", settings, uploads)
    assert list(uploads.files.values()) == [CAT]
    assert out["1"]["inputs"]["image"] == next(iter(uploads.files))


def test_a_link_that_stays_inside_the_mount_is_followed(settings) -> None:
    uploads = Uploads()
    prepare("attachments:sub/again.png", settings, uploads)
    assert list(uploads.files.values()) == [CAT]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("attachments:../private/secret.png", "blocked path: '..' is not allowed"),
        ("attachments:sub/../cat.png", "blocked path: '..' is not allowed"),
        ("attachments:leak.png", "blocked path: 'leak.png' leads outside the mount"),
        ("attachments:/etc/hostname", "blocked path: '/etc/hostname' leads outside the mount"),
        ("private:secret.png", "blocked path: 'private' is not a mount input images may"),
        ("nowhere:cat.png", "blocked path: 'nowhere' is not a mount input images may"),
        ("attachments:missing.png", "not found: no file 'missing.png' in the mount"),
        ("attachments:sub", "not found: no file 'sub' in the mount"),
        ("attachments:notes.txt", "not an image"),
        ("attachments:bomb.png", "too large"),
    ],
)
def test_a_refused_mount_file_names_the_field(settings, value: str, reason: str) -> None:
    uploads = Uploads()
    with pytest.raises(InvalidInputs) as caught:
        prepare(value, settings, uploads)
    (error,) = caught.value.fields
    assert error.name == "photo" and error.got == value
    assert error.reason.startswith(reason), error.reason
    assert caught.value.code == 400 and uploads.files == {}


def test_no_input_mounts_by_default(tree) -> None:
    mounts = f"attachments:{tree / 'attachments'}"
    settings = Settings.from_env({"FILE_MOUNTS": mounts, "FILE_ACCESS_KEY": KEY})
    assert settings.inputs.mounts == ()
    with pytest.raises(InvalidInputs, match="invalid inputs") as caught:
        prepare("attachments:cat.png", settings.inputs)
    assert "not a mount input images may be read from" in caught.value.fields[0].reason


def test_input_mounts_picks_from_file_mounts(tree) -> None:
    env = {
        "FILE_MOUNTS": f"a:{tree / 'attachments'};b:{tree / 'private'}",
        "FILE_ACCESS_KEY": KEY,
        "INPUT_MOUNTS": " b , a;",
    }
    assert [m.alias for m in Settings.from_env(env).inputs.mounts] == ["b", "a"]


@pytest.mark.parametrize(
    ("input_mounts", "problem"),
    [("attachments,other", "'other' is not one of FILE_MOUNTS"), ("data", "URL scheme")],
)
def test_a_bad_input_mount_is_a_start_up_error(tree, input_mounts: str, problem: str) -> None:
    env = {
        "FILE_MOUNTS": f"attachments:{tree / 'attachments'};data:{tree / 'private'}",
        "FILE_ACCESS_KEY": KEY,
        "INPUT_MOUNTS": input_mounts,
    }
    with pytest.raises(ConfigError, match="INPUT_MOUNTS") as caught:
        Settings.from_env(env)
    assert problem in str(caught.value)
