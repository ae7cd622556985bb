"""A workflow's typed parameters as an MCP tool's JSON Schema."""

from __future__ import annotations

from comfysync.mcp import input_schema


def test_parameters_become_json_schema() -> None:
    schema = input_schema(
        [
            {"name": "prompt", "type": "string", "required": True, "description": "What"},
            {"name": "steps", "type": "int", "min": 1, "max": 50, "default": 20},
            {"name": "cfg", "type": "float", "min": 0.0, "max": None, "default": None},
            {"name": "sampler", "type": "enum", "choices": ["euler", "dpmpp_2m"]},
            {"name": "tiled", "type": "bool", "default": False},
            {"name": "photo", "type": "image", "required": True},
        ]
    )
    props = schema["properties"]
    assert schema["type"] == "object" and schema["required"] == ["prompt", "photo"]
    assert props["prompt"] == {"type": "string", "description": "What"}
    assert props["steps"] == {"type": "integer", "minimum": 1, "maximum": 50, "default": 20}
    assert props["cfg"] == {"type": "number", "minimum": 0.0}
    assert props["sampler"] == {"enum": ["euler", "dpmpp_2m"]}
    assert props["tiled"] == {"type": "boolean", "default": False}
    assert props["photo"]["type"] == "string"


def test_a_workflow_without_parameters_takes_a_prompt() -> None:
    assert input_schema([])["properties"] == {
        "prompt": {"type": "string", "description": "What to make"}
    }
