"""One generation's steps: parse, build the graph and record the run (*start*);
copy and store its outputs (*finish*). The dispatcher runs the steps between."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .comfy.backend import ComfyBackend
from .comfy.protocol import Outcome
from .errors import BadRequest, ComfyUnavailable, NoOutput
from .greenlets import bounded_map
from .inputs import prepare_images
from .models import GenerateRequest, OutputRequest, parse
from .outputs import OutputFile, choose, describe, list_files
from .params import resolve_inputs
from .params.deploy import is_deploy_node
from .runs.base import QueueFull, RunRecord, admits, body_hash
from .storage import upload_all
from .storage.base import StoredFile
from .transcode import OutputOptions
from .webhooks.target import read_target
from .workflows import patching
from .workflows.files import check_file_inputs
from .workflows.titles import node_id

if TYPE_CHECKING:
    from .gateway import Gateway

log = logging.getLogger(__name__)

COPY_CONCURRENCY = 4


@dataclass
class GenerationSpec:
    """What a client asked for, parsed from the JSON body."""

    workflow: str | None = None
    workflow_data: dict[str, Any] | None = None
    patches: dict[str, Any] | None = None
    prompt: str | None = None
    target_node: str | None = None
    output_node_id: str | None = None
    randomize_seed: bool = False
    response_type: str = "url"
    output: OutputOptions = field(default_factory=OutputOptions)
    inputs: dict[str, Any] | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    route: dict[str, Any] | None = None  # `server` and `tags`: where it may run

    priority: int = 0
    wait: float | None = None  # a sync request's own wait budget, seconds

    @classmethod
    def from_body(cls, body: Any, files: dict[str, bytes] | None = None) -> GenerationSpec:
        """Parse and check a `/api/generate` body (and files of a multipart request).

        :raises BadRequest: listing every bad field.
        """
        asked = parse(GenerateRequest, body)
        return cls(
            workflow=asked.workflow,
            workflow_data=asked.workflow_data,
            patches=asked.patches,
            prompt=asked.prompt,
            target_node=asked.target_node,
            output_node_id=asked.output_node_id,
            randomize_seed=asked.randomize_seed,
            response_type=asked.response_type,
            output=asked.output_options(),
            inputs=asked.inputs,
            files=files or {},
            route=asked.route,
            priority=asked.priority,
            wait=asked.wait,
        )


def run_route(gateway: Gateway, spec: GenerationSpec) -> dict[str, Any] | None:
    """Where the run may go: the request's `server` and `tags`, plus its workflow's tags.

    :raises BadRequest: no configured server could ever take it.
    """
    route = dict(spec.route or {})
    if spec.workflow is not None:
        declared = gateway.workflows.declared_tags(spec.workflow)
        if declared:
            route["tags"] = sorted({*route.get("tags", ()), *declared})
    check_route(gateway, route or None)
    return route or None


def check_route(gateway: Gateway, route: dict[str, Any] | None) -> None:
    """Refuse a route no configured server could ever take.

    :raises BadRequest: naming the field.
    """
    if not route:
        return
    names = ", ".join(b.name for b in gateway.backends)
    pinned = route.get("server")
    if pinned is not None and not gateway.has_server(pinned):
        raise BadRequest(f"No ComfyUI server {pinned!r}; the servers are {names}", field="server")
    if not any(admits(route, b.name, b.tags) for b in gateway.backends):
        wanted = ", ".join(route.get("tags") or ())
        where = f"Server {pinned} does not have" if pinned else "No server has"
        raise BadRequest(f"{where} every tag of: {wanted}", field="tags")


@dataclass
class GenerationResult:
    """A finished generation: what was stored and how long each phase took."""

    prompt_id: str
    files: list[OutputFile]
    stored: list[StoredFile]
    texts: list[dict[str, Any]]
    execution_time: float | None
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The `/api/generate` response body."""
        images = [describe(s, f) for s, f in zip(self.stored, self.files, strict=True)]
        body: dict[str, Any] = {
            "status": "success",
            "url": images[0]["url"] if images else None,
            "prompt_id": self.prompt_id,
            "images": images,
            "storage": images[0]["storage"] if images else None,
            "timings": self.timings,
            "execution_time": self.execution_time,
        }
        if self.texts:
            body["texts"] = self.texts
        if self.warnings:
            body["warnings"] = self.warnings
        return body


