"""A Python client for the gateway's HTTP API (needs only `requests`).

    from comfysync.client import Client

    client = Client("http://127.0.0.1:5000", api_key="...")
    result = client.generate("sd_txt2img", prompt="a fox")      # waits, like /api/generate
    png = client.generate_file("sd_txt2img", prompt="a fox")    # the bytes
    run_id = client.run("sd_txt2img", inputs={"seed": 7})       # queued; returns at once
    for event in client.events(run_id):                          # live progress (SSE)
        print(event.type, event.data)
    result = client.wait(run_id)

A `429` or `503` is retried after its `Retry-After` (at most `retries` times).
`run()` sends an `Idempotency-Key`, so retrying it, even after a broken
connection, never starts a second run. Errors raise `ApiError` with the
gateway's JSON body.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

__all__ = ["ApiError", "Client", "Event", "Result"]

TERMINAL = ("success", "failed", "cancelled")
RETRY_STATUSES = (429, 503)
MAX_RETRY_WAIT = 60.0


class ApiError(Exception):
    """The gateway answered with an error: its status and JSON body (`error`, `error_type`...)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.error_type = str(body.get("error_type", "error"))
        self.field = body.get("field")
        super().__init__(f"HTTP {status} {self.error_type}: {body.get('error', '')}")


@dataclass(frozen=True)
class Result:
    """A finished run: where its images are and how long it took."""

    run_id: str
    prompt_id: str | None
    url: str | None
    images: list[dict[str, Any]]
    timings: dict[str, float]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Result:
        return cls(
            run_id=body.get("run_id") or body.get("id") or "",
            prompt_id=body.get("prompt_id"),
            url=body.get("url"),
            images=list(body.get("images") or []),
            timings=dict(body.get("timings") or {}),
            raw=body,
        )


@dataclass(frozen=True)
class Event:
    """One event of a run's stream: `queued`, `started`, `progress`, ..., `succeeded`."""

    id: int
    type: str
    data: dict[str, Any]


class Client:
    """The gateway at `base_url`; one `requests.Session` kept alive."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:5000",
        *,
        api_key: str | None = None,
        timeout: float = 660.0,
        retries: int = 3,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- generations ----------------------------------------------------------------

    def generate(self, workflow: str | None = None, **body: Any) -> Result:
        """`POST /api/generate`: run and wait; keyword arguments are body fields
        (`prompt`, `inputs`, `patches`, `workflow_data`, `output_format`...)."""
        response = self._send("POST", "/api/generate", json=_body(workflow, body))
        return Result.from_body(response.json())

    def generate_file(self, workflow: str | None = None, **body: Any) -> bytes:
        """`POST /api/generate_file`: run and wait; the first output's bytes."""
        return self._send("POST", "/api/generate_file", json=_body(workflow, body)).content

    def run(self, workflow: str | None = None, **body: Any) -> str:
        """`POST /api/run`: queue a run, answered at once; its run id."""
        headers = {"Idempotency-Key": uuid.uuid4().hex}  # the same on every retry
        response = self._send(
            "POST", "/api/run", json=_body(workflow, body), headers=headers, idempotent=True
        )
        return str(response.json()["run_id"])

    def status(self, run_id: str) -> dict[str, Any]:
        """`GET /api/status/<run_id>`: the run record."""
        return dict(self._send("GET", f"/api/status/{run_id}").json())

    def cancel(self, run_id: str) -> dict[str, Any]:
        """`POST /api/run/<run_id>/cancel`."""
        return dict(self._send("POST", f"/api/run/{run_id}/cancel", idempotent=True).json())

    def wait(self, run_id: str, timeout: float | None = None) -> Result:
        """Until the run ends (following its events); its result.

        :raises ApiError: the run failed or was cancelled (its error body).
        :raises TimeoutError: not ended within `timeout` seconds.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            try:
                for event in self.events(run_id, read_timeout=deadline - time.monotonic()):
                    if event.type in ("succeeded", "failed", "cancelled"):
                        break
            except requests.RequestException:
                time.sleep(0.5)  # the stream broke: the record says how it stands
            body = self.status(run_id)
            if body["status"] in TERMINAL:
                if body["status"] == "success":
                    return Result.from_body(body)
                details = body.get("error_details") or {"error": body.get("error")}
                raise ApiError(int(details.get("status_code", 500)), details)
        raise TimeoutError(f"run {run_id} did not end in time")

    def events(
        self, run_id: str, *, after: int = 0, read_timeout: float | None = None
    ) -> Iterator[Event]:
        """The run's events from `after` on (`GET /api/status/<id>/events`), as they happen.

        Ends after the run's last event.
        """
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
        response = self._send(
            "GET",
            f"/api/status/{run_id}/events",
            headers=headers,
            stream=True,
            timeout=(10, read_timeout or self.timeout),
        )
        with response:
            yield from _parse_sse(response.iter_lines())

    def workflows(self) -> list[str]:
        """`GET /api/workflows`: the stored workflows' names."""
        return list(self._send("GET", "/api/workflows").json()["workflows"])

    def workflow(self, name: str) -> dict[str, Any]:
        """`GET /api/workflows/<name>`: its typed parameters (and description)."""
        return dict(self._send("GET", f"/api/workflows/{name}").json())

    def download(self, url: str) -> bytes:
        """An output's bytes from its URL (relative ones are on this gateway)."""
        full = url if "://" in url else self.base_url + url
        return self._send("GET", full).content

    # -- plumbing ---------------------------------------------------------------------

    def _send(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> requests.Response:
        """One call, retried on 429/503 after Retry-After, and on a broken connection
        when repeating it is harmless (GETs, and calls marked `idempotent`)."""
        url = path if "://" in path else self.base_url + path
        kwargs.setdefault("timeout", (10, self.timeout))
        safe = method == "GET" if idempotent is None else idempotent
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.session.request(method, url, **kwargs)
            except requests.ConnectionError:
                if not safe or last:
                    raise
                time.sleep(min(MAX_RETRY_WAIT, 0.5 * 2**attempt))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(_retry_after(response, attempt))
                response.close()
                continue
            if response.status_code >= 400:
                raise ApiError(response.status_code, _json_or_text(response))
            return response
        raise AssertionError("unreachable")


def _body(workflow: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    return ({"workflow": workflow} if workflow is not None else {}) | fields


def _retry_after(response: requests.Response, attempt: int) -> float:
    try:
        wait = float(response.headers.get("Retry-After", ""))
    except ValueError:
        wait = 0.5 * 2**attempt
    return max(0.0, min(MAX_RETRY_WAIT, wait))


def _json_or_text(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"error": response.text[:500]}
    return body if isinstance(body, dict) else {"error": body}


def _parse_sse(raw_lines: Iterable[str | bytes]) -> Iterator[Event]:
    """Server-Sent Events, as the gateway writes them (`id`, `event`, one `data` line)."""
    seq, kind, data = 0, "message", ""
    for raw in raw_lines:
        line = raw.decode() if isinstance(raw, bytes) else raw
        if line == "":
            if data:
                yield Event(seq, kind, json.loads(data))
            kind, data = "message", ""
        elif line.startswith(":"):
            continue  # a keep-alive comment
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                seq = int(value) if value.isdigit() else seq
            elif name == "event":
                kind = value
            elif name == "data":
                data = f"{data}\n{value}" if data else value
