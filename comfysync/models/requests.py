"""Request bodies. Field order is the order in which refusals are listed.

Unknown keys are kept, not refused: clients of other gateways send their own
(ComfyUI Deploy's `deployment_id`, for one), and a run records its body as sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    model_validator,
)

from ..config import to_bool
from ..transcode import DEFAULT_QUALITY, FORMAT_ALIASES, FORMATS, MAX_DIMENSION, OutputOptions
from ..webhooks.target import EVENTS, check_webhook
from ..workflows.patching import check_graph
from .fields import Refusal, checked_by, refuse, whole_number

PRIORITY_LIMIT = 1_000_000
_DIMENSIONS = f"from 1 to {MAX_DIMENSION}"


def _output_format(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    name = raw.strip().lower() if isinstance(raw, str) else ""
    name = FORMAT_ALIASES.get(name, name)
    if name not in FORMATS:
        raise refuse(f"output_format must be one of {', '.join(FORMATS)} (got {raw!r})")
    return name


def _flag(name: str):
    def validate(raw: Any) -> bool:
        if raw is None or isinstance(raw, bool):
            return bool(raw)
        try:
            return to_bool(str(raw))
        except ValueError:
            raise refuse(f"{name} must be true or false (got {raw!r})") from None

    return validate


def _node_id(raw: Any) -> str | None:
    """Node ids are strings in ComfyUI's graphs; clients send numbers too. "" is unset."""
    return None if raw is None or raw == "" else str(raw)


def _dimension(name: str) -> Any:
    return Annotated[
        int | None,
        BeforeValidator(whole_number(name, _DIMENSIONS, 1, MAX_DIMENSION)),
        Field(
            default=None,
            description=f"Shrink to at most this {name}",
            json_schema_extra={"minimum": 1, "maximum": MAX_DIMENSION},
        ),
    ]


class OutputRequest(BaseModel):
    """What to do with the outputs: also read back from a recorded run at its finish."""

    model_config = ConfigDict(extra="allow")

    output_node_id: Annotated[
        str | None,
        BeforeValidator(_node_id),
        Field(description="Return only this node's outputs (default: every saved output)"),
    ] = None
    output_format: Annotated[
        str | None,
        BeforeValidator(_output_format),
        WithJsonSchema({"type": "string", "enum": [*FORMATS, *FORMAT_ALIASES]}),
        Field(description="Re-encode the outputs (default: as ComfyUI made them)"),
    ] = None
    quality: Annotated[
        int | None,
        BeforeValidator(whole_number("quality", "from 1 to 100", 1, 100)),
        Field(
            description=f"JPEG and WebP quality (default {DEFAULT_QUALITY})",
            json_schema_extra={"minimum": 1, "maximum": 100},
        ),
    ] = None
    max_width: _dimension("max_width") = None  # type: ignore[valid-type]
    max_height: _dimension("max_height") = None  # type: ignore[valid-type]
    strip_metadata: Annotated[
        bool,
        BeforeValidator(_flag("strip_metadata")),
        Field(description="Drop the prompt and workflow ComfyUI writes into the file"),
    ] = False

    def output_options(self) -> OutputOptions:
        return OutputOptions(
            format=self.output_format,
            quality=self.quality or DEFAULT_QUALITY,
            max_width=self.max_width,
            max_height=self.max_height,
            strip_metadata=self.strip_metadata,
        )


def _server(raw: Any) -> Any:
    if raw is not None and (not isinstance(raw, str) or not raw.strip()):
        raise refuse("'server' must be the name of a ComfyUI server")
    return raw.strip() if raw is not None else None


def _tags(raw: Any) -> Any:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(t, str) and t for t in raw):
        raise refuse("'tags' must be a list of server tags")
    return sorted(set(raw)) or None


def _wait(raw: Any) -> Any:
    if raw is not None and (
        isinstance(raw, bool) or not isinstance(raw, int | float) or not raw >= 0
    ):
        raise refuse("'wait' must be a number of seconds (0 or more)")
    return raw


_WEBHOOK_SCHEMA = {
    "anyOf": [
        {"type": "string", "format": "uri", "description": "The receiver's URL"},
        {
            "type": "object",
            "properties": {
                "url": {"type": "string", "format": "uri"},
                "events": {"type": "array", "items": {"enum": list(EVENTS)}, "minItems": 1},
            },
            "additionalProperties": False,
        },
        {"type": "null"},
        {"const": False},
    ],
    "description": "Where to POST the run's end (signed, retried); null or false: no webhook",
}

