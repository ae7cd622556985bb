"""`.params.json` files: the format, its errors, and the starter workflows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfysync.params import (
    DeclarationError,
    Target,
    declaration_path,
    is_declaration_file,
    load_declaration,
    parse_declaration,
)

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
STARTERS = ["sd_txt2img", "sd_img2img", "sdxl_txt2img", "demo_invert", "demo_image_invert"]
CORE_ONLY = {"EmptyImage", "ImageInvert", "SaveImage", "LoadImage"}

GRAPH = {
    "3": {"inputs": {"seed": 1, "steps": 20, "cfg": 8.0}, "class_type": "KSampler"},
    "6": {"inputs": {"text": "hi"}, "class_type": "CLIPTextEncode"},
}


def test_paths() -> None:
    assert declaration_path("workflows/sd_txt2img.json") == Path("workflows/sd_txt2img.params.json")
    assert is_declaration_file("workflows/sd_txt2img.params.json")
    assert not is_declaration_file("workflows/sd_txt2img.json")


def test_parse_full_parameter() -> None:
    declaration = parse_declaration(
        {
            "description": "demo",
            "$comment": "ignored",
            "parameters": {
                "seed": {
                    "type": "int",
                    "targets": ["3.seed", "12.noise_seed"],
                    "min": 0,
                    "max": 99,
                    "default": "7",
                    "description": "Noise seed",
                    "display_name": "Seed",
                    "$comment": "ignored",
                },
                "image": {"type": "image", "target": "10.image", "required": True, "alpha": True},
            },
        }
    )
    seed, image = declaration.params
    assert declaration.description == "demo"
    assert seed.targets == (Target("3", "seed"), Target("12", "noise_seed"))
    assert (seed.minimum, seed.maximum, seed.default, seed.has_default) == (0, 99, 7, True)
    assert (seed.description, seed.display_name) == ("Noise seed", "Seed")
    assert image.required and image.alpha and not image.has_default


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "text", "target": "3.seed"}, "'type' must be one of"),
        ({"type": "int"}, "exactly one of 'target' or 'targets'"),
        ({"type": "int", "target": "3.seed", "targets": ["3.seed"]}, "exactly one"),
        ({"type": "int", "target": "seed"}, "not 'node_id.input_name'"),
        ({"type": "int", "targets": []}, "non-empty list"),
        ({"type": "int", "target": "3.seed", "min": 5, "max": 1}, "'min' is above 'max'"),
        ({"type": "int", "target": "3.seed", "min": "0"}, "'min' must be a number"),
        ({"type": "string", "target": "6.text", "max": 3}, "only applies to int and float"),
        ({"type": "enum", "target": "3.sampler"}, "non-empty 'choices'"),
        ({"type": "enum", "target": "3.s", "choices": [[1]]}, "strings or numbers"),
        ({"type": "int", "target": "3.seed", "choices": [1]}, "only applies to enum"),
        ({"type": "int", "target": "3.seed", "alpha": True}, "image parameters only"),
        ({"type": "int", "target": "3.seed", "required": "yes"}, "'required' must be"),
        ({"type": "int", "target": "3.seed", "default": "x"}, "invalid default"),
        ({"type": "int", "target": "3.seed", "min": 1, "default": 0}, "invalid default"),
        ({"type": "int", "target": "3.seed", "required": True, "default": 1}, "cannot have"),
        ({"type": "int", "target": "3.seed", "descripton": "typo"}, "unknown key"),
        ({"type": "int", "target": "3.seed", "description": 5}, "must be strings"),
        ("int", "expected an object"),
    ],
)
def test_parameter_errors_name_file_and_parameter(spec, message) -> None:
    with pytest.raises(DeclarationError, match=message) as caught:
        parse_declaration({"parameters": {"seed": spec}}, source="x.params.json")
    assert str(caught.value).startswith("x.params.json: parameter 'seed': ")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a JSON object"),
        ({}, "'parameters' must be an object"),
        ({"parameters": [], "description": "x"}, "'parameters' must be an object"),
        ({"parameters": {}, "extra": 1}, "unknown key"),
        ({"parameters": {}, "description": 3}, "'description' must be a string"),
        ({"parameters": {}, "tags": "sdxl"}, "'tags' must be a list of server tags"),
        ({"parameters": {}, "tags": [""]}, "'tags' must be a list of server tags"),
        ({"parameters": {"bad name": {"type": "int", "target": "3.seed"}}}, "a name must be"),
    ],
)
def test_file_level_errors(data, message) -> None:
    with pytest.raises(DeclarationError, match=message):
        parse_declaration(data)


def test_a_workflow_may_need_server_tags(tmp_path: Path) -> None:
    assert parse_declaration({"parameters": {}}).tags == ()
    assert parse_declaration({"parameters": {}, "tags": ["sdxl", "big", "sdxl"]}).tags == (
        "big",
        "sdxl",
    )
    from comfysync.workflows.store import WorkflowStore

    (tmp_path / "flow.json").write_text(json.dumps(GRAPH))
    (tmp_path / "plain.json").write_text(json.dumps(GRAPH))
    (tmp_path / "flow.params.json").write_text('{"parameters": {}, "tags": ["sdxl"]}')
    store = WorkflowStore(str(tmp_path))
    assert store.declared_tags("flow") == ("sdxl",)
    assert store.declared_tags("plain") == ()


def test_targets_are_checked_against_the_graph() -> None:
    ok = {"parameters": {"seed": {"type": "int", "target": "3.seed"}}}
    assert parse_declaration(ok, GRAPH).params[0].name == "seed"
    missing_node = {"parameters": {"seed": {"type": "int", "target": "99.seed"}}}
    with pytest.raises(DeclarationError, match="node '99', which is not in the workflow"):
        parse_declaration(missing_node, GRAPH)
    typo = {"parameters": {"seed": {"type": "int", "target": "3.sed"}}}
    with pytest.raises(DeclarationError, match=r"node 3 \(KSampler\) has no input 'sed'"):
        parse_declaration(typo, GRAPH)


def test_load_declaration_from_files(tmp_path: Path) -> None:
    workflow = tmp_path / "flow.json"
    workflow.write_text(json.dumps(GRAPH))
    assert load_declaration(workflow) is None
    declaration_path(workflow).write_text(
        '{"parameters": {"seed": {"type": "int", "target": "3.seed"}}}'
    )
    loaded = load_declaration(workflow, GRAPH)
    assert loaded is not None and loaded.source == "flow.params.json"
    declaration_path(workflow).write_text("{not json")
    with pytest.raises(DeclarationError, match="flow.params.json: not valid JSON"):
        load_declaration(workflow)


@pytest.mark.parametrize("name", STARTERS)
def test_starter_workflows_load_and_match_their_graphs(name: str) -> None:
    path = WORKFLOWS / f"{name}.json"
    graph = json.loads(path.read_text())
    declaration = load_declaration(path, graph)  # raises if a target is wrong
    assert declaration is not None and declaration.params
    for node_id, node in graph.items():
        assert isinstance(node_id, str) and node["_meta"]["title"]
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in graph  # every link points at a node of the graph


@pytest.mark.parametrize("name", ["demo_invert", "demo_image_invert"])
def test_demo_workflows_use_core_nodes_only(name: str) -> None:
    graph = json.loads((WORKFLOWS / f"{name}.json").read_text())
    assert {node["class_type"] for node in graph.values()} <= CORE_ONLY


def test_sd_txt2img_uses_the_sd15_checkpoint() -> None:
    graph = json.loads((WORKFLOWS / "sd_txt2img.json").read_text())
    loaders = [n for n in graph.values() if n["class_type"] == "CheckpointLoaderSimple"]
    assert [n["inputs"]["ckpt_name"] for n in loaders] == ["v1-5-pruned-emaonly.safetensors"]
