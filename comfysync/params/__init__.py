"""Typed workflow parameters: `.params.json` declarations and ComfyUI Deploy inputs."""

from __future__ import annotations

from comfysync.params.declarations import (
    Declaration,
    DeclarationError,
    check_targets,
    declaration_path,
    is_declaration_file,
    load_declaration,
    parse_declaration,
)
from comfysync.params.resolve import parameters, resolve_inputs
from comfysync.params.schema import schema_json
from comfysync.params.types import Param, Target

__all__ = [
    "Declaration",
    "DeclarationError",
    "Param",
    "Target",
    "check_targets",
    "declaration_path",
    "is_declaration_file",
    "load_declaration",
    "parameters",
    "parse_declaration",
    "resolve_inputs",
    "schema_json",
]
