"""ComfyUI's error texts lose their absolute paths, and keep everything else."""

from __future__ import annotations

import pytest

from comfysync.comfy.protocol import redact_paths


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ('  File "/opt/ComfyUI/execution.py", line 10', '  File "execution.py", line 10'),
        ("No such file: '/srv/data/input/cat.png'", "No such file: 'cat.png'"),
        ("C:\\ComfyUI\\nodes.py failed", "nodes.py failed"),
        ("see http://host/a/b.png", "see http://host/a/b.png"),
        ("sub/x.png and 1/2", "sub/x.png and 1/2"),
    ],
)
def test_absolute_paths_become_file_names(text: str, redacted: str) -> None:
    assert redact_paths(text) == redacted


def test_nested_bodies_are_redacted_throughout() -> None:
    body = {"errors": [{"details": "/a/b/c.py", "extra_info": {"n": 3}}], "ok": True}
    assert redact_paths(body) == {
        "errors": [{"details": "c.py", "extra_info": {"n": 3}}],
        "ok": True,
    }
