"""Drive the simulator through a captured scenario and diff it against the capture.

Only fields that are random by nature are substituted before comparing: prompt ids,
server-made sids, timestamps/create times, file counters, temp-file letters, the data
folder path, and the order of lists ComfyUI builds from Python sets.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import requests
import websocket

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "comfyui-protocol")
UNORDERED = ("executed", "current_outputs")
SUBS = [
    (
        re.compile(r'"(timestamp|create_time|execution_start_time|execution_end_time)": \d+'),
        r'"\1": 0',
    ),
    (re.compile(r"ComfyUI_temp_[a-z]{5}_"), "ComfyUI_temp_xxxxx_"),
    (re.compile(r"_\d{5}_\.png"), "_NNNNN_.png"),
]


def load(version: str, name: str) -> dict[str, Any]:
    """A trimmed capture file from tests/fixtures."""
    with gzip.open(os.path.join(FIXTURES, version, name + ".json.gz"), "rt") as fh:
        return json.load(fh)


def tiny_png(w: int, h: int, rgb: tuple[int, int, int]) -> bytes:
    """Solid-colour PNG exactly as the capture tool built its upload files."""
    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


UPLOAD_CANDIDATES = [tiny_png(8, 8, c) for c in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]


class Client:
    """A websocket-client connection whose frames are collected by a reader thread."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=30)
        self.frames: list[tuple[str, Any]] = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                op, data = self.ws.recv_data()
            except Exception:  # noqa: BLE001 - any failure ends the reader
                break
            if op == websocket.ABNF.OPCODE_TEXT:
                item: tuple[str, Any] = ("text", data.decode())
            elif op == websocket.ABNF.OPCODE_BINARY:
                item = ("binary", data)
            else:
                continue
            with self.cond:
                self.frames.append(item)
                self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait_count(self, n: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.frames) < n:
                left = end - time.monotonic()
                if left <= 0 or self.closed:
                    return len(self.frames) >= n
                self.cond.wait(left)
        return True

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass
        self.thread.join(5)


