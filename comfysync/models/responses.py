"""Response bodies, as the routes build them: the API description's half of the models.

Routes build their answers as plain dicts (the hot path pays nothing for
this); the e2e suite checks that every answer matches these (schemathesis).
Each allows more keys than it names: a client must ignore what it does not know.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class FieldError(Body):
    field: str | None = Field(description="The field, dotted for nested ones")
    message: str


class ErrorBody(Body):
    """Every error: `error_type` is the stable name to branch on."""

    status: Literal["error"]
    error: str | None
    error_type: str | None = None
    status_code: int | None = None
    field: str | None = Field(None, description="The first bad field of a 400")
    errors: list[FieldError] | None = Field(None, description="Every bad field of a 400")
    prompt_id: str | None = None
    run_id: str | None = None


class Image(Body):
    """One stored output."""

    url: str | None
    filename: str
    node_id: str
    content_type: str
    width: int | None
    height: int | None
    bytes: int | None
    kind: str
    storage: str
    upload_duration: float | None = None


class GenerateResponse(Body):
    """A finished generation: the first output's URL, and every output."""

    status: Literal["success"]
    url: str | None
    prompt_id: str
    images: list[Image]
    storage: str | None
    timings: dict[str, float] = Field(description="Milliseconds of each phase, and the total")
    execution_time: float | None
    texts: list[dict[str, Any]] | None = None
    warnings: list[str] | None = None


class RunCreated(Body):
    run_id: str


class TaskCreated(Body):
    task_id: str


class Progress(Body):
    current: int | float
    total: int | float
    message: str


class RunStatus(Body):
    """A run as it stands (`status`: not-started, running, success, failed, cancelled...)."""

    id: str
    run_id: str
    status: str
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    duration: float | None
    outputs: list[dict[str, Any]]
    error: str | None
    progress: Progress
    prompt_id: str | None
    server: str | None
    priority: int
    attempts: int
    queue_position: int | None = None
    error_type: str | None = None
    error_details: dict[str, Any] | None = None
    webhook: dict[str, Any] | None = None


class RunList(Body):
    runs: list[RunStatus]
    next_cursor: str | None


class TaskStatus(Body):
    """pending, running, completed, error, cancelled or not_found."""

    status: str
    prompt_id: str | None = None
    run_id: str | None = None
    queue_position: int | None = None


class WorkflowList(Body):
    workflows: list[str]


class Parameter(Body):
    name: str
    type: str
    default: Any = None
    required: bool
    description: str | None = None
    min: float | None = None
    max: float | None = None
    choices: list[Any] | None = None


class WorkflowSchema(Body):
    name: str
    parameters: list[Parameter]
    description: str | None = None


class QueuedPrompt(Body):
    """`POST /api/workflow/<name>`: ComfyUI's answer to the prompt."""

    status: Literal["success"]
    prompt_id: str
    number: int | None
    node_errors: dict[str, Any]
    error: None
    client_id: str


class Success(Body):
    status: Literal["success"]


class ComfyHealth(Body):
    status: Literal["success"]
    comfyui_url: str
    response: dict[str, Any]


class GatewayStatus(Body):
    status: Literal["success"]
    shutting_down: bool
    servers: list[dict[str, Any]]


class ServerList(Body):
    status: Literal["success"]
    servers: list[dict[str, Any]]
    queued: int


class History(Body):
    status: Literal["success"]
    history: list[dict[str, Any]]


class HistoryEntry(Body):
    status: Literal["success"]
    prompt_id: str | None = None


class PromptImages(Body):
    status: Literal["success"]
    prompt_id: str
    images: list[dict[str, Any]]


class Health(Body):
    status: Literal["ok"]


class Readiness(Body):
    status: Literal["ready", "not_ready"]
    servers_up: int
    servers: int
    queued: int
    reasons: list[str] | None = None


class ComfyPassThrough(Body):
    """ComfyUI's own answer, unchanged."""