def build_graph(
    gateway: Gateway,
    spec: GenerationSpec,
    prompt_id: str,
    home: ComfyBackend | None = None,
    uploaded: list[str] | None = None,
) -> dict[str, Any]:
    """The graph to submit: stored or inline, then patches, prompt and our own changes.

    Input images go to `home` (default: the first server); their names are
    added to `uploaded`.
    """
    if spec.workflow is not None:
        graph = gateway.workflows.load(spec.workflow)
        patching.check_graph(graph, field=f"workflow {spec.workflow}")
    else:
        graph = json.loads(json.dumps(spec.workflow_data))  # never mutate the caller's dict
    patching.apply_patches(graph, spec.patches)
    patching.apply_prompt(graph, spec.prompt, spec.target_node)
    if spec.randomize_seed:
        patching.randomize_seeds(graph)  # before typed inputs, so an explicit seed wins
    check_file_inputs(graph)  # typed inputs check their own names
    graph = _apply_inputs(gateway, spec, graph, home or gateway.backend(), uploaded)
    patching.check_output_node(graph, spec.output_node_id)
    patching.prefix_outputs(graph, prompt_id)
    if gateway.settings.service.log_workflows:
        log.debug("graph for prompt %s: %s", prompt_id, json.dumps(graph))
    return graph


def _apply_inputs(
    gateway: Gateway,
    spec: GenerationSpec,
    graph: dict[str, Any],
    home: ComfyBackend,
    uploaded: list[str] | None,
) -> dict[str, Any]:
    """Typed `inputs` (declared or ComfyUI Deploy nodes), then input images into ComfyUI."""
    declaration = gateway.workflows.declaration(spec.workflow, graph) if spec.workflow else None
    jobs: list[Any] = []
    if declaration or spec.inputs or spec.files or any(map(is_deploy_node, graph.values())):
        graph, jobs = resolve_inputs(graph, declaration, spec.inputs, spec.files)
    if jobs or any(str(n.get("class_type", "")).startswith("LoadImage") for n in graph.values()):

        def upload(data: bytes, name: str) -> str:
            stored = home.client.upload_image(data, name)
            if uploaded is not None:
                uploaded.append(stored)
            return stored

        graph = prepare_images(
            graph,
            jobs,
            upload=upload,
            settings=gateway.input_settings,
            fetcher=gateway.fetcher,
        )
    return graph


def submit_only(backend: ComfyBackend, graph: dict[str, Any], prompt_id: str) -> dict[str, Any]:
    """Queue a graph on `backend` without waiting; returns ComfyUI's reply."""
    return backend.submit(graph, prompt_id)


def start_run(
    gateway: Gateway,
    spec: GenerationSpec,
    body: dict[str, Any],
    *,
    mode: str,
    priority: int = 0,
    idempotency_key: str | None = None,
    key_name: str | None = None,
) -> tuple[RunRecord, bool]:
    """Build the graph and record the run in the gateway's queue: the *start* of a generation.

    Returns the run and whether it is new (False: an idempotent replay).

    :raises GatewayError: a bad request (nothing recorded), a full queue, or a
        reused idempotency key with another body.
    """
    run_id = str(uuid.uuid4())
    read_target(body, gateway.settings.webhooks.url)  # a bad webhook is refused up front
    route = run_route(gateway, spec)
    home = gateway.home(route)
    uploaded: list[str] = []
    graph = build_graph(gateway, spec, run_id, home, uploaded)
    now = time.time()
    digest = None
    if idempotency_key is not None:
        files = {name: hashlib.sha256(data).hexdigest() for name, data in spec.files.items()}
        digest = body_hash({"body": body, "files": files})
    record = RunRecord(
        id=run_id,
        mode=mode,
        request=body,
        graph=graph,
        priority=priority,
        created_at=now,
        updated_at=now,
        idempotency_key=idempotency_key,
        body_hash=digest,
        key_name=key_name,
        progress={"current": 0, "total": len(graph), "message": "queued"},
        route=route,
        uploads=uploaded,
        uploads_on=home.name if uploaded else None,
    )
    dispatcher = gateway.dispatcher
    try:
        created, new = gateway.runs.create(
            record, max_queued=gateway.settings.runs.max_queued, claim=dispatcher.offer(record)
        )
    except QueueFull as err:
        err.headers["Retry-After"] = str(dispatcher.retry_after())
        raise
    if new:
        dispatcher.taken(created)
    return created, new


