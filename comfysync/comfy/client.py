"""HTTP client for one ComfyUI server: every call timed out, every error translated."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..errors import (
    ComfyBadResponse,
    ComfyUnavailable,
    ComfyValidationError,
    NotFound,
)
from .protocol import HistoryEntry

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


def _session(retry: Retry, pool_size: int) -> requests.Session:
    """A session with a blocking pool of kept-alive connections to ComfyUI.

    Blocking: under a burst, calls queue for one of `pool_size` connections
    instead of opening (and discarding) thousands, which overflows ComfyUI's
    listen backlog. The environment is ignored: no proxy or .netrc lookups on
    every call (they cost more CPU than the call itself).
    """
    session = requests.Session()
    adapter = HTTPAdapter(
        max_retries=retry, pool_connections=1, pool_maxsize=pool_size, pool_block=True
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "comfysync"
    session.trust_env = False
    return session


def _reason(err: Exception) -> str:
    """The useful part of a connection error ("Connection refused"), not urllib3's essay."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(err))
    return found.group(1).strip() if found else type(err).__name__


class ComfyClient:
    """Talks HTTP to one ComfyUI; never forwards a client's headers to it."""

    def __init__(
        self,
        base_url: str,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retries: int = 2,
        pool_size: int = 32,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        # Only failed connects are retried: the request never reached ComfyUI,
        # so even a POST /prompt is safe to send again.
        retry = Retry(total=retries, connect=retries, read=0, status=0, other=0, backoff_factor=0.2)
        self.session = _session(retry, pool_size)
        # Results travel on their own pool, so a finished prompt's files are
        # not stuck behind a burst of submissions waiting for a connection.
        self.results = _session(retry, pool_size)
        self._jobs_api: bool | None = None

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint (without clientId)."""
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path}/ws"

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()
        self.results.close()

    # -- plumbing -------------------------------------------------------------

    def _request(
        self, method: str, path: str, session: requests.Session | None = None, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            return (session or self.session).request(method, self.base_url + path, **kwargs)
        except requests.Timeout as err:
            raise ComfyUnavailable(f"ComfyUI did not answer {method} {path} in time") from err
        except requests.RequestException as err:
            raise ComfyUnavailable(
                f"ComfyUI is unreachable at {self.base_url} ({_reason(err)})"
            ) from err

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code != 200:
            raise ComfyBadResponse(
                f"ComfyUI answered {method} {path} with HTTP {response.status_code}",
                upstream_status=response.status_code,
            )
        try:
            return response.json()
        except ValueError as err:
            raise ComfyBadResponse(f"ComfyUI sent invalid JSON for {method} {path}") from err

    # -- endpoints ------------------------------------------------------------

    def system_stats(self) -> dict[str, Any]:
        """`GET /system_stats`.

        :raises ComfyUnavailable: when ComfyUI cannot be reached.
        """
        return self._json("GET", "/system_stats")

    def submit(self, graph: dict[str, Any], prompt_id: str, client_id: str) -> dict[str, Any]:
        """`POST /prompt` with our own prompt id; returns ComfyUI's reply.

        :raises ComfyValidationError: when ComfyUI rejects the graph (HTTP 400).
        """
        body = {"prompt": graph, "client_id": client_id, "prompt_id": prompt_id}
        response = self._request("POST", "/prompt", json=body)
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError as err:
                raise ComfyBadResponse("ComfyUI sent invalid JSON for POST /prompt") from err
        if response.status_code == 400:
            try:
                payload = response.json()
            except ValueError:
                payload = {}
            error = payload.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ComfyValidationError(
                f"ComfyUI rejected the workflow: {message or 'validation failed'}",
                node_errors=payload.get("node_errors") or {},
                comfyui_error=error,
                prompt_id=prompt_id,
            )
        raise ComfyBadResponse(
            f"ComfyUI answered POST /prompt with HTTP {response.status_code}",
            upstream_status=response.status_code,
            upstream_body=response.text[:500],
        )

    def queue(self) -> dict[str, Any]:
        """`GET /queue`: running and pending items (each a 5-element list)."""
        return self._json("GET", "/queue")

    def history(self, prompt_id: str) -> HistoryEntry | None:
        """The history entry of one prompt, or None when ComfyUI has none."""
        payload = self._json("GET", f"/history/{prompt_id}", session=self.results)
        return payload.get(prompt_id) if isinstance(payload, dict) else None

    def histories(self, max_items: int | None = None) -> dict[str, HistoryEntry]:
        """`GET /history`: the newest `max_items` entries, oldest first."""
        params = {"max_items": max_items} if max_items else None
        payload = self._json("GET", "/history", session=self.results, params=params)
        return payload if isinstance(payload, dict) else {}

    def supports_jobs_api(self) -> bool:
        """Whether this ComfyUI has the Jobs API (0.27 and later); probed once."""
        if self._jobs_api is None:
            response = self._request("GET", "/api/jobs", params={"limit": 1})
            try:
                self._jobs_api = response.status_code == 200 and "jobs" in response.json()
            except ValueError:
                self._jobs_api = False
        return self._jobs_api

    def active_prompt_ids(self) -> set[str]:
        """Ids of every pending or running prompt, in one call."""
        if self.supports_jobs_api():
            payload = self._json("GET", "/api/jobs", params={"status": "pending,in_progress"})
            return {job["id"] for job in payload.get("jobs", [])}
        queue = self.queue()
        items = queue.get("queue_running", []) + queue.get("queue_pending", [])
        return {item[1] for item in items if isinstance(item, list) and len(item) > 1}

    def cancel(self, prompt_id: str) -> None:
        """Remove the prompt from the queue, or interrupt it if it is running."""
        if self.supports_jobs_api():
            self._request("POST", f"/api/jobs/{prompt_id}/cancel")
            return
        # Deleting only touches pending items, and a targeted interrupt only
        # the running one, so sending both is safe whatever its state.
        self._request("POST", "/queue", json={"delete": [prompt_id]})
        self._request("POST", "/interrupt", json={"prompt_id": prompt_id})

    def open_view(self, filename: str, subfolder: str, kind: str) -> requests.Response:
        """Open one file from `GET /view` for streaming; the caller closes the response.

        :raises NotFound: when ComfyUI has no such file.
        """
        params = {"filename": filename, "subfolder": subfolder, "type": kind}
        response = self._request("GET", "/view", self.results, params=params, stream=True)
        if response.status_code == 200:
            return response
        response.close()
        if response.status_code in (400, 404):
            raise NotFound(f"ComfyUI has no {kind} file {filename!r}", filename=filename)
        raise ComfyBadResponse(
            f"ComfyUI answered /view for {filename!r} with HTTP {response.status_code}",
            upstream_status=response.status_code,
        )

    def iter_view(self, filename: str, subfolder: str, kind: str) -> Iterator[bytes]:
        """The bytes of one output file, in chunks."""
        response = self.open_view(filename, subfolder, kind)
        try:
            yield from response.iter_content(CHUNK)
        except requests.RequestException as err:
            raise ComfyUnavailable(f"reading {filename!r} from ComfyUI failed: {err}") from err
        finally:
            response.close()

    def upload_image(self, data: bytes, filename: str, overwrite: bool = False) -> str:
        """`POST /upload/image` into ComfyUI's input folder; returns the stored name."""
        files = {"image": (filename, data, "application/octet-stream")}
        form = {"type": "input", "overwrite": "true" if overwrite else "false"}
        response = self._request("POST", "/upload/image", files=files, data=form)
        if response.status_code != 200:
            raise ComfyBadResponse(f"ComfyUI refused the upload of {filename!r}")
        payload = response.json()
        name = payload.get("name", filename)
        subfolder = payload.get("subfolder") or ""
        return f"{subfolder}/{name}" if subfolder else name
