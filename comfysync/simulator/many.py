"""Many simulated ComfyUI servers in one process: one event loop, one port per server.

For sizing a fleet on one machine (100 servers would be 100 processes
otherwise): `python -m comfysync.simulator.many --count 100 --ready-file f.json`
writes the servers' URLs to the file (a JSON list) once all listen. Each
server is a whole `Simulator` (its own queue, history, sockets); they only
share the process, so their jobs compete for one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile

from .config import SimConfig
from .runner import start_site, until_signalled
from .server import Simulator


async def _serve(count: int, job_duration_ms: str, ready_file: str | None) -> None:
    root = tempfile.mkdtemp(prefix="comfysim-many-")
    runners, urls = [], []
    for i in range(count):
        cfg = SimConfig()
        cfg.apply({"job_duration_ms": job_duration_ms})
        sim = Simulator(cfg, os.path.join(root, f"s{i}"))
        runner, port = await start_site(sim, "127.0.0.1", 0)
        runners.append((runner, sim))
        urls.append(f"http://127.0.0.1:{port}")
    if ready_file:
        with open(ready_file + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(urls, handle)
        os.replace(ready_file + ".tmp", ready_file)
    try:
        await until_signalled()
    finally:
        for runner, sim in runners:
            await runner.cleanup()
            sim.dirs.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m comfysync.simulator.many")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--job-duration-ms", default="0", help="N or MIN-MAX per job")
    parser.add_argument("--ready-file", default=None)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.count, args.job_duration_ms, args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
