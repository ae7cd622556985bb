"""WARMUP_WORKFLOW: run one stored workflow on every ComfyUI server when the gateway starts.

Its first job on a server loads the models from disk, which takes tens of
seconds; a warm-up pays that before a client does. `/ready` answers 503 until
the warm-up has ended on at least one server that is up: one warm server can
take work, and a server that joins late does not take the whole gateway out
of its load balancer. A failed warm-up counts as ended (it is logged, and
shown by `/ready`): a broken warm-up graph must not keep the gateway down.

Each server is warmed once per start by one worker of the host (see
`claims`); an instance with its own DATA_DIR warms each server once itself.
A server that cannot be reached is tried again with backoff until it can.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import gevent

from ..comfy.backend import ComfyBackend
from ..errors import ComfyUnavailable, GatewayError, PromptLost
from ..generation import GenerationSpec, build_graph
from ..greenlets import Background
from .claims import UNDER_WAY, Claims

if TYPE_CHECKING:
    from ..gateway import Gateway

log = logging.getLogger(__name__)

# Worth trying again: the server is not there yet, or restarted under the prompt.
TRANSIENT = (ComfyUnavailable, PromptLost)
RETRY_FIRST = 1.0  # seconds, doubling
RETRY_MAX = 30.0
POLL = 0.5  # how often a worker looks at a warm-up another worker runs
ENDED = frozenset({"done", "failed"})


class Warmup:
    """This process's part in the warm-up, and how far it got on each server."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.workflow = gateway.settings.service.warmup_workflow
        self.claims = Claims(os.path.join(gateway.settings.runs.data_dir, "warmup"))
        self.states: dict[str, dict[str, Any]] = {
            b.name: {"status": "pending"} for b in gateway.backends
        }
        self.background = Background("warmup")
        self._pid: int | None = None

    def start(self) -> None:
        """Warm every server (or follow the worker that does), once per process."""
        if not self.workflow or self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.background = Background("warmup")
        self.claims.open()
        for backend in self.gateway.backends:
            self.background.spawn(self._warm, backend, name=f"warm-{backend.name}")

    def close(self) -> None:
        """Stop warming and leave the shared claims."""
        self.background.kill()
        self.claims.close()

    def ready(self) -> bool:
        """Whether it has ended on a server that is up (always, without a warm-up)."""
        if not self.workflow:
            return True
        self._catch_up()
        return any(
            backend.up and self.states[backend.name]["status"] in ENDED
            for backend in self.gateway.backends
        )

    def report(self) -> dict[str, Any]:
        """What `/ready` shows: the workflow and each server's status, error type and time."""
        servers = {
            name: {k: v for k, v in state.items() if k != "pid"}
            for name, state in self.states.items()
        }
        return {"workflow": self.workflow, "servers": servers}

    def _catch_up(self) -> None:
        """Take what other workers recorded, so every worker answers `/ready` alike at once."""
        if self._pid is None or all(s["status"] in ENDED for s in self.states.values()):
            return
        for name, state in self.claims.states().items():
            if name in self.states and self.states[name]["status"] not in ENDED:
                self.states[name] = state

    def _warm(self, backend: ComfyBackend) -> None:
        delay = RETRY_FIRST
        while True:
            theirs = self.claims.claim(backend.name)
            if theirs is not None:  # another worker's: follow it until it ends
                self.states[backend.name] = theirs
                if theirs.get("status") in UNDER_WAY:
                    gevent.sleep(POLL)
                    continue
                return
            self.states[backend.name] = {"status": "running"}
            state = self._attempt(backend)
            self.claims.record(backend.name, state)
            self.states[backend.name] = state
            if state["status"] != "waiting":
                return
            gevent.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _attempt(self, backend: ComfyBackend) -> dict[str, Any]:
        """One run of the workflow on `backend`; the state it leaves the server in."""
        began = time.monotonic()
        try:
            self._run(backend)
        except TRANSIENT as err:
            log.warning("warm-up of %s: %s; trying again", backend.name, err)
            return {"status": "waiting", "error": err.error_type}
        except GatewayError as err:
            log.error("warm-up %s on %s failed: %s", self.workflow, backend.name, err)
            return {"status": "failed", "error": err.error_type}
        except Exception:
            log.exception("warm-up %s on %s failed", self.workflow, backend.name)
            return {"status": "failed", "error": "internal_error"}
        seconds = round(time.monotonic() - began, 3)
        log.info("warm-up %s on %s done in %.1f s", self.workflow, backend.name, seconds)
        return {"status": "done", "seconds": seconds}

    def _run(self, backend: ComfyBackend) -> None:
        # Frames reach only a connected socket; a prompt sent before it connects
        # is found finished by the next reconcile, up to RECONCILE_INTERVAL late.
        connected_by = time.monotonic() + self.gateway.settings.comfy.connect_timeout
        while not backend.watcher.connected and time.monotonic() < connected_by:
            gevent.sleep(0.05)
        prompt_id = str(uuid.uuid4())
        spec = GenerationSpec(workflow=self.workflow)
        graph = build_graph(self.gateway, spec, prompt_id, backend)
        deadline = time.monotonic() + self.gateway.settings.service.generation_timeout
        backend.run_prompt(graph, prompt_id, deadline)
