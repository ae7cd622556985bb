"""Command line: python -m comfysync.simulator --port 0 --comfy-version 0.27 ..."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from .config import SUPPORTED_VERSIONS, SimConfig
from .runner import start_site, until_signalled
from .server import Simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """CLI flags (all timing knobs can also be changed later via POST /_sim/config)."""
    p = argparse.ArgumentParser(
        prog="python -m comfysync.simulator",
        description="Faithful ComfyUI HTTP/WebSocket simulator.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8188, help="0 picks a free port")
    p.add_argument("--comfy-version", choices=SUPPORTED_VERSIONS, default="0.3.64")
    p.add_argument("--parallel", type=int, default=1, help="prompts executed at once")
    p.add_argument("--node-delay-ms", type=float, default=0.0, help="sleep per executed node")
    p.add_argument(
        "--job-duration-ms",
        default="0",
        help="total time per job, spread over its nodes: N or MIN-MAX (uniform)",
    )
    p.add_argument("--preview-method", default="none", help="none|auto|latent2rgb|taesd")
    p.add_argument(
        "--data-dir", default=None, help="holds input/ output/ temp/ (default: temp dir)"
    )
    p.add_argument("--job-log", default=None, help="append one JSON line per finished prompt")
    p.add_argument("--ready-file", default=None, help="write the base URL here once listening")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    cfg = SimConfig(version=args.comfy_version, job_log=args.job_log)
    cfg.apply(
        {
            "parallel": args.parallel,
            "node_delay_ms": args.node_delay_ms,
            "job_duration_ms": args.job_duration_ms,
            "preview_method": args.preview_method,
        }
    )
    sim = Simulator(cfg, args.data_dir)
    runner, port = await start_site(sim, args.host, args.port)
    url = f"http://{args.host}:{port}"
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(url + "\n")
        os.replace(tmp, args.ready_file)
    print(f"comfyui-simulator listening on {url}", flush=True)
    try:
        await until_signalled()
    finally:
        await runner.cleanup()
        sim.dirs.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
