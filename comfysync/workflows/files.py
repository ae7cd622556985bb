"""File-name inputs: the loader nodes that open a file by name, and the names allowed.

ComfyUI resolves such a name inside its input folder (LoadImageOutput: its
output folder) with a plain path join, and its validation only asks whether
the file exists: an absolute path, `..`, or a `[output]` / `[temp]`
annotation opens any file the server can read. The gateway lets only bare
names through, whichever way they reached the graph.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import BadRequest
from ..inputs.decode import SourceKind, classify
from ..inputs.prepare import LOAD_IMAGE_CLASSES

# Loader nodes and their inputs that name a file (core nodes, and the common
# custom loaders whose validation works the same way).
FILE_INPUTS: dict[str, tuple[str, ...]] = {
    "LoadImage": ("image",),
    "LoadImageMask": ("image",),
    "LoadImageOutput": ("image",),
    "LoadAudio": ("audio",),
    "LoadVideo": ("file",),
    "LoadLatent": ("latent",),
    "Load3D": ("model_file",),
    "Load3DAnimation": ("model_file",),
    "LoadImageSetFromFolderNode": ("folder",),
    "VHS_LoadVideo": ("video",),
    "VHS_LoadAudioUpload": ("audio",),
    "VHS_LoadImages": ("directory",),
}

# ComfyUI reads "name [output]" from its output folder, "[temp]" from temp.
_ANNOTATION = re.compile(r"\[(input|output|temp)\]\s*$", re.IGNORECASE)


def name_problem(name: str) -> str | None:
    """Why `name` may not name a file in ComfyUI's input folder; None when it may."""
    text = name.strip()
    if "/" in text or "\\" in text:
        return "a file name without folders (no / or \\)"
    if text in (".", "..") or text.startswith(".."):
        return "a file name, not '..'"
    if ":" in text or "\x00" in text:
        return "a file name without ':' or NUL"
    if _ANNOTATION.search(text):
        return "a file name without an [input], [output] or [temp] annotation"
    return None


def check_file_inputs(graph: dict[str, Any]) -> None:
    """Refuse a graph in which a loader node names a file outside its folder.

    Links (`[node_id, index]`) and non-text values are left to ComfyUI, and
    so are the URLs and base64 the gateway itself turns into uploads.

    :raises BadRequest: naming the node input and what its value must be.
    """
    for node_id, node in graph.items():
        names = FILE_INPUTS.get(str(node.get("class_type")), ())
        inputs = node.get("inputs") or {}
        for input_name in names:
            value = inputs.get(input_name)
            if not isinstance(value, str):
                continue
            if node["class_type"] in LOAD_IMAGE_CLASSES and classify(value) is not SourceKind.NAME:
                continue
            problem = name_problem(value)
            if problem is not None:
                raise BadRequest(
                    f"Node {node_id} ({node['class_type']}) input '{input_name}' must be "
                    f"{problem} in ComfyUI's input folder (got {value!r})",
                    field=f"{node_id}.{input_name}",
                )
