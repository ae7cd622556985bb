"""The workflow store: flat files, versions, aliases, and names that cannot escape."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from comfysync.errors import BadRequest, GatewayError, NotFound
from comfysync.keys import ApiKey
from comfysync.workflows.store import WorkflowStore


def graph(marker: str) -> dict:
    return {"1": {"class_type": "PrimitiveString", "inputs": {"value": marker}}}


def write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """`flat.json` (with parameters) and `sd/` with v1, v3, v10 and two aliases."""
    write(tmp_path / "flat.json", graph("flat"))
    write(tmp_path / "flat.params.json", {"parameters": {}, "tags": ["gpu"]})
    for version in ("v1", "v3", "v10"):
        write(tmp_path / "sd" / f"{version}.json", graph(f"sd {version}"))
    write(tmp_path / "sd" / "aliases.json", {"production": "v3", "staging": "v10"})
    write(tmp_path / "sd" / "v3.params.json", {"parameters": {}, "tags": ["sdxl"]})
    return tmp_path


def marker(store: WorkflowStore, ref: str) -> str:
    return store.load(ref)["1"]["inputs"]["value"]


def test_names_list_flat_and_versioned_workflows_once(root: Path) -> None:
    write(root / "empty" / "notes.txt", "a folder without versions is no workflow")
    assert WorkflowStore(str(root)).names() == ["flat", "sd"]


def test_deployments_show_versions_aliases_and_default(root: Path) -> None:
    assert WorkflowStore(str(root)).deployments() == {
        "sd": {
            "versions": ["v1", "v3", "v10"],
            "aliases": {"production": "v3", "staging": "v10"},
            "default": "v3",
        }
    }


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("sd", "sd v3"),  # production
        ("sd@production", "sd v3"),
        ("sd@staging", "sd v10"),
        ("sd@v1", "sd v1"),
        ("flat", "flat"),
        ("flat.json", "flat"),
    ],
)
def test_references_pick_the_version(root: Path, ref: str, expected: str) -> None:
    assert marker(WorkflowStore(str(root)), ref) == expected


def test_without_production_the_highest_version_wins(root: Path) -> None:
    write(root / "sd" / "aliases.json", {"staging": "v1"})
    store = WorkflowStore(str(root))
    assert marker(store, "sd") == "sd v10"  # by number: v10 after v3
    assert store.resolve("sd").version == "v10"
    (root / "sd" / "aliases.json").unlink()
    assert marker(store, "sd") == "sd v10"


def test_an_edited_alias_is_seen_without_a_restart(root: Path) -> None:
    store = WorkflowStore(str(root))
    assert marker(store, "sd@staging") == "sd v10"
    write(root / "sd" / "aliases.json", {"production": "v3", "staging": "v1"})
    os.utime(root / "sd" / "aliases.json", ns=(1, 1))  # a different mtime, whatever the clock
    assert marker(store, "sd@staging") == "sd v1"


def test_aliases_may_be_toml(root: Path) -> None:
    (root / "sd" / "aliases.json").unlink()
    write(root / "sd" / "aliases.toml", 'production = "v1"\ncanary = "v10"\n')
    store = WorkflowStore(str(root))
    assert marker(store, "sd") == "sd v1"
    assert marker(store, "sd@canary") == "sd v10"


def test_an_unknown_version_or_alias_is_404_naming_what_exists(root: Path) -> None:
    store = WorkflowStore(str(root))
    for tag in ("v2", "prod"):
        with pytest.raises(NotFound) as caught:
            store.load(f"sd@{tag}")
        body = caught.value.to_dict()
        assert caught.value.code == 404
        assert "versions v1, v3, v10" in body["error"]
        assert "production (v3)" in body["error"] and "staging (v10)" in body["error"]
        assert body["versions"] == ["v1", "v3", "v10"]


def test_a_flat_workflow_has_no_versions(root: Path) -> None:
    with pytest.raises(NotFound, match="'flat' has no versions"):
        WorkflowStore(str(root)).load("flat@v1")


def test_an_unknown_workflow_is_404(root: Path) -> None:
    with pytest.raises(NotFound, match="'nope@v1' not found"):
        WorkflowStore(str(root)).load("nope@v1")


def test_a_flat_file_answers_its_plain_name_before_a_folder(root: Path) -> None:
    write(root / "flat" / "v1.json", graph("flat v1"))
    store = WorkflowStore(str(root))
    assert marker(store, "flat") == "flat"
    assert marker(store, "flat@v1") == "flat v1"
    assert store.names() == ["flat", "sd"]


@pytest.mark.parametrize(
    "ref",
    [
        "../flat",
        "sd/v1",
        "sd@../flat",
        "sd@v1/../../flat",
        "sd@..",
        "sd@.hidden",
        ".hidden",
        "flat.params",
        "sd@v1.json",
        "sd@",
        "@v1",
        "sd@v1@v3",
        "sd@aliases",  # a name, but only of an alias the manifest has
    ],
)
def test_references_cannot_escape(root: Path, ref: str) -> None:
    with pytest.raises((BadRequest, NotFound)):
        WorkflowStore(str(root)).load(ref)


@pytest.mark.parametrize("ref", ["../flat", "sd@../flat", "sd@v1/x", "sd@.x", "a..b"])
def test_malformed_references_are_400_naming_the_field(root: Path, ref: str) -> None:
    with pytest.raises(BadRequest) as caught:
        WorkflowStore(str(root)).resolve(ref)
    assert caught.value.to_dict()["field"] == "workflow"


def test_declarations_sit_beside_each_version(root: Path) -> None:
    store = WorkflowStore(str(root))
    assert store.declared_tags("flat") == ("gpu",)
    assert store.declared_tags("sd") == ("sdxl",)  # production is v3
    assert store.declared_tags("sd@v1") == ()
    assert store.declaration("sd@staging", store.load("sd@staging")) is None


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ({"production": "v7"}, "production points to 'v7'; the versions are v1, v3, v10"),
        ({"v2": "v1"}, "'v2' is not an alias name"),
        ({"bad name": "v1"}, "'bad name' is not an alias name"),
        (["v1"], "must map aliases to versions"),
        ("{not json", "sd/aliases.json is not valid"),
    ],
)
def test_a_broken_manifest_is_a_deployment_error(root: Path, manifest, fragment: str) -> None:
    write(root / "sd" / "aliases.json", manifest)
    store = WorkflowStore(str(root))
    with pytest.raises(GatewayError) as caught:
        store.load("sd")
    assert caught.value.code == 500
    assert fragment in caught.value.message
    assert store.names() == ["flat", "sd"]  # the list still answers, and shows what is wrong
    assert fragment in store.deployments()["sd"]["error"]


def test_two_manifests_are_refused(root: Path) -> None:
    write(root / "sd" / "aliases.toml", 'production = "v1"\n')
    with pytest.raises(GatewayError, match="both aliases.json and aliases.toml"):
        WorkflowStore(str(root)).load("sd")


def test_a_key_allowed_a_workflow_runs_each_of_its_versions() -> None:
    key = ApiKey("k", b"", workflows=frozenset({"sd", "flat@production"}))
    assert key.may_run("sd") and key.may_run("sd@staging") and key.may_run("sd@v1")
    assert key.may_run("flat@production")
    assert not key.may_run("flat") and not key.may_run("flat@staging")
    assert not key.may_run("sdxl") and not key.may_run(None)
