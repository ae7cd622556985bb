"""File mounts: folders of this machine served under a shared key (the seed-004 file server).

`FILE_MOUNTS=alias:/path;other:/path2` names folders; `FILE_ACCESS_KEY`
guards them. A file is served only when its real path (symlinks resolved)
is inside its mount's real path, so neither `..` nor a link leads out.
"""

from __future__ import annotations

import hmac
import os
import re
from dataclasses import dataclass
from urllib.parse import quote

from .errors import Forbidden, NotFound, Unauthorized

ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Words that begin URLs: an input image `http:...` or `data:...` is never a mount file.
URL_WORDS = frozenset({"http", "https", "data"})


class OutsideMount(Forbidden):
    """A path that resolves outside its mount."""

    description = "That path is outside the mount"


@dataclass(frozen=True)
class Mount:
    alias: str
    root: str  # absolute, symlinks resolved at start-up


def parse_mounts(raw: str) -> tuple[Mount, ...]:
    """`alias:/path;alias2:/path2` (a relative path is taken from the working folder).

    :raises ValueError: a malformed entry or an alias used twice.
    """
    mounts: list[Mount] = []
    for item in (part.strip() for part in raw.split(";")):
        if not item:
            continue
        alias, sep, path = item.partition(":")
        alias, path = alias.strip(), path.strip()
        if not sep or not ALIAS.fullmatch(alias) or not path:
            raise ValueError(f"{item!r} is not alias:/path (alias of letters, digits, _ . -)")
        if any(m.alias == alias for m in mounts):
            raise ValueError(f"the alias {alias!r} is used twice")
        mounts.append(Mount(alias, os.path.realpath(path)))
    return tuple(mounts)


def pick_inputs(raw: str, mounts: tuple[Mount, ...]) -> tuple[Mount, ...]:
    """The mounts named in `raw` (aliases split by commas or semicolons) that inputs may read.

    :raises ValueError: an alias not among `mounts`, or one that reads as a URL scheme.
    """
    picked: list[Mount] = []
    for alias in (part.strip() for part in re.split(r"[,;]", raw)):
        if not alias:
            continue
        if alias.lower() in URL_WORDS:
            raise ValueError(f"{alias!r} cannot be an input mount: it reads as a URL scheme")
        mount = next((m for m in mounts if m.alias == alias), None)
        if mount is None:
            raise ValueError(f"{alias!r} is not one of FILE_MOUNTS")
        if mount not in picked:
            picked.append(mount)
    return tuple(picked)


def url_prefix_for(mounts: tuple[Mount, ...], access_key: str, folder: str) -> str:
    """The mount URL that serves `folder`: `/comfyui_server/pw=<key>/files/<alias>[/<sub>]`.

    The innermost mount holding `folder` (real paths) is the one used.

    :raises ValueError: no mount holds `folder`.
    """
    real = os.path.realpath(folder)
    holding = [m for m in mounts if os.path.commonpath([real, m.root]) == m.root]
    if not holding:
        raise ValueError(f"the folder {folder!r} is inside none of FILE_MOUNTS")
    mount = max(holding, key=lambda m: len(m.root))
    prefix = f"/comfyui_server/pw={quote(access_key, safe='')}/files/{mount.alias}"
    sub = os.path.relpath(real, mount.root)
    return prefix if sub == "." else f"{prefix}/{quote(sub)}"


def check_key(expected: str, supplied: str | None) -> None:
    """Compare in constant time.

    :raises Unauthorized: no key, or the wrong one.
    """
    if not supplied or not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise Unauthorized("A valid file access key is required")


def resolve(mounts: tuple[Mount, ...], alias: str, name: str) -> str:
    """The real path of `name` inside the mount `alias`.

    :raises NotFound: no such mount, or no such file.
    :raises OutsideMount: the name (or a link on its way) leads out of the mount.
    """
    mount = next((m for m in mounts if m.alias == alias), None)
    if mount is None:
        raise NotFound(f"No mount {alias!r}")
    if "\x00" in name or os.path.isabs(name):
        raise OutsideMount()
    path = os.path.realpath(os.path.join(mount.root, name))
    if os.path.commonpath([path, mount.root]) != mount.root or path == mount.root:
        raise OutsideMount()
    if not os.path.isfile(path):
        raise NotFound(f"No file {name!r} in {alias!r}")
    return path
