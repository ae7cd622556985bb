"""Copy the capture files the simulator tests replay into tests/fixtures (trimmed, gzipped).

Usage: python tests/simulator/make_fixtures.py PATH/TO/comfyui-protocol
Drops `ws_summary` and the parsed `json` copy of each text frame (`raw` is kept, byte-exact).
"""

from __future__ import annotations

import gzip
import json
import os
import sys

SCENARIOS = {
    "0.3.64": [
        "http_01_basic_get",
        "http_02_upload_image",
        "http_03_prompt_validation_errors",
        "http_04_queue_ops",
        "http_05_free_effect",
        "ws_01_success_saveimage",
        "ws_02_cached_resubmit",
        "ws_03_execution_error",
        "ws_04_interrupt",
        "ws_05_preview_vs_save",
        "ws_06_two_output_nodes",
        "ws_07_two_clients",
        "ws_08_connect_and_reconnect",
        "ws_09_txt2img_random_sd15",
        "ws_10_txt2img_with_previews",
    ],
}
SCENARIOS["0.27"] = SCENARIOS["0.3.64"] + [
    "http_06_extra_data_handling",
    "jobs_01_list_and_get",
    "jobs_02_cancel",
    "ws_11_intermediate_output",
]
TARGET = os.path.join(os.path.dirname(__file__), "..", "fixtures", "comfyui-protocol")


def trim(doc: dict) -> dict:
    """Keep what the replay needs."""
    doc.pop("ws_summary", None)
    for event in doc["events"]:
        if event.get("kind") == "text":
            event.pop("json", None)
        event.pop("base64", None)
    return doc


def main(source: str) -> None:
    for version, names in SCENARIOS.items():
        src_dir = source if version == "0.3.64" else os.path.join(source, "v0.27")
        out_dir = os.path.join(TARGET, version)
        os.makedirs(out_dir, exist_ok=True)
        for name in names:
            with open(os.path.join(src_dir, name + ".json")) as fh:
                doc = trim(json.load(fh))
            path = os.path.join(out_dir, name + ".json.gz")
            with gzip.GzipFile(path, "wb", mtime=0) as fh:
                fh.write(json.dumps(doc, separators=(",", ":")).encode())


if __name__ == "__main__":
    main(sys.argv[1])
