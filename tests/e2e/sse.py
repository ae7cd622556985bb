"""Reading Server-Sent Events streams the way a client would, for the e2e tests."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass
class Event:
    id: int
    type: str
    data: Any


@dataclass
class Stream:
    """One SSE response, read event by event; comments (heartbeats) counted."""

    response: requests.Response
    comments: list[str] = field(default_factory=list)

    def events(self) -> Iterator[Event]:
        fields: dict[str, str] = {}
        for raw in self.response.iter_lines(chunk_size=1, decode_unicode=True):
            line = raw if isinstance(raw, str) else raw.decode()
            if line == "":
                if "data" in fields:
                    yield Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                fields = {}
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    def all(self) -> list[Event]:
        """Every event until the server ends the stream."""
        return list(self.events())

    def until(self, kind: str) -> list[Event]:
        """Events up to and including the first of type `kind`."""
        seen = []
        for event in self.events():
            seen.append(event)
            if event.type == kind:
                return seen
        raise AssertionError(f"the stream ended before a {kind!r} event: {seen}")

    def close(self) -> None:
        self.response.close()

    def server_port(self) -> int:
        """The local port of this client's connection (to find which worker serves it)."""
        sock = self.response.raw._connection.sock  # urllib3's connection, kept while streaming
        return sock.getsockname()[1] if isinstance(sock, socket.socket) else 0


def open_stream(url: str, *, method: str = "GET", timeout: float = 60, **kwargs: Any) -> Stream:
    headers = {"Accept": "text/event-stream", **kwargs.pop("headers", {})}
    response = requests.request(
        method, url, headers=headers, stream=True, timeout=timeout, **kwargs
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return Stream(response)


def txt2img(steps: int = 4, seed: int = 42) -> dict[str, Any]:
    """The seven-node text-to-image graph of the captured traces, with `steps` sampler steps."""
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "random-sd15.safetensors"},
        },
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a horse", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "sse", "images": ["8", 0]}},
    }
