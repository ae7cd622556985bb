"""API keys: who may call what, told apart by name, kept only as hashes.

`API_KEYS` (comma-separated) gives keys that may do everything.
`API_KEYS_FILE` (TOML or JSON) names keys and narrows them:

    [[keys]]
    name = "figma-plugin"
    sha256 = "<hex digest of the key>"     # python -m comfysync.keys new
    scopes = ["generate", "runs"]          # default: all three
    workflows = ["demo_invert"]            # default: any, inline graphs too
    rate_limit = "60/minute"               # default: RATE_LIMIT

Keys are random tokens, so a plain SHA-256 is the right hash: there is
nothing to guess that a slow hash would protect (as with GitHub's tokens).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sys
import tomllib
from dataclasses import dataclass
from typing import Any

from .workflows.refs import base_name

GENERATE = "generate"  # start generations, read workflows and outputs
RUNS = "runs"  # read and cancel its own runs
ADMIN = "admin"  # everyone's runs and prompts, ComfyUI pass-through, gateway status
SCOPES = frozenset({GENERATE, RUNS, ADMIN})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_RATE = re.compile(r"(\d{1,9})\s*/\s*(second|minute|hour|day)s?", re.IGNORECASE)
_WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Rate:
    """At most `limit` requests per `window` seconds."""

    limit: int
    window: int

    def __str__(self) -> str:
        unit = next(name for name, seconds in _WINDOWS.items() if seconds == self.window)
        return f"{self.limit}/{unit}"


def parse_rate(raw: str) -> Rate:
    """`60/minute`, `10/second`, `1000/hour`, `5000/day`.

    :raises ValueError: anything else.
    """
    found = _RATE.fullmatch(raw.strip())
    if not found or int(found.group(1)) < 1:
        raise ValueError(f"{raw!r} is not a rate like 60/minute")
    return Rate(int(found.group(1)), _WINDOWS[found.group(2).lower()])


@dataclass(frozen=True)
class ApiKey:
    """One key: its name, the digest it is known by, what it may do."""

    name: str
    digest: bytes  # SHA-256 of the key
    scopes: frozenset[str] = SCOPES
    workflows: frozenset[str] | None = None  # None: any workflow, inline graphs included
    rate_limit: Rate | None = None

    @property
    def sees_everything(self) -> bool:
        """Whether it reads every run, not only its own."""
        return ADMIN in self.scopes

    def may_run(self, workflow: str | None) -> bool:
        """Whether it may run this stored workflow (None: an inline graph).

        A name allows each of its versions and aliases; `name@alias` only that one.
        """
        if self.workflows is None:
            return True
        if workflow is None:
            return False
        return workflow in self.workflows or base_name(workflow) in self.workflows


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def plain_keys(keys: tuple[str, ...]) -> tuple[ApiKey, ...]:
    """`API_KEYS`: keys that may do everything, named `key-` and 8 hex digits of their hash
    (stable when the list is reordered; too short to help anyone guess the key)."""
    return tuple(ApiKey(f"key-{digest(key).hex()[:8]}", digest(key)) for key in keys)


def load_keys_file(path: str) -> tuple[ApiKey, ...]:
    """The keys of an `API_KEYS_FILE` (`.toml` or `.json`: `{"keys": [...]}`).

    :raises ValueError: unreadable, or an entry that is not a valid key.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise ValueError(f"cannot read it ({err.strerror})") from None
    is_json = path.lower().endswith(".json")
    try:
        data = json.loads(raw) if is_json else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"not valid {'JSON' if is_json else 'TOML'}: {err}") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError("it must hold a non-empty list 'keys'")
    keys = [_entry(entry, i) for i, entry in enumerate(entries, 1)]
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ValueError("two keys have the same name")
    if len({k.digest for k in keys}) != len(keys):
        raise ValueError("two entries have the same key")
    return tuple(keys)


def _entry(entry: Any, place: int) -> ApiKey:
    where = f"key {place}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a table/object")
    unknown = entry.keys() - {"name", "sha256", "scopes", "workflows", "rate_limit"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{where}: 'name' must be letters, digits and _ . @ - (64 at most)")
    hexdigest = entry.get("sha256")
    if not isinstance(hexdigest, str) or not _DIGEST.fullmatch(hexdigest.lower()):
        raise ValueError(f"{name}: 'sha256' must be the key's SHA-256 in hex (64 characters)")
    scopes = entry.get("scopes", sorted(SCOPES))
    if not isinstance(scopes, list) or not scopes or not set(scopes) <= SCOPES:
        raise ValueError(f"{name}: 'scopes' must list some of {', '.join(sorted(SCOPES))}")
    workflows = entry.get("workflows")
    if workflows is not None and (
        not isinstance(workflows, list) or not all(isinstance(w, str) for w in workflows)
    ):
        raise ValueError(f"{name}: 'workflows' must be a list of workflow names")
    rate = entry.get("rate_limit")
    if rate is not None and not isinstance(rate, str):
        raise ValueError(f"{name}: 'rate_limit' must be a string like 60/minute")
    return ApiKey(
        name,
        bytes.fromhex(hexdigest.lower()),
        frozenset(scopes),
        None if workflows is None else frozenset(workflows),
        parse_rate(rate) if rate else None,
    )


def main(argv: list[str]) -> int:
    """`python -m comfysync.keys new [NAME]`: a fresh key and its entry for API_KEYS_FILE;
    `python -m comfysync.keys hash KEY`: the digest of an existing key."""
    if len(argv) >= 1 and argv[0] == "new":
        key = "csk_" + secrets.token_urlsafe(32)
        name = argv[1] if len(argv) > 1 else "my-key"
        print(f"key (give it to the client, it is not kept anywhere): {key}", file=sys.stderr)
        print(f'[[keys]]\nname = "{name}"\nsha256 = "{hashlib.sha256(key.encode()).hexdigest()}"')
        return 0
    if len(argv) == 2 and argv[0] == "hash":
        print(hashlib.sha256(argv[1].encode()).hexdigest())
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
