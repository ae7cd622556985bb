"""`python -m bench [--quick] [SCENARIO ...]`: run the benchmarks, write bench/results/."""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
import traceback

from .processes import ROOT, raise_fd_limit
from .report import ScenarioResult, markdown, write
from .scenarios import Context, registry

RESULTS = os.path.join(ROOT, "bench", "results")


def code_state() -> str:
    """HEAD plus a hash of the service's files as they are on disk: what the figures measured.

    Others change the gateway while benchmarks run; a scenario whose files
    differ from the run's start is flagged in its notes. The hash covers
    content, so a commit of the same code does not count as a change.
    """
    digest = hashlib.sha1()
    paths = [os.path.join(ROOT, "gunicorn.conf.py"), os.path.join(ROOT, "wsgi.py")]
    for folder, _, files in sorted(os.walk(os.path.join(ROOT, "comfysync"))):
        paths += [os.path.join(folder, f) for f in sorted(files) if f.endswith(".py")]
    for path in paths:
        with open(path, "rb") as handle:
            digest.update(path.encode() + handle.read())
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return f"{head or 'unknown'}, files {digest.hexdigest()[:8]}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    names = list(registry())
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(names)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="one round each, smaller runs")
    parser.add_argument("--out", default=RESULTS, help="folder for the .md and .json results")
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in names]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # 5,000 held requests need 5,000 sockets in the load generator and in the worker;
    # both inherit this limit.
    raise_fd_limit()
    scenarios = registry()
    chosen = args.scenarios or list(scenarios)
    command = (
        "python -m bench"
        + (" --quick" if args.quick else "")
        + "".join(f" {s}" for s in args.scenarios)
    )
    # A partial run gets its own file, so it never overwrites the full report.
    stem = "latest" if not args.scenarios and not args.quick else "latest-partial"
    ctx = Context(quick=args.quick)
    results: list[ScenarioResult] = []
    failed = False
    started = time.monotonic()
    initial = code_state()
    for name in chosen:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        before = code_state()
        try:
            result = scenarios[name](ctx)
        except Exception:  # noqa: BLE001 - one broken scenario must not lose the others
            traceback.print_exc()
            failed = True
            continue
        after = code_state()
        result.data["code_state"] = [before, after]
        if {before.split("files")[1], after.split("files")[1]} != {initial.split("files")[1]}:
            result.notes.append(
                f"The gateway's code changed during the run ({initial} at the start, "
                f"{before} -> {after} around this scenario): compare with care."
            )
        results.append(result)
        print(f"[bench] {name} done in {result.seconds:.0f} s", file=sys.stderr, flush=True)
        write(results, args.out, command, stem)  # keep what we have if a later one breaks
    command += f"  # code {initial}"
    paths = write(results, args.out, command, stem)
    print(markdown(results, command))
    print(
        f"[bench] {time.monotonic() - started:.0f} s; wrote {', '.join(paths)}",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
