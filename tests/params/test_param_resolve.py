"""Applying `inputs` to graphs: declared parameters, ComfyUI Deploy lowering, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfysync.errors import BadRequest
from comfysync.inputs import InvalidInputs
from comfysync.params import load_declaration, parse_declaration, resolve_inputs, schema_json

from .deploy_graph import deploy_graph

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
PNG_URL = "https://images.example/cat.png"


def stored(name: str):
    path = WORKFLOWS / f"{name}.json"
    graph = json.loads(path.read_text())
    return graph, load_declaration(path, graph)


def fields(err: pytest.ExceptionInfo[InvalidInputs]) -> dict[str, dict]:
    return {f["name"]: f for f in err.value.to_dict()["fields"]}


def test_named_inputs_drive_sd_txt2img() -> None:
    graph, declaration = stored("sd_txt2img")
    inputs = {"prompt": "a red fox", "seed": "42", "steps": 20, "width": 768, "sampler": "ddim"}
    out, jobs = resolve_inputs(graph, declaration, inputs, {})
    assert jobs == []
    assert out["6"]["inputs"]["text"] == "a red fox"
    assert out["3"]["inputs"]["seed"] == 42 and out["3"]["inputs"]["steps"] == 20
    assert out["5"]["inputs"]["width"] == 768 and out["3"]["inputs"]["sampler_name"] == "ddim"
    # Parameters left out keep the graph's value, and the input graph is untouched.
    assert out["5"]["inputs"]["height"] == 512
    assert graph["6"]["inputs"]["text"] != "a red fox"


def test_one_parameter_sets_every_target() -> None:
    graph, declaration = stored("sdxl_txt2img")
    out, _ = resolve_inputs(graph, declaration, {"seed": 7, "prompt": "dunes"}, None)
    assert out["10"]["inputs"]["noise_seed"] == out["11"]["inputs"]["noise_seed"] == 7
    assert out["6"]["inputs"]["text"] == out["15"]["inputs"]["text"] == "dunes"


def test_every_bad_field_is_reported_at_once() -> None:
    graph, declaration = stored("sd_txt2img")
    bad = {"steps": 500, "cfg": "lots", "sampler": "fastest", "width": True, "colour": "red"}
    with pytest.raises(InvalidInputs) as caught:
        resolve_inputs(graph, declaration, bad, {})
    body = caught.value.to_dict()
    assert (body["error"], body["status_code"]) == ("invalid inputs", 400)
    got = fields(caught)
    assert set(got) == {"steps", "cfg", "sampler", "width", "colour"}
    assert got["steps"] == {
        "name": "steps",
        "expected": "integer from 1 to 150",
        "got": "500",
        "reason": "above the maximum of 150",
    }
    assert got["colour"]["reason"] == "unknown parameter"
    assert "prompt" in got["colour"]["expected"]
    assert got["width"]["got"] == "true"


def test_required_image_must_be_given() -> None:
    graph, declaration = stored("demo_image_invert")
    with pytest.raises(InvalidInputs) as caught:
        resolve_inputs(graph, declaration, {}, {})
    assert fields(caught)["image"]["reason"] == "required"


def test_image_parameter_becomes_a_job_or_a_name() -> None:
    graph, declaration = stored("sd_img2img")
    out, jobs = resolve_inputs(graph, declaration, {"image": PNG_URL, "denoise": "0.4"}, {})
    assert [(j.name, j.source, j.targets) for j in jobs] == [("image", PNG_URL, (("10", "image"),))]
    assert out["3"]["inputs"]["denoise"] == 0.4
    out, jobs = resolve_inputs(graph, declaration, {"image": "cat.png"}, {})
    assert jobs == [] and out["10"]["inputs"]["image"] == "cat.png"


def test_multipart_files_by_parameter_name() -> None:
    graph, declaration = stored("demo_image_invert")
    _, jobs = resolve_inputs(graph, declaration, {}, {"image": b"\x89PNG..."})
    assert jobs[0].source == b"\x89PNG..." and jobs[0].targets == (("1", "image"),)
    with pytest.raises(InvalidInputs) as caught:
        resolve_inputs(graph, declaration, {"image": "a.png"}, {"image": b"x", "other": b"y"})
    assert fields(caught)["image"]["reason"] == "given twice"
    assert fields(caught)["other"]["reason"] == "unknown parameter"


def test_file_for_a_scalar_parameter_is_rejected() -> None:
    graph, declaration = stored("demo_invert")
    with pytest.raises(InvalidInputs) as caught:
        resolve_inputs(graph, declaration, {}, {"width": b"123"})
    assert "not an image" in fields(caught)["width"]["reason"]


def test_declared_default_is_applied_only_when_given() -> None:
    graph = {"1": {"inputs": {"width": 64, "color": 0}, "class_type": "EmptyImage"}}
    declaration = parse_declaration(
        {
            "parameters": {
                "width": {"type": "int", "target": "1.width", "default": 256},
                "color": {"type": "int", "target": "1.color"},
            }
        },
        graph,
    )
    graph["1"]["inputs"]["color"] = 99  # as a raw patch would have done
    out, _ = resolve_inputs(graph, declaration, {}, {})
    assert out["1"]["inputs"] == {"width": 256, "color": 99}
    schema = {p["name"]: p for p in schema_json(graph, declaration)["parameters"]}
    assert schema["width"]["default"] == 256 and schema["color"]["default"] == 99


def test_inputs_must_be_an_object() -> None:
    graph, declaration = stored("demo_invert")
    with pytest.raises(BadRequest, match="'inputs' must be an object"):
        resolve_inputs(graph, declaration, ["width", 5], {})  # type: ignore[arg-type]


def test_no_declaration_means_every_input_is_unknown() -> None:
    graph, _ = stored("demo_invert")
    with pytest.raises(InvalidInputs) as caught:
        resolve_inputs(graph, None, {"width": 5}, {})
    assert fields(caught)["width"]["reason"] == "unknown parameter"
    assert resolve_inputs(graph, None, None, None) == (graph, [])


def test_declared_target_removed_by_a_patch_is_reported() -> None:
    graph, declaration = stored("demo_invert")
    del graph["1"]
    with pytest.raises(InvalidInputs) as caught:
        resolve_inputs(graph, declaration, {"width": 100}, {})
    assert "no node 1" in fields(caught)["width"]["reason"]


# -- ComfyUI Deploy graphs ----------------------------------------------------------


def test_deploy_graph_is_lowered_to_plain_nodes() -> None:
    graph = deploy_graph()
    inputs = {
        "seed": "123",
        "steps": 30,
        "strength": 0.5,
        "prompt": "a castle",
        "checkpoint": "dreamshaper_8.safetensors",
        "lora": "film_grain.safetensors",
        "lora_strength": "0.25",
        "input_image": PNG_URL,
        "cutout": "data:image/png;base64,iVBORw0KGgo=",
    }
    out, jobs = resolve_inputs(graph, None, inputs, {})
    classes = {node["class_type"] for node in out.values()}
    assert not any(c.startswith("ComfyUIDeploy") for c in classes)
    # Literals landed in the inputs the external nodes fed.
    assert out["3"]["inputs"]["seed"] == 123 and out["3"]["inputs"]["steps"] == 30
    assert out["3"]["inputs"]["cfg"] == 0.5 and out["3"]["inputs"]["denoise"] == 0.5
    assert out["6"]["inputs"]["text"] == "a castle"
    assert out["4"]["inputs"]["ckpt_name"] == "dreamshaper_8.safetensors"
    assert out["10"]["inputs"]["lora_name"] == "film_grain.safetensors"
    assert out["10"]["inputs"]["strength_model"] == 0.25
    for node_id in ("20", "21", "22", "23", "24", "25", "26"):
        assert node_id not in out
    # The image node became a LoadImage under the same id, so links to it still hold.
    assert out["27"] == {
        "inputs": {"image": ""},
        "class_type": "LoadImage",
        "_meta": {"title": "Input image"},
    }
    assert out["12"]["inputs"]["pixels"] == ["27", 0]
    # The alpha node became LoadImage -> JoinImageWithAlpha (RGBA for its consumers).
    join = out["28"]
    assert join["class_type"] == "JoinImageWithAlpha"
    load_id = join["inputs"]["image"][0]
    assert join["inputs"] == {"image": [load_id, 0], "alpha": [load_id, 1]}
    assert out[load_id]["class_type"] == "LoadImage" and out["13"]["inputs"]["image"] == ["28", 0]
    by_name = {job.name: job for job in jobs}
    assert by_name["input_image"].targets == (("27", "image"),)
    assert not by_name["input_image"].alpha
    assert by_name["cutout"].targets == ((load_id, "image"),) and by_name["cutout"].alpha
    # Every link left points at a node that exists.
    for node in out.values():
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in out


def test_deploy_defaults_come_from_the_nodes() -> None:
    out, jobs = resolve_inputs(deploy_graph(), None, {"input_image": "in.png", "cutout": "c.png"})
    assert out["3"]["inputs"]["seed"] == 42 and out["3"]["inputs"]["denoise"] == 0.6
    assert out["6"]["inputs"]["text"] == "a lighthouse"
    assert out["4"]["inputs"]["ckpt_name"] == "v1-5-pruned-emaonly.safetensors"
    assert out["10"]["inputs"]["lora_name"] == "detail.safetensors"
    assert out["27"]["inputs"]["image"] == "in.png" and jobs == []


def test_deploy_inputs_are_validated() -> None:
    bad = {
        "seed": "x",
        "strength": 0.95,  # over the slider's max_value
        "lora": "https://models.example/lora.safetensors",
        "nope": 1,
    }
    with pytest.raises(InvalidInputs) as caught:
        resolve_inputs(deploy_graph(), None, bad, {})
    got = fields(caught)
    assert set(got) == {"seed", "strength", "lora", "nope", "input_image", "cutout"}
    assert got["strength"]["reason"] == "above the maximum of 0.9"
    assert "downloading models" in got["lora"]["reason"]
    assert got["input_image"]["reason"] == "required" and got["input_image"]["got"] == "nothing"


def test_deploy_image_default_url_and_wired_default() -> None:
    graph = deploy_graph()
    graph["27"]["inputs"]["default_value_url"] = PNG_URL
    graph["30"] = {"inputs": {"image": "fallback.png"}, "class_type": "LoadImage"}
    graph["28"]["inputs"]["default_value"] = ["30", 0]
    out, jobs = resolve_inputs(graph, None, {}, {})
    assert [(j.name, j.source) for j in jobs] == [("input_image", PNG_URL)]
    assert "28" not in out and out["13"]["inputs"]["image"] == ["30", 0]


def test_deploy_bool_and_duplicate_input_ids() -> None:
    graph = {
        "1": {
            "inputs": {"input_id": "flip", "default_value": False},
            "class_type": "ComfyUIDeployExternalBoolean",
        },
        "2": {
            "inputs": {"input_id": "flip", "default_value": False},
            "class_type": "ComfyUIDeployExternalBoolean",
        },
        "3": {"inputs": {"add_noise": ["1", 0], "other": ["2", 0]}, "class_type": "SamplerCustom"},
    }
    out, _ = resolve_inputs(graph, None, {"flip": "true"}, {})
    assert out == {
        "3": {"inputs": {"add_noise": True, "other": True}, "class_type": "SamplerCustom"}
    }


def test_old_checkpoint_field_and_missing_input_id() -> None:
    graph = {
        "1": {
            "inputs": {"input_id": "ckpt", "default_checkpoint_name": "old.safetensors"},
            "class_type": "ComfyUIDeployExternalCheckpoint",
        },
        "2": {"inputs": {"ckpt_name": ["1", 0]}, "class_type": "CheckpointLoaderSimple"},
    }
    out, _ = resolve_inputs(graph, None, {}, {})
    assert out["2"]["inputs"]["ckpt_name"] == "old.safetensors"
    graph["1"]["inputs"]["input_id"] = ""
    with pytest.raises(BadRequest, match="has no input_id"):
        resolve_inputs(graph, None, {}, {})


def test_name_clash_between_deploy_node_and_declaration() -> None:
    graph = deploy_graph()
    declaration = parse_declaration({"parameters": {"seed": {"type": "int", "target": "3.seed"}}})
    with pytest.raises(BadRequest, match="declared twice"):
        resolve_inputs(graph, declaration, {}, {})


def test_schema_of_a_declared_workflow() -> None:
    graph, declaration = stored("sd_txt2img")
    schema = schema_json(graph, declaration)
    assert schema["description"].startswith("Stable Diffusion 1.5")
    params = {p["name"]: p for p in schema["parameters"]}
    assert params["steps"] == {
        "name": "steps",
        "type": "int",
        "default": 20,
        "required": False,
        "description": "Sampling steps.",
        "display_name": "steps",
        "min": 1,
        "max": 150,
        "choices": None,
        "targets": [{"node": "3", "input": "steps"}],
        "source": "declaration",
    }
    assert "euler" in params["sampler"]["choices"]
    json.dumps(schema)  # JSON-serialisable as it stands


def test_schema_of_a_deploy_graph() -> None:
    params = {p["name"]: p for p in schema_json(deploy_graph(), None)["parameters"]}
    assert params["strength"]["min"] == 0.1 and params["strength"]["max"] == 0.9
    assert params["strength"]["default"] == 0.6
    assert params["strength"]["targets"] == [
        {"node": "3", "input": "cfg"},
        {"node": "3", "input": "denoise"},
    ]
    assert params["seed"]["display_name"] == "Seed"
    assert params["input_image"]["required"] and params["input_image"]["type"] == "image"
    assert params["cutout"]["alpha"] is True
    assert params["lora"]["node_class"] == "ComfyUIDeployExternalLora"
    assert params["lora"]["default"] == "detail.safetensors"


def test_resolve_then_prepare_uploads_deploy_images() -> None:
    import base64
    import io

    from PIL import Image

    from comfysync.inputs import InputSettings, prepare_images

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    uploaded: list[str] = []

    def upload(data: bytes, filename: str) -> str:
        uploaded.append(filename)
        return filename

    graph, jobs = resolve_inputs(
        deploy_graph(), None, {"cutout": encoded}, {"input_image": buffer.getvalue()}
    )
    out = prepare_images(graph, jobs, upload=upload, settings=InputSettings())
    assert out["27"]["inputs"]["image"] in uploaded
    load_id = out["28"]["inputs"]["image"][0]
    assert out[load_id]["inputs"]["image"] in uploaded and len(uploaded) == 2
