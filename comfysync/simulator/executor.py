"""Runs queued prompts node by node and emits ComfyUI's WebSocket frames in order."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageOps

from .cache import ExecutionCache, Signatures
from .config import SimConfig, version_data
from .history import PromptQueue, QueueItem
from .nodes import NodeImpl, NodeResult, SimNodeError
from .schedule import ExecutionPlan, ProgressState, ancestors, is_link
from .storage import DataDirs
from .ws import PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA, Hub


class Interrupted(Exception):
    """Raised at a node boundary (or progress hook) after /interrupt."""


def now_ms() -> int:
    """Epoch milliseconds, ComfyUI's timestamp format."""
    return int(time.time() * 1000)


def _type_name(ex: BaseException) -> str:
    if isinstance(ex, SimNodeError):
        return ex.type_name
    cls = type(ex)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _format_value(x: Any) -> Any:
    if x is None or isinstance(x, (int, float, bool, str)):
        return x
    return str(x)


class _Ctx:
    """NodeContext handed to node functions."""

    def __init__(self, run: _Run, node_id: str, delay: float) -> None:
        self._run = run
        self.node_id = node_id
        self.prompt = run.item.prompt
        self.extra_data = run.item.extra_data
        self.dirs = run.ex.dirs
        self.version = run.ex.cfg.version
        self.instance = run.ex.cache.instance(node_id, run.item.prompt[node_id]["class_type"])
        self.delay = delay
        self.previews = run.previews

    async def progress(self, value: int | float, total: int | float, preview: Any = None) -> None:
        await self._run.progress(self.node_id, value, total, preview)

    async def send_text(self, text: str) -> None:
        node = self.node_id.encode()
        self._run.ex.hub.send_bytes(3, struct.pack(">I", len(node)) + node + text.encode())

    async def blocking(self, fn: Callable[..., Any], *args: Any, pixels: int = 0) -> Any:
        if pixels > self._run.ex.cfg.thread_pixels:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        return fn(*args)


class _Run:
    """State of one prompt execution."""

    def __init__(self, ex: Executor, item: QueueItem) -> None:
        self.ex = ex
        self.item = item
        self.pid = item.prompt_id
        self.client: str | None = item.extra_data.get("client_id")
        self.messages: list[list[Any]] = []
        self.values: dict[str, tuple[Any, ...]] = {}
        self.executed: list[str] = []
        self.history_ui: dict[str, dict[str, Any]] = {}
        self.progress_state = ProgressState(
            lambda data: ex.hub.send("progress_state", data, self.client), self.pid
        )
        method = ex.cfg.preview_method
        if ex.cfg.is_v027:
            method = item.extra_data.get("preview_method", method)
            if method == "default":
                method = ex.cfg.preview_method
        self.previews = method not in ("none", "", None)

    def send(self, event: str, data: dict[str, Any]) -> None:
        """Per-prompt frame: only to the prompt's client, nothing without a client."""
        if self.client is not None:
            self.ex.hub.send(event, data, self.client)

    def add_message(self, event: str, data: dict[str, Any], broadcast: bool) -> dict[str, Any]:
        data = {**data, "timestamp": now_ms()}
        self.messages.append([event, data])
        if self.client is not None or broadcast:
            self.ex.hub.send(event, data, self.client)
        return data

    async def progress(self, node: str, value: float, total: float, preview: Any) -> None:
        if self.item.interrupted:
            raise Interrupted()
        hub = self.ex.hub
        self.progress_state.update(node, value, total)
        meta_client = hub.supports_metadata(self.client)
        if preview is not None and meta_client:
            fmt, img = preview
            meta = {
                "node_id": node,
                "prompt_id": self.pid,
                "display_node_id": node,
                "parent_node_id": None,
                "real_node_id": node,
                "image_type": "image/png" if fmt == "PNG" else "image/jpeg",
            }
            raw = json.dumps(meta).encode()
            hub.send_bytes(
                PREVIEW_IMAGE_WITH_METADATA,
                struct.pack(">I", len(raw)) + raw + _encode(fmt, img),
                self.client,
            )
        hub.send(
            "progress",
            {"value": value, "max": total, "prompt_id": self.pid, "node": node},
            self.client,
        )
        if preview is not None and not meta_client:
            fmt, img = preview
            code = 2 if fmt == "PNG" else 1
            hub.send_bytes(PREVIEW_IMAGE, struct.pack(">I", code) + _encode(fmt, img), self.client)


def _encode(fmt: str, img: Image.Image) -> bytes:
    img = ImageOps.contain(img, (512, 512)) if max(img.size) > 512 and fmt == "JPEG" else img
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=95, compress_level=1)
    return buf.getvalue()


