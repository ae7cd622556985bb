"""Which files a finished prompt produced, and copying them out of ComfyUI."""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from gevent import get_hub

from .comfy.client import CHUNK, ComfyClient
from .comfy.protocol import NodeOutputs, node_sort_key
from .images import HEAD_BYTES, content_type_for, probe_size
from .storage.base import StoredFile
from .storage.local import LocalDiskStore
from .transcode import OutputOptions, transcode_bytes

log = logging.getLogger(__name__)

# Outputs that `output_format` and friends apply to; other files are kept as they are.
_IMAGES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class OutputFile:
    """One file a node reported, as ComfyUI names it."""

    node_id: str
    filename: str
    subfolder: str
    type: str  # "output" or "temp"
    kind: str  # the UI key it came under: "images", "gifs", "videos", "audio", ...


def list_files(outputs: NodeOutputs) -> list[OutputFile]:
    """Every file, ordered by output node id (numerically), then as ComfyUI lists them.

    Execution order is not used: ComfyUI does not keep it stable across runs.
    """
    files = []
    for node_id in sorted(outputs, key=node_sort_key):
        for kind, items in outputs[node_id].items():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("filename"), str):
                    files.append(
                        OutputFile(
                            node_id=str(node_id),
                            filename=item["filename"],
                            subfolder=item.get("subfolder") or "",
                            type=item.get("type") or "output",
                            kind=kind,
                        )
                    )
    return files


def list_texts(outputs: NodeOutputs) -> list[dict[str, Any]]:
    """Text outputs (for example PreviewAny's), in the same node order."""
    texts = []
    for node_id in sorted(outputs, key=node_sort_key):
        for value in outputs[node_id].get("text", []) or []:
            if isinstance(value, str):
                texts.append({"node_id": str(node_id), "text": value})
    return texts


def choose(files: list[OutputFile], node_id: str | None = None) -> list[OutputFile]:
    """The files to return: saved outputs, or previews when nothing was saved."""
    if node_id is not None:
        files = [f for f in files if f.node_id == node_id]
    saved = [f for f in files if f.type == "output"]
    return saved or files


class OutputCopier:
    """Copies output files from ComfyUI into local storage, by disk or by `/view`."""

    def __init__(
        self,
        client: ComfyClient,
        store: LocalDiskStore,
        comfy_output_dir: str = "",
        cleanup: bool = False,
    ) -> None:
        self.client = client
        self.store = store
        self.comfy_output_dir = os.path.abspath(comfy_output_dir) if comfy_output_dir else ""
        self.cleanup = cleanup

    def key_for(self, prompt_id: str, file: OutputFile, index: int, ext: str = "") -> str:
        """A storage key no other worker, restart or client can produce or guess."""
        ext = ext or os.path.splitext(file.filename)[1]
        day = time.strftime("%Y-%m-%d", time.gmtime())
        node = "".join(ch if ch.isalnum() else "_" for ch in file.node_id)
        return f"{day}/{prompt_id}-{node}-{index}-{secrets.token_hex(4)}{ext.lower()}"

    def copy(
        self, prompt_id: str, file: OutputFile, index: int, options: OutputOptions | None = None
    ) -> StoredFile:
        """Store one output locally (converted if the request asked) and return it.

        :raises GatewayError: when ComfyUI cannot deliver it or the disk write fails.
        """
        disk_path = self._disk_path(file)
        chunks = (
            _read_file(disk_path)
            if disk_path
            else self.client.iter_view(file.filename, file.subfolder, file.type)
        )
        if options is None or options.untouched or not file.filename.lower().endswith(_IMAGES):
            # Streamed straight to disk: a large output never sits in memory.
            # The first chunk is kept aside: it is enough to size an image.
            chunks = iter(chunks)
            head = next(chunks, b"")
            key = self.key_for(prompt_id, file, index)
            stored = self.store.write(
                key, itertools.chain((head,), chunks), content_type_for(file.filename)
            )
        else:
            # Pillow releases the GIL while it decodes and encodes, so a thread
            # keeps big images from starving the other greenlets.
            data, converted = get_hub().threadpool.apply(
                transcode_bytes, (b"".join(chunks), options)
            )
            head = data[:HEAD_BYTES]
            key = self.key_for(prompt_id, file, index, converted.extension)
            stored = self.store.write(key, [data], converted.content_type)
        if stored.content_type.startswith("image/"):
            stored = replace(stored, pixel_size=probe_size(stored.local_path, head))
        if disk_path and self.cleanup and file.type == "output":
            try:
                os.remove(disk_path)
            except OSError as err:
                log.warning("could not remove ComfyUI's copy %s: %s", disk_path, err)
        return stored

    def _disk_path(self, file: OutputFile) -> str | None:
        if not self.comfy_output_dir or file.type != "output":
            return None
        path = os.path.abspath(os.path.join(self.comfy_output_dir, file.subfolder, file.filename))
        if not path.startswith(self.comfy_output_dir + os.sep) or not os.path.isfile(path):
            return None
        return path


def _read_file(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def describe(stored: StoredFile, file: OutputFile) -> dict[str, Any]:
    """The JSON a client gets for one stored output."""
    size = stored.pixel_size
    body: dict[str, Any] = {
        "url": stored.url,
        "filename": os.path.basename(stored.key),
        "node_id": file.node_id,
        "content_type": stored.content_type,
        "width": size[0] if size else None,
        "height": size[1] if size else None,
        "bytes": stored.size,
        "kind": file.kind,
        "storage": stored.storage,
    }
    if stored.upload_duration is not None:
        body["upload_duration"] = round(stored.upload_duration, 3)
    return body
