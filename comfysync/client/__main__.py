"""The client from a shell:

    python -m comfysync.client generate sd_txt2img --prompt "a fox" -o fox.png
    python -m comfysync.client generate demo_invert --input seed=7 --json
    python -m comfysync.client workflows
    python -m comfysync.client status <run_id>

`--url` (default $COMFYSYNC_URL or http://127.0.0.1:5000) and `--key`
(default $COMFYSYNC_API_KEY). `generate` queues a run, follows its events
(a progress bar on a terminal) and writes the first image to `-o`, or prints
its URL. Exit status 1 when the run fails, with the gateway's error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import ApiError, Client

BAR = 30


def _value(raw: str) -> Any:
    """`7` -> 7, `true` -> True, `"x"` -> "x": JSON when it parses, else the text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _inputs(pairs: list[str]) -> dict[str, Any]:
    inputs = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--input wants name=value, got {pair!r}")
        inputs[name] = _value(raw)
    return inputs


def _progress(done: int, total: int, label: str) -> None:
    filled = BAR * done // total if total else 0
    sys.stderr.write(f"\r[{'#' * filled}{' ' * (BAR - filled)}] {done}/{total} {label[:40]:<40}")
    sys.stderr.flush()


def generate(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.prompt is not None:
        body["prompt"] = args.prompt
    if args.input:
        body["inputs"] = _inputs(args.input)
    run_id = client.run(args.workflow, **body)
    show = sys.stderr.isatty() and not args.quiet
    for event in client.events(run_id):
        if show and event.type == "progress":
            data = event.data
            _progress(
                data.get("nodes_done", 0), data.get("nodes_total", 0), data.get("node_type", "")
            )
        elif show and event.type in ("queued", "started"):
            sys.stderr.write(f"\r{event.type}...{' ' * (BAR + 40)}")
    if show:
        sys.stderr.write("\n")
    try:
        result = client.wait(run_id)
    except ApiError as err:
        print(f"run {run_id} failed: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.raw, indent=2))
    if args.output:
        if not result.url:
            print(f"run {run_id} made no image", file=sys.stderr)
            return 1
        with open(args.output, "wb") as handle:
            handle.write(client.download(result.url))
        if not args.json:
            print(args.output)
    elif not args.json:
        print(result.url)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m comfysync.client")
    parser.add_argument("--url", default=os.environ.get("COMFYSYNC_URL", "http://127.0.0.1:5000"))
    parser.add_argument("--key", default=os.environ.get("COMFYSYNC_API_KEY"))
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="run a stored workflow and wait for it")
    gen.add_argument("workflow")
    gen.add_argument("--prompt")
    gen.add_argument("--input", action="append", default=[], metavar="NAME=VALUE")
    gen.add_argument("-o", "--output", help="write the first image here")
    gen.add_argument("--json", action="store_true", help="print the whole result")
    gen.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    commands.add_parser("workflows", help="list the stored workflows")
    status = commands.add_parser("status", help="show a run")
    status.add_argument("run_id")
    args = parser.parse_args(argv)
    with Client(args.url, api_key=args.key) as client:
        try:
            if args.command == "generate":
                return generate(client, args)
            if args.command == "workflows":
                print("\n".join(client.workflows()))
                return 0
            print(json.dumps(client.status(args.run_id), indent=2))
            return 0
        except ApiError as err:
            print(str(err), file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