def collect_outputs(
    backend: ComfyBackend, record: RunRecord, outcome: Outcome, deadline: float, read_timeout: float
) -> tuple[list[OutputFile], list[StoredFile]]:
    """Copy the run's chosen outputs to local disk: the first half of a generation's *finish*.

    :raises NoOutput: the prompt produced nothing for the requested node.
    """
    options = run_options(record.request)
    node = options.output_node_id
    if node is not None and record.graph:
        node = node_id(record.graph, node) or node  # a title, checked when it was accepted
    files = choose(list_files(outcome.outputs), node)
    if not files:
        raise NoOutput(prompt_id=record.prompt_id, output_node_id=options.output_node_id)
    # Copies get what is left of the deadline, but never less than one read's time.
    timeout = max(deadline - time.monotonic(), read_timeout)
    return files, _copy_all(backend, record.prompt_id or record.id, files, options.output, timeout)


@dataclass(frozen=True)
class RunOptions:
    """What the finish of a run needs from its request."""

    output_node_id: str | None
    output: OutputOptions


def run_options(body: dict[str, Any]) -> RunOptions:
    """The output node and output options of a recorded request (checked when it was accepted)."""
    asked = OutputRequest.model_validate(body)
    return RunOptions(asked.output_node_id, asked.output_options())


def store_outputs(
    gateway: Gateway, prompt_id: str, stored: list[StoredFile]
) -> tuple[list[StoredFile], list[str]]:
    """Upload the local copies to the remote store: the second half of *finish*.

    The local copies exist before any upload, so a failing bucket costs a
    warning, never an image.
    """
    uploaded = upload_all(
        gateway.remote,
        stored,
        prompt_id=prompt_id,
        concurrency=gateway.uploads.concurrency,
        timeout=gateway.uploads.timeout,
    )
    return uploaded.files, uploaded.warnings


def _copy_all(
    backend: ComfyBackend,
    prompt_id: str,
    files: list[OutputFile],
    options: OutputOptions,
    timeout: float,
) -> list[StoredFile]:
    """Copy every output locally, COPY_CONCURRENCY at once, all within `timeout` seconds."""
    copied = bounded_map(
        lambda item: backend.copier.copy(prompt_id, item[1], item[0], options),
        list(enumerate(files)),
        COPY_CONCURRENCY,
        timeout=timeout,
    )
    if not all(item.done for item in copied):
        raise ComfyUnavailable(
            f"copying the outputs from ComfyUI took longer than {timeout:.0f} s",
            prompt_id=prompt_id,
        )
    return [item.get() for item in copied]


def phase_ms(marks: dict[str, float]) -> dict[str, float]:
    """Milliseconds of each phase between the marks (epoch seconds) a run collected."""
    order = [name for name in PHASES if name in marks]
    timings = {
        name: round((marks[name] - marks[prev]) * 1000, 1)
        for prev, name in zip(order, order[1:], strict=False)
    }
    timings["total"] = round((marks[order[-1]] - marks["start"]) * 1000, 1)
    return timings


PHASES = ("start", "queued", "executed", "fetched", "stored")
