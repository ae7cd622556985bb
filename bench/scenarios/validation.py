"""Request models: what checking a body costs, beside what a whole generation costs.

The issue's target: validation by the models keeps the gateway's CPU per
generation within 5 % of before. Body checking is measured in this process
(many repetitions, least of five rounds: the machine's noise only adds), and
set against the gateway CPU per generation measured in the same run
(closed loop of 8 clients, instant jobs), so the share is of a real request's
whole cost. The document is built once at start; its build time is reported.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import timeit

from ..processes import ROOT, Gateway, Simulator
from ..report import ScenarioResult, Target
from . import Context
from .cost import _cpu_run

TARGET_SHARE = 5.0  # percent of the gateway's CPU per generation

STORED = {
    "workflow": "demo_invert",
    "inputs": {"color": "0xff8800", "width": 64, "height": 64},
    "output_format": "webp",
    "quality": 80,
    "max_width": 512,
    "priority": 3,
    "tags": ["sd15"],
    "webhook": "https://example.com/hook",
}


def _per_body_us(body: dict, number: int) -> float:
    from comfysync.generation import GenerationSpec

    seconds = min(timeit.repeat(lambda: GenerationSpec.from_body(body), number=number, repeat=5))
    return seconds / number * 1e6


def _document_ms() -> float:
    from comfysync import create_app

    scratch = tempfile.mkdtemp(prefix="bench-validation-")
    started = time.perf_counter()
    create_app({"COMFYUI_URL": "http://127.0.0.1:9", "DATA_DIR": scratch, "OUTPUT_DIR": scratch})
    return (time.perf_counter() - started) * 1000


def run(ctx: Context) -> ScenarioResult:
    started = time.monotonic()
    result = ScenarioResult(
        "validation",
        "Request models",
        "GenerationSpec.from_body in this process (least of 5 rounds); gateway CPU per "
        "generation from a closed loop of 8 clients against the simulator, instant jobs.",
    )
    with open(os.path.join(ROOT, "workflows", "sd_txt2img.json"), encoding="utf-8") as handle:
        inline = {"workflow_data": json.load(handle), "prompt": "a fox", "randomize_seed": True}
    number = 5000 if ctx.quick else 20000
    stored_us = _per_body_us(STORED, number)
    inline_us = _per_body_us(inline, number)
    result.row("checking a stored-workflow body (10 fields)", stored_us, "us")
    result.row("checking an inline 7-node graph body", inline_us, "us")
    result.row("building the app, /openapi.json included", _document_ms(), "ms", "once, at start")
    sim = Simulator(job_duration_ms="0").start()
    try:
        gw = Gateway(sim.url).start()
        try:
            cpu = _cpu_run(sim, gw, "/api/generate", 8, 300 if ctx.quick else 1000)
        finally:
            gw.stop()
    finally:
        sim.stop()
    per_generation_us = cpu["gateway_cpu_ms_per_generation"] * 1000
    share = 100 * max(stored_us, inline_us) / per_generation_us
    result.row("gateway CPU per generation", per_generation_us / 1000, "ms")
    result.row("body checking's share of it", share, "%")
    result.targets.append(
        Target("body checking within 5 % of a generation's gateway CPU", share, TARGET_SHARE, "%")
    )
    result.data.update(stored_us=stored_us, inline_us=inline_us, cpu=cpu)
    result.seconds = time.monotonic() - started
    return result
