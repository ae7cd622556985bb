"""Reading outcomes and files out of ComfyUI's history entries and frames."""

from __future__ import annotations

from comfysync.comfy.protocol import node_sort_key, outcome_from_history
from comfysync.comfy.waits import PromptWait
from comfysync.errors import ExecutionFailed, Interrupted
from comfysync.outputs import choose, list_files


def _entry(status_str: str, messages: list, outputs: dict | None = None) -> dict:
    return {
        "outputs": outputs or {},
        "status": {
            "status_str": status_str,
            "completed": status_str == "success",
            "messages": messages,
        },
    }


def test_success_with_execution_time() -> None:
    entry = _entry(
        "success",
        [["execution_start", {"timestamp": 1000}], ["execution_success", {"timestamp": 3500}]],
        {"9": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}},
    )
    outcome = outcome_from_history(entry)
    assert outcome is not None and outcome.status == "success"
    assert outcome.execution_time == 2.5


def test_interrupted_and_error() -> None:
    interrupted = _entry("error", [["execution_interrupted", {"timestamp": 1}]])
    assert outcome_from_history(interrupted).status == "interrupted"
    error = _entry("error", [["execution_error", {"node_id": "5", "timestamp": 2}]])
    outcome = outcome_from_history(error)
    assert outcome.status == "error" and outcome.error["node_id"] == "5"
    assert outcome_from_history({"outputs": {}}) is None


def test_node_order_is_numeric() -> None:
    ids = ["277", "9", "12:3", "12", "10", "abc"]
    assert sorted(ids, key=node_sort_key) == ["9", "10", "12", "12:3", "277", "abc"]


def test_files_are_ordered_by_node_and_previews_only_as_fallback() -> None:
    outputs = {
        "20": {"images": [{"filename": "c.png", "subfolder": "", "type": "output"}]},
        "3": {
            "images": [
                {"filename": "a.png", "subfolder": "s", "type": "output"},
                {"filename": "b.png", "subfolder": "s", "type": "output"},
            ]
        },
        "5": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}]},
        "7": {"text": ["hello"]},
    }
    files = list_files(outputs)
    assert [f.filename for f in files] == ["a.png", "b.png", "p.png", "c.png"]
    assert [f.filename for f in choose(files)] == ["a.png", "b.png", "c.png"]
    assert [f.filename for f in choose(files, "5")] == ["p.png"]
    assert choose(files, "7") == []


def test_wait_follows_frames() -> None:
    wait = PromptWait("p")
    wait.on_frame("execution_start", {"prompt_id": "p", "timestamp": 10})
    wait.on_frame(
        "executed", {"node": "3", "output": {"images": [{"filename": "a"}]}, "prompt_id": "p"}
    )
    wait.on_frame(
        "executed", {"node": "3", "output": {"images": [{"filename": "b"}]}, "prompt_id": "p"}
    )
    assert not wait.done.is_set()
    wait.on_frame("execution_success", {"prompt_id": "p", "timestamp": 30})
    assert wait.done.is_set()
    assert [i["filename"] for i in wait.outcome.outputs["3"]["images"]] == ["a", "b"]
    assert wait.outcome.execution_time == 0.02


def test_wait_with_a_gap_asks_the_history() -> None:
    wait = PromptWait("p", gap=True)
    wait.on_frame("execution_success", {"prompt_id": "p"})
    assert not wait.done.is_set()
    wait.on_frame("executing", {"node": None, "prompt_id": "p"})
    assert wait.done.is_set() and wait.needs_history and wait.outcome is None


def test_wait_errors() -> None:
    wait = PromptWait("p")
    wait.on_frame(
        "execution_error",
        {"prompt_id": "p", "node_id": "2", "node_type": "X", "exception_message": "boom\n"},
    )
    assert isinstance(wait.error, ExecutionFailed)
    assert wait.error.to_dict()["exception_message"] == "boom"
    other = PromptWait("q")
    other.on_frame("execution_interrupted", {"prompt_id": "q", "node_id": "2"})
    assert isinstance(other.error, Interrupted)
