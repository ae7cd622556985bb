"""Loopback guard for gateway subprocesses started by the end-to-end tests.

Put this folder on PYTHONPATH and set LOOPBACK_GUARD_LOG to a file: every socket
connection the process tries to open to an address outside loopback is refused before
it happens (an audit hook runs ahead of the connect call, gevent's sockets included) and
the address is appended to that file. A gateway with an address-check bug then fails
its fetch with "unreachable" instead of reaching another machine, and the test can read
which address it tried.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any

_LOG = os.environ.get("LOOPBACK_GUARD_LOG", "")


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths and the like never leave the machine
    try:
        return ipaddress.ip_address(str(address[0]).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _guard(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or _is_loopback(args[1]):
        return
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{args[1][0]}\n")
    raise PermissionError(f"loopback guard: connection to {args[1][0]} refused")


if _LOG:
    sys.addaudithook(_guard)
