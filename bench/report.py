"""What a scenario hands back, and the Markdown and JSON files written from it."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Target:
    """One target of the issue, checked against a figure measured in the same run."""

    name: str
    measured: float
    limit: float
    unit: str = ""
    op: str = "<="  # or ">=", ">", or "==" for an exact count
    detail: str = ""

    @property
    def passed(self) -> bool:
        if math.isnan(self.measured):
            return False
        if self.op == "==":
            return self.measured == self.limit
        if self.op == ">":
            return self.measured > self.limit
        return self.measured >= self.limit if self.op == ">=" else self.measured <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "measured": _num(self.measured)}


@dataclass
class Row:
    """One line of a scenario's table."""

    figure: str
    value: float | str
    unit: str = ""
    note: str = ""


@dataclass
class ScenarioResult:
    """A scenario's figures: table rows, targets, and the raw numbers for the JSON file."""

    name: str
    title: str
    setup: str
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def row(self, figure: str, value: float | str, unit: str = "", note: str = "") -> None:
        self.rows.append(Row(figure, value, unit, note))


def _num(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    return value


def _clean(value: Any) -> Any:
    """JSON has no NaN: turn them into null, everywhere."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return _num(value)


def _fmt(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown(results: list[ScenarioResult], command: str) -> str:
    """The whole report: targets first, then one table per scenario."""
    lines = [
        "# comfysync benchmarks",
        "",
        f"`{command}` on {platform.node()} ({os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}), {time.strftime('%Y-%m-%d %H:%M:%S')}. Medians over "
        "the repeated runs; every ratio is taken within one run.",
        "",
        "## Targets",
        "",
        "| scenario | target | measured | limit | result |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        for t in result.targets:
            lines.append(
                f"| {result.name} | {t.name} | {_fmt(t.measured)} {t.unit} | {t.op} "
                f"{_fmt(t.limit)} {t.unit} | {'pass' if t.passed else '**FAIL**'} |"
            )
    for result in results:
        lines += ["", f"## {result.title}", "", result.setup, "", "| figure | value | note |"]
        lines.append("|---|---|---|")
        for r in result.rows:
            lines.append(f"| {r.figure} | {_fmt(r.value)} {r.unit} | {r.note} |")
        if result.notes:
            lines.append("")
            lines += [f"- {note}" for note in result.notes]
        lines.append(f"\n({result.seconds:.0f} s)")
    return "\n".join(lines) + "\n"


def write(results: list[ScenarioResult], out_dir: str, command: str, stem: str) -> list[str]:
    """Write `<stem>.md` and `<stem>.json` under `out_dir`; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, f"{stem}.md")
    json_path = os.path.join(out_dir, f"{stem}.json")
    payload = {
        "command": command,
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "scenarios": {
            r.name: {
                "title": r.title,
                "setup": r.setup,
                "seconds": round(r.seconds, 1),
                "targets": [t.as_dict() for t in r.targets],
                "rows": [{**asdict(row), "value": _num(row.value)} for row in r.rows],
                "notes": r.notes,
                "data": r.data,
            }
            for r in results
        },
    }
    # Written to a temporary name first, so a reader never sees half a file.
    for path, text in (
        (md_path, markdown(results, command)),
        (json_path, json.dumps(_clean(payload), indent=2)),
    ):
        with open(path + ".tmp", "w") as handle:
            handle.write(text)
        os.replace(path + ".tmp", path)
    return [md_path, json_path]