class Executor:
    """Worker pool over the PromptQueue; N workers run N prompts at once."""

    def __init__(
        self,
        cfg: SimConfig,
        hub: Hub,
        dirs: DataDirs,
        queue: PromptQueue,
        object_info: dict[str, Any],
        impls: dict[str, NodeImpl],
    ) -> None:
        self.cfg = cfg
        self.hub = hub
        self.dirs = dirs
        self.queue = queue
        self.info = object_info
        self.impls = impls
        self.cache = ExecutionCache()
        self.workers: list[asyncio.Task[None]] = []
        self.last_node: dict[str, str] = {}
        self.unique_id_classes = {
            name
            for name, info in object_info.items()
            if "UNIQUE_ID" in info["input"].get("hidden", {}).values()
        }
        self._vdata = version_data(cfg.version)

    def start(self) -> None:
        """Spawn workers up to the configured parallelism."""
        self.workers = [w for w in self.workers if not w.done()]
        loop = asyncio.get_running_loop()
        while len(self.workers) < self.cfg.parallel:
            self.workers.append(loop.create_task(self._worker(len(self.workers))))

    def stop(self) -> None:
        """Cancel every worker (and the prompts they run)."""
        for w in self.workers:
            w.cancel()
        self.workers = []

    async def _worker(self, index: int) -> None:
        while True:
            if index >= self.cfg.parallel:
                return
            got = await self.queue.get()
            if got is not None:
                task_id, item = got
                started, waiting = time.time(), len(self.queue.pending())
                await self._run(task_id, item)
                if self.cfg.job_log:
                    self._log_job(item, started, waiting)
            flags = self.queue.take_flags()
            if flags.get("free_memory"):
                # /free takes effect when the worker wakes: now if idle, else after the prompt.
                self.cache.reset()

    def _log_job(self, item: QueueItem, started: float, waiting: int) -> None:
        entry = {
            "prompt_id": item.prompt_id,
            "client_id": item.extra_data.get("client_id"),
            "started": started,
            "ended": time.time(),
            "waiting": waiting,
        }
        assert self.cfg.job_log is not None
        with open(self.cfg.job_log, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Flag the running prompt(s); takes effect at the next node boundary."""
        hit = False
        for item in self.queue.running.values():
            if prompt_id is None or item.prompt_id == prompt_id:
                item.interrupted = True
                hit = True
        return hit

    # -- one prompt -------------------------------------------------------------------------
    async def _run(self, task_id: int, item: QueueItem) -> None:
        run = _Run(self, item)
        v027 = self.cfg.is_v027
        run.add_message("execution_start", {"prompt_id": run.pid}, False)
        prompt = item.prompt
        sigs = Signatures(prompt, self.impls, self.unique_id_classes, self.dirs)
        self.cache.set_prompt(sigs)
        keys = sigs.keys
        cached = {n for n in prompt if keys[n] in self.cache.outputs}
        run.add_message(
            "execution_cached",
            {"nodes": [n for n in prompt if n in cached], "prompt_id": run.pid},
            False,
        )
        plan = ExecutionPlan(prompt, self.info, cached, item.outputs)
        to_run = sum(1 for n in plan.pending if n not in cached)
        share = self.cfg.pick_job_duration() / to_run if to_run else 0.0
        deferred: list[str] = []
        error: tuple[str, Exception, dict[str, Any] | None] | None = None
        while plan.pending:
            node = plan.pick()
            class_type = prompt[node]["class_type"]
            if node in cached:
                if v027 and self.info[class_type].get("has_intermediate_output"):
                    deferred.append(node)
                else:
                    self._replay(run, node, keys[node])
                    run.progress_state.finish(node)
                plan.done(node)
                continue
            run.progress_state.start(node)
            if run.client is not None:
                self.last_node[run.client] = node
            run.send("executing", {"node": node, "display_node": node, "prompt_id": run.pid})
            inputs = self._inputs(run, node, keys)
            try:
                if item.interrupted:
                    raise Interrupted()
                result = await self._call(
                    run, node, inputs, self.cfg.node_delay(class_type) + share
                )
            except Interrupted as ex:
                error = (node, ex, None)
                break
            except Exception as ex:  # noqa: BLE001 - any node failure becomes execution_error
                error = (node, ex, inputs)
                break
            self.cache.outputs[keys[node]] = result.outputs
            run.values[node] = result.outputs
            if result.ui:
                self.cache.ui[keys[node]] = {"meta": _meta(node), "output": result.ui}
                run.history_ui[node] = result.ui
                run.send(
                    "executed",
                    {"node": node, "display_node": node, "output": result.ui, "prompt_id": run.pid},
                )
            run.progress_state.finish(node)
            run.executed.append(node)
            plan.done(node)
        if error is None and share == 0 and to_run == 0 and self.cfg.job_duration_ms[1] > 0:
            await asyncio.sleep(self.cfg.pick_job_duration())
        if error is None:
            if v027:
                # 0.27 replays cached nodes with intermediate output last, without progress_state.
                needed = ancestors(prompt, item.outputs)
                deferred += [
                    n
                    for n in prompt
                    if n in cached
                    and n in needed
                    and n not in deferred
                    and self.info[prompt[n]["class_type"]].get("has_intermediate_output")
                ]
            for node in deferred:
                self._replay(run, node, keys[node])
            run.add_message("execution_success", {"prompt_id": run.pid}, False)
        else:
            self._report(run, *error)
        if run.client is not None and self.last_node.get(run.client) is not None:
            self.last_node.pop(run.client, None)
        outputs, meta = self._history_outputs(run, keys, error is None)
        status = {
            "status_str": "success" if error is None else "error",
            "completed": error is None,
            "messages": run.messages,
        }
        self.queue.task_done(task_id, {"outputs": outputs, "status": status, "meta": meta})
        run.send("executing", {"node": None, "prompt_id": run.pid})

    def _replay(self, run: _Run, node: str, key: Any) -> None:
        ui = self.cache.ui.get(key)
        if run.client is not None:
            output = ui["output"] if ui else None
            run.send(
                "executed",
                {"node": node, "display_node": node, "output": output, "prompt_id": run.pid},
            )
            if ui:
                run.history_ui[node] = ui["output"]

    def _inputs(self, run: _Run, node: str, keys: dict[str, Any]) -> dict[str, Any]:
        """Input values in prompt order (links resolved), plus hidden ones for classic nodes."""
        prompt = run.item.prompt
        spec = self.info[prompt[node]["class_type"]]
        declared = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
        values: dict[str, Any] = {}
        for name, value in prompt[node]["inputs"].items():
            if is_link(value):
                src = run.values.get(value[0])
                if src is None:
                    src = self.cache.outputs.get(keys.get(value[0]))
                    if src is not None:
                        run.values[value[0]] = src
                values[name] = src[value[1]] if src is not None and value[1] < len(src) else None
            elif name in declared:
                values[name] = value
        hidden = spec["input"].get("hidden", {})
        for name, kind in hidden.items():
            values[name] = {
                "PROMPT": prompt,
                "EXTRA_PNGINFO": run.item.extra_data.get("extra_pnginfo"),
                "UNIQUE_ID": node,
            }.get(kind)
        return values

    async def _call(self, run: _Run, node: str, inputs: dict[str, Any], delay: float) -> NodeResult:
        class_type = run.item.prompt[node]["class_type"]
        impl = self.impls[class_type]
        if delay > 0 and not impl.paced:
            await asyncio.sleep(delay)
        ctx = _Ctx(run, node, delay)
        kwargs = {
            k: v for k, v in inputs.items() if k not in ("prompt", "extra_pnginfo", "unique_id")
        }
        result = impl.fn(ctx, **kwargs)
        if asyncio.iscoroutine(result):
            result = await result
        return result  # type: ignore[return-value]

    def _report(self, run: _Run, node: str, ex: Exception, inputs: dict[str, Any] | None) -> None:
        prompt = run.item.prompt
        class_type = prompt[node]["class_type"]
        if isinstance(ex, Interrupted):
            run.add_message(
                "execution_interrupted",
                {
                    "prompt_id": run.pid,
                    "node_id": node,
                    "node_type": class_type,
                    "executed": list(run.executed),
                },
                True,
            )
            return
        info = self.info[class_type]
        formatted = {}
        for name, value in (inputs or {}).items():
            if "api_node" in info and name in info["input"].get("hidden", {}):
                continue
            formatted[name] = [_format_value(value)]
        frames = self._vdata["node_frames"].get(class_type) or [
            f'  File "/opt/ComfyUI/{info["python_module"].replace(".", "/")}.py", line 1, in '
            f"{class_type}\n    <source line omitted>\n"
        ]
        run.add_message(
            "execution_error",
            {
                "prompt_id": run.pid,
                "node_id": node,
                "node_type": class_type,
                "executed": list(run.executed),
                "exception_message": f"{ex}\n",
                "exception_type": _type_name(ex),
                "traceback": list(self._vdata["traceback_prefix"]) + list(frames),
                "current_inputs": formatted,
                "current_outputs": list(prompt),
            },
            False,
        )

    def _history_outputs(
        self, run: _Run, keys: dict[str, Any], success: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.cfg.is_v027:
            # 0.27 lists only nodes that ran or were replayed in this prompt.
            return dict(run.history_ui), {n: _meta(n) for n in run.history_ui}
        outputs: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        for node in run.item.prompt:
            ui = self.cache.ui.get(keys[node])
            if ui is not None:
                outputs[node] = ui["output"]
                meta[node] = ui["meta"]
        return outputs, meta


def _meta(node: str) -> dict[str, Any]:
    return {"node_id": node, "display_node": node, "parent_node": None, "real_node_id": node}