_GRAPH_SCHEMA = {
    "type": "object",
    "minProperties": 1,
    "description": "A graph in ComfyUI's API format: node id -> {class_type, inputs}",
    "additionalProperties": {
        "type": "object",
        "properties": {"class_type": {"type": "string"}, "inputs": {"type": "object"}},
        "required": ["class_type"],
    },
}


class GenerateRequest(OutputRequest):
    """`POST /api/generate`, `/api/generate_file`, `/api/run`: what to run and how."""

    workflow: Annotated[
        str | None,
        Refusal("'workflow' must be the name of a stored workflow"),
        Field(description="A stored workflow's name (workflows/<name>.json)"),
    ] = None
    workflow_data: Annotated[
        dict[str, Any] | None,
        BeforeValidator(checked_by(lambda v: None if v is None else check_graph(v))),
        WithJsonSchema(_GRAPH_SCHEMA),
    ] = None
    response_type: Annotated[
        Literal["url", "file"],
        Refusal("'response_type' must be 'url' or 'file'"),
        Field(description="'file': answer with the image's bytes instead of its URL"),
    ] = "url"
    randomize_seed: Annotated[
        StrictBool,
        Refusal("'randomize_seed' must be true or false"),
        Field(description="A new random seed in every sampler node"),
    ] = False
    prompt: Annotated[
        Any,
        WithJsonSchema({"type": "string"}),
        Field(description="Text for the prompt node (target_node, or the one found)"),
    ] = None
    target_node: Annotated[
        str | None,
        BeforeValidator(lambda v: None if v is None else str(v)),
        Field(description="The node (id or title) that takes `prompt`"),
    ] = None
    patches: Annotated[
        Any,
        WithJsonSchema(
            {
                "type": "object",
                "description": (
                    'Per-node input overrides: {"<node id or title>": {"inputs": {...}}}'
                ),
                "additionalProperties": {"type": "object"},
            }
        ),
    ] = None
    inputs: Annotated[
        Any,
        WithJsonSchema(
            {
                "type": "object",
                "description": (
                    "The workflow's typed parameters by name (GET /api/workflows/<name>)"
                ),
            }
        ),
    ] = None
    server: Annotated[
        str | None,
        BeforeValidator(_server),
        Field(description="Run on this ComfyUI server only (GET /api/servers)"),
    ] = None
    tags: Annotated[
        list[str] | None,
        BeforeValidator(_tags),
        Field(description="Run only on servers that have every one of these tags"),
    ] = None
    priority: Annotated[
        int,
        Refusal(
            f"'priority' must be a whole number from -{PRIORITY_LIMIT} to {PRIORITY_LIMIT} "
            "(higher runs first)"
        ),
        Field(strict=True, ge=-PRIORITY_LIMIT, le=PRIORITY_LIMIT),
    ] = 0
    wait: Annotated[
        float | None,
        BeforeValidator(_wait),
        Field(
            description="Seconds to hold a sync request before answering 202",
            json_schema_extra={"minimum": 0},
        ),
    ] = None
    webhook: Annotated[
        Any,
        BeforeValidator(checked_by(check_webhook)),
        WithJsonSchema(_WEBHOOK_SCHEMA),
    ] = None

    @model_validator(mode="after")
    def _one_workflow(self) -> GenerateRequest:
        if (self.workflow is None) == (self.workflow_data is None):
            raise refuse("Send exactly one of 'workflow' (a stored name) or 'workflow_data'")
        return self

    @property
    def route(self) -> dict[str, Any] | None:
        """`server` and `tags`: where the run may go."""
        route: dict[str, Any] = {}
        if self.server is not None:
            route["server"] = self.server
        if self.tags:
            route["tags"] = self.tags
        return route or None


class RunRequest(GenerateRequest):
    """`POST /api/run`: also takes ComfyUI Deploy's name for a stored workflow."""

    deployment_id: str | None = Field(
        None, description="A stored workflow's name, as ComfyUI Deploy clients send it"
    )


class WorkflowPatch(BaseModel):
    """`POST /api/workflow/<name>`: `prompt` and `target_node`, or `{"<node id>": {"inputs"}}`."""

    model_config = ConfigDict(extra="allow")

    prompt: str | None = None
    target_node: str | None = None
    patches: dict[str, Any] | None = None
    randomize_seed: bool = False
    inputs: dict[str, Any] | None = None


class WorkflowInputs(BaseModel):
    """A stored workflow's typed parameters by name (each workflow's own schema in
    `/api/workflows/<name>/generate`)."""

    model_config = ConfigDict(extra="allow")
