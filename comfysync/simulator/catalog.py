"""What the simulated server has: its nodes (`object_info`) and its model files.

Both start from what the captured servers reported (`data/`). Two core nodes
the captures did not include, KSamplerAdvanced and VAEEncode, are added from
`data/object_info_added.json` (written to ComfyUI's definitions, with the
captured KSampler's sampler and scheduler lists) so the starter SDXL and
img2img workflows run. `SimConfig.models` adds model files to those of the
capture: the loaders' lists and `/models/<folder>` show them, and validation
refuses every other name exactly as before.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from .config import object_info_text, version_data

# Loader inputs whose choices are the files of a model folder.
LOADER_INPUTS = {("CheckpointLoaderSimple", "ckpt_name"): "checkpoints"}


@cache
def _added_text() -> str:
    return resources.files(__package__).joinpath("data/object_info_added.json").read_text("utf-8")


def model_files(version: str, extra: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each model folder's files: the capture's first, then `extra`'s, each once."""
    files = {k: list(v) for k, v in version_data(version)["model_files"].items()}
    for folder, names in extra.items():
        listed = files.setdefault(folder, [])
        listed += [name for name in names if name not in listed]
    return files


def object_info(version: str, files: dict[str, list[str]]) -> dict[str, Any]:
    """A fresh `object_info`: the captured nodes, the added ones, loaders listing `files`."""
    info: dict[str, Any] = json.loads(object_info_text(version))
    for name, entry in json.loads(_added_text())[version].items():
        info.setdefault(name, entry)  # a captured definition always wins
    for (node, input_name), folder in LOADER_INPUTS.items():
        spec = info.get(node, {}).get("input", {}).get("required", {}).get(input_name)
        if spec is not None and folder in files:
            spec[0] = list(files[folder])
    return info