@dataclass
class Replay:
    """State of one replay run."""

    doc: dict[str, Any]
    base: str
    data_dir: str
    set_config: Any
    ids: dict[str, str] = field(default_factory=dict)  # captured -> simulator
    clients: dict[str, Client] = field(default_factory=dict)
    frames: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    sids: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # captured file name -> simulator
    problems: list[str] = field(default_factory=list)

    # -- normalisation ----------------------------------------------------------------------
    def norm_text(self, text: str, sim: bool) -> str:
        if sim:
            for cap, mine in self.ids.items():
                if cap != mine:
                    text = text.replace(mine, cap)
            for cap, mine in self.sids.items():
                text = text.replace(mine, cap)
            text = text.replace(self.data_dir, "/srv/comfy-data")
        for pattern, repl in SUBS:
            text = pattern.sub(repl, text)
        return text

    @staticmethod
    def canon(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: (sorted(v) if k in UNORDERED and isinstance(v, list) else Replay.canon(v))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [Replay.canon(v) for v in value]
        return value

    def norm_json(self, value: Any, sim: bool) -> str:
        return json.dumps(self.canon(json.loads(self.norm_text(json.dumps(value), sim))))

    # -- driving ----------------------------------------------------------------------------
    def expected_counts(self) -> list[dict[str, int]]:
        counts: dict[str, int] = {}
        out = []
        for ev in self.doc["events"]:
            out.append(dict(counts))
            src = ev["src"]
            if src.startswith("ws:") and ev.get("kind") in ("text", "binary"):
                counts[src[3:]] = counts.get(src[3:], 0) + 1
        return out

    def sync(self, counts: dict[str, int], timeout: float = 20.0) -> None:
        for label, client in self.clients.items():
            want = counts.get(label, 0)
            if not client.wait_count(want, timeout):
                self.problems.append(f"{label}: waited for {want} frames, got {len(client.frames)}")

    def output_hint(self, captured_pid: str | None, response: Any) -> list[str]:
        """Order of output nodes the capture's server used (a set order in ComfyUI)."""
        if isinstance(response, dict) and response.get("node_errors"):
            hint: list[str] = []
            for entry in response["node_errors"].values():
                for o in entry.get("dependent_outputs", []):
                    if o not in hint:
                        hint.append(o)
            if hint:
                return hint
        if captured_pid:
            for ev in self.doc["events"]:
                body = ev.get("response_json")
                if ev["src"] == "http" and isinstance(body, dict):
                    entry = body.get(captured_pid)
                    if isinstance(entry, dict) and "prompt" in entry:
                        return list(entry["prompt"][4])
                    for item in body.get("queue_running", []) + body.get("queue_pending", []):
                        if item[1] == captured_pid:
                            return list(item[4])
        return []

    def request(self, ev: dict[str, Any]) -> requests.Response:
        path = ev["path"]
        for cap, mine in self.ids.items():
            path = path.replace(cap, mine)
        for cap, mine in self.files.items():
            path = path.replace(cap, mine)
        kwargs: dict[str, Any] = {"timeout": 60}
        if "request_json" in ev:
            body = json.dumps(ev["request_json"])
            for cap, mine in self.ids.items():
                body = body.replace(cap, mine)
            kwargs["data"] = body
            kwargs["headers"] = {"Content-Type": "application/json"}
        if "request_raw_body" in ev:
            kwargs["data"] = ev["request_raw_body"].encode("latin1")
        if "request_form_fields" in ev:
            kwargs["data"] = ev["request_form_fields"]
        if "request_files" in ev:
            files = {}
            for key, meta in ev["request_files"].items():
                blob = next(
                    c for c in UPLOAD_CANDIDATES if hashlib.sha256(c).hexdigest() == meta["sha256"]
                )
                files[key] = (meta["filename"], blob, meta["content_type"])
            kwargs["files"] = files
            kwargs.pop("headers", None)
        if ev.get("request_headers"):
            kwargs["headers"] = {**kwargs.get("headers", {}), **ev["request_headers"]}
        return requests.request(ev["method"], self.base + path, **kwargs)

    def check_http(self, ev: dict[str, Any], r: requests.Response) -> None:
        where = f"HTTP {ev['method']} {ev['path']} ({ev.get('label')})"
        if r.status_code != ev["status"]:
            self.problems.append(
                f"{where}: status {r.status_code} != {ev['status']} {r.text[:300]}"
            )
            return
        want_ct = ev["response_headers"].get("Content-Type")
        got_ct = r.headers.get("Content-Type")
        if want_ct != got_ct:
            self.problems.append(f"{where}: Content-Type {got_ct!r} != {want_ct!r}")
        want_names = {h.lower() for h in ev["response_headers"]}
        got_names = {h.lower() for h in r.headers}
        if want_names != got_names:
            self.problems.append(f"{where}: headers {sorted(got_names)} != {sorted(want_names)}")
        etag = r.headers.get("Etag")
        # aiohttp's file ETag: "<mtime in ns, hex>-<size, hex>".
        if etag is not None and not re.fullmatch(rf'"[0-9a-f]+-{len(r.content):x}"', etag):
            self.problems.append(f"{where}: Etag {etag!r} does not name the body's size")
        for h in ("Content-Disposition", "X-Content-Type-Options"):
            want_h, got_h = ev["response_headers"].get(h), r.headers.get(h)
            if want_h is not None and got_h is not None:
                want_h, got_h = self.norm_text(want_h, False), self.norm_text(got_h, True)
            if want_h != got_h:
                self.problems.append(
                    f"{where}: {h} {r.headers.get(h)!r} != {ev['response_headers'].get(h)!r}"
                )
        if ev.get("response_body_omitted") or "response_sha256" in ev:
            return
        if "response_json" in ev:
            expected = ev["response_json"]
            try:
                actual = r.json()
            except ValueError:
                actual = r.text
            self.pair_files(expected, actual)
            if ev["path"].split("?")[0] in ("/history", "/api/history") and isinstance(
                actual, dict
            ):
                # Full history also holds entries of earlier scenarios on the capture server.
                known = set(self.ids)
                expected = {k: v for k, v in expected.items() if k in known}
                actual = {k: v for k, v in actual.items() if k in set(self.ids.values())}
            expected, actual = self.cross_scenario_state(ev, expected, actual)
            want = self.norm_json(expected, sim=False)
            got = self.norm_json(actual, sim=True) if not isinstance(actual, str) else actual
            if "sort_by=execution_duration" in ev["path"]:
                # Durations depend on timing; compare the listed jobs, not their order.
                want = json.dumps(sorted(json.loads(want)["jobs"], key=lambda j: j["id"]))
                got = json.dumps(sorted(json.loads(got)["jobs"], key=lambda j: j["id"]))
            if want != got:
                self.problems.append(f"{where}:\n  got  {got[:3000]}\n  want {want[:3000]}")
        elif "response_text" in ev and ev["response_text"] != r.text:
            self.problems.append(f"{where}: body {r.text[:200]!r} != {ev['response_text'][:200]!r}")

    def cross_scenario_state(
        self, ev: dict[str, Any], expected: Any, actual: Any
    ) -> tuple[Any, Any]:
        """Drop what earlier scenarios left on the capture server (files, history entries)."""
        path = ev["path"].split("?")[0]
        if path.endswith("/object_info/LoadImage") and isinstance(expected, dict):
            mine = {"example.png"} | {
                (e.get("response_json") or {}).get("name")
                for e in self.doc["events"]
                if e["src"] == "http" and e["path"].endswith("/upload/image")
            }
            expected = json.loads(json.dumps(expected))
            combo = expected["LoadImage"]["input"]["required"]["image"]
            combo[0] = [n for n in combo[0] if n in mine]
        if path.endswith("/api/jobs") and isinstance(expected, dict) and isinstance(actual, dict):
            if any(j["id"] not in self.ids for j in expected.get("jobs", [])):
                sim_ids = set(self.ids.values())
                expected = {"jobs": [j for j in expected["jobs"] if j["id"] in self.ids]}
                actual = {"jobs": [j for j in actual.get("jobs", []) if j["id"] in sim_ids]}
        return expected, actual

    def pair_files(self, expected: Any, actual: Any) -> None:
        """Learn which simulator file name stands for each captured one (for /view)."""
        if isinstance(expected, dict) and isinstance(actual, dict):
            if isinstance(expected.get("filename"), str) and isinstance(
                actual.get("filename"), str
            ):
                self.files.setdefault(expected["filename"], actual["filename"])
            for key, value in expected.items():
                mine = actual.get(key)
                if mine is None:
                    mine = actual.get(self.ids.get(key, key))
                self.pair_files(value, mine)
        elif isinstance(expected, list) and isinstance(actual, list):
            for a, b in zip(expected, actual, strict=False):
                self.pair_files(a, b)

    def prepare_inputs(self) -> None:
        """Create input files the capture tool wrote without logging an event."""
        for ev in self.doc["events"]:
            prompt = (ev.get("request_json") or {}).get("prompt") if ev["src"] == "http" else None
            if isinstance(prompt, dict):
                for node in prompt.values():
                    name = node.get("inputs", {}).get("image") if isinstance(node, dict) else None
                    if isinstance(name, str) and name.startswith("proto_vanish"):
                        with open(os.path.join(self.data_dir, "input", name), "wb") as fh:
                            fh.write(tiny_png(16, 16, (10, 20, 30)))

    def local_action(self, index: int, what: str) -> None:
        verb, _, rel = what.partition(" ")
        path = os.path.join(self.data_dir, rel)
        if verb == "deleted":
            os.remove(path)
        elif verb == "wrote":
            name = os.path.basename(rel)
            hit = next(
                e for e in self.doc["events"][index:] if e["src"] == "http" and name in e["path"]
            )
            text = hit.get("response_text")
            if text is None:
                text = json.dumps(hit.get("response_json"))
            with open(path, "w") as fh:
                fh.write(text)

    def run(self) -> None:
        events = self.doc["events"]
        counts = self.expected_counts()
        self.prepare_inputs()
        last_t = 0.0
        for i, ev in enumerate(events):
            src = ev["src"]
            if src == "local":
                self.local_action(i, ev["what"])
                continue
            if src.startswith("ws:"):
                label = src[3:]
                kind = ev.get("kind")
                if kind == "connect":
                    self.sync(counts[i])
                    self.clients[label] = Client(self.base.replace("http", "ws", 1) + ev["url"])
                elif kind == "client_sent_text":
                    self.clients[label].ws.send(ev["raw"])
                elif kind == "client_closed":
                    self.sync(counts[i])
                    self.clients[label].close()
                continue
            self.sync(counts[i])
            t = ev.get("t_send_ms", last_t)
            time.sleep(min(max(t - last_t, 0.0), 15.0) / 1000.0)
            last_t = t
            self.http_event(ev)
        self.sync({k: v for k, v in counts[-1].items()} | self._final_counts())
        for client in self.clients.values():
            client.close()
        self.compare_frames()

    def _final_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for ev in self.doc["events"]:
            if ev["src"].startswith("ws:") and ev.get("kind") in ("text", "binary"):
                out[ev["src"][3:]] = out.get(ev["src"][3:], 0) + 1
        return out

    def http_event(self, ev: dict[str, Any]) -> None:
        body = ev.get("request_json")
        is_post_prompt = ev["method"] == "POST" and ev["path"] in ("/prompt", "/api/prompt")
        captured_pid = (ev.get("response_json") or {}).get("prompt_id") if is_post_prompt else None
        if is_post_prompt:
            self.set_config(
                {"output_order": self.output_hint(captured_pid, ev.get("response_json"))}
            )
        label = ev.get("label") or ""
        r = self.request(ev)
        if label.startswith("poll history"):
            # Polls race the run by nature: wait for the outcome the capture ended with.
            if ev.get("response_json"):
                end = time.monotonic() + 20
                while not r.json() and time.monotonic() < end:
                    time.sleep(0.02)
                    r = self.request(ev)
            elif r.json():
                return
        if is_post_prompt and captured_pid and r.status_code == 200:
            self.ids[captured_pid] = r.json()["prompt_id"]
        self.check_http(ev, r)
        del body

    def compare_frames(self) -> None:
        for label, client in self.clients.items():
            want = [
                e
                for e in self.doc["events"]
                if e["src"] == "ws:" + label and e.get("kind") in ("text", "binary")
            ]
            got = client.frames
            info = self.doc["clients"].get(label, {})
            if not info.get("requested_clientId") and want and got and got[0][0] == "text":
                # Server-made sid: 32 random hex characters.
                cap_sid = json.loads(want[0]["raw"])["data"]["sid"]
                self.sids[cap_sid] = json.loads(got[0][1])["data"]["sid"]
            for n, (w, g) in enumerate(zip(want, got, strict=False)):
                if w["kind"] != g[0]:
                    self.problems.append(f"{label}#{n}: kind {g[0]} != {w['kind']}")
                    break
                if w["kind"] == "text":
                    wt = self.norm_frame(w["raw"], sim=False)
                    gt = self.norm_frame(g[1], sim=True)
                    if wt != gt:
                        self.problems.append(
                            f"{label}#{n}:\n  got  {gt[:2500]}\n  want {wt[:2500]}"
                        )
                        break
                else:
                    data = g[1]
                    etype = int.from_bytes(data[:4], "big")
                    if etype != w.get("event_type"):
                        self.problems.append(
                            f"{label}#{n}: binary type {etype} != {w.get('event_type')}"
                        )
                        break
                    if etype == 3 and data != bytes.fromhex(w["first8_hex"]) + data[8:]:
                        self.problems.append(f"{label}#{n}: TEXT header differs")
                    if etype == 3:
                        dec = w["decoded"]
                        n_len = int.from_bytes(data[4:8], "big")
                        if (data[8 : 8 + n_len].decode(), data[8 + n_len :].decode()) != (
                            dec["node_id"],
                            dec["text"],
                        ):
                            self.problems.append(f"{label}#{n}: TEXT payload differs")
                    elif (
                        etype == 1
                        and int.from_bytes(data[4:8], "big") != w["decoded"]["format_code"]
                    ):
                        self.problems.append(f"{label}#{n}: preview format differs")
            if len(want) != len(got):
                tail = [g[1][:200] if g[0] == "text" else "<binary>" for g in got[len(want) :]]
                self.problems.append(
                    f"{label}: {len(got)} frames, capture has {len(want)}; extra: {tail[:5]}"
                )

    def norm_frame(self, raw: str, sim: bool) -> str:
        text = self.norm_text(raw, sim)
        if '"executed"' in text or '"current_outputs"' in text:
            return json.dumps(self.canon(json.loads(text)))
        return text
