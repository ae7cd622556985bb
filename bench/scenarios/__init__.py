"""The scenarios of the issue, one module each, and what they share.

Every scenario is `run(ctx) -> ScenarioResult` and starts the processes it needs
itself, so any subset can run alone: `python -m bench held burst`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..load import LoadResult
from ..processes import Gateway, Simulator, memory_kb, reset_peak_rss
from ..report import ScenarioResult
from ..stats import percentile


@dataclass
class Context:
    """How thoroughly to run: `--quick` trades repetitions for time."""

    quick: bool = False

    def rounds(self, full: int, quick: int = 1) -> int:
        return quick if self.quick else full


def summarize(result: LoadResult) -> dict[str, Any]:
    """Latency percentiles (ms), throughput and errors of one load run."""
    latencies = result.latencies_ms()
    return {
        "requests": len(result.records),
        "errors": len(result.errors),
        "first_error": result.errors[0].error if result.errors else "",
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "per_s": len(result.ok) / result.wall_s if result.wall_s else float("nan"),
        "wall_s": result.wall_s,
        "load_cpu_ms_per_request": 1000 * result.cpu_s / max(1, len(result.records)),
    }


class SimCost:
    """The simulator's own CPU per prompt over a stretch of work, from `/_sim/stats`."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.before = sim.stats()

    def per_prompt_ms(self) -> float:
        after = self.sim.stats()
        prompts = after["prompts_executed"] - self.before["prompts_executed"]
        cpu = after["cpu_time_s"] - self.before["cpu_time_s"]
        return 1000 * cpu / prompts if prompts else float("nan")


class PeakRss:
    """The gateway workers' peak RSS during a run: VmHWM reset before, plus VmRSS polling."""

    def __init__(self, gateway: Gateway) -> None:
        self.pids = list(gateway.worker_pids)
        self.start_kb = {pid: memory_kb(pid)["VmRSS"] for pid in self.pids}
        self.hwm_reset = all(reset_peak_rss(pid) for pid in self.pids)
        self.polled_kb = dict(self.start_kb)

    def tick(self) -> None:
        for pid in self.pids:
            self.polled_kb[pid] = max(self.polled_kb[pid], memory_kb(pid)["VmRSS"])

    def peak_mb(self) -> float:
        """The largest peak of any worker, in MB (VmHWM when it could be reset)."""
        peaks = []
        for pid in self.pids:
            hwm = memory_kb(pid)["VmHWM"] if self.hwm_reset else 0
            peaks.append(max(hwm, self.polled_kb[pid]))
        return max(peaks) / 1024

    def growth_mb(self) -> float:
        """Peak minus the RSS at the start, for the worker that grew most."""
        self.tick()
        growth = []
        for pid in self.pids:
            hwm = memory_kb(pid)["VmHWM"] if self.hwm_reset else 0
            growth.append(max(hwm, self.polled_kb[pid]) - self.start_kb[pid])
        return max(growth) / 1024


POOL_FULL = "Connection pool is full, discarding connection"


def execution_times(history: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """prompt id -> (execution_start, execution_success) epoch ms, from the simulator's history."""
    found = {}
    for prompt_id, entry in history.items():
        stamps = {
            kind: data.get("timestamp")
            for kind, data in (entry.get("status") or {}).get("messages", [])
        }
        if stamps.get("execution_start") and stamps.get("execution_success"):
            found[prompt_id] = (stamps["execution_start"], stamps["execution_success"])
    return found


ScenarioFn = Callable[[Context], ScenarioResult]


def registry() -> dict[str, ScenarioFn]:
    """Scenario name -> its run function, in the order `python -m bench` runs them."""
    from . import (
        burst,
        cost,
        crossworker,
        deliveries,
        fleet,
        held,
        large,
        overhead,
        runs,
        sse,
        validation,
    )

    return {
        "overhead": overhead.run,
        "held": held.run,
        "burst": burst.run,
        "cost": cost.run,
        "large": large.run,
        "runs": runs.run,
        "sse": sse.run,
        "deliveries": deliveries.run,
        "crossworker": crossworker.run,
        "fleet": fleet.run,
        "validation": validation.run,
    }
