"""Read an input image named `alias:name` from one of the mounts allowed by INPUT_MOUNTS."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from comfysync.errors import NotFound
from comfysync.inputs.decode import mount_reference
from comfysync.inputs.errors import BlockedPath, MissingFile, TooLarge
from comfysync.mounts import Mount, OutsideMount, resolve


def read_mounted(value: str, mounts: tuple[Mount, ...], max_bytes: int) -> bytes:
    """The bytes of the file `value` (`alias:relative/name`) names, at most `max_bytes`.

    Containment is the file server's (`mounts.resolve`), and `..` is refused outright.

    :raises BlockedPath: the alias is not an input mount, or the path leads out of it.
    :raises MissingFile: no such file, or it cannot be read.
    :raises TooLarge: the file is over `max_bytes`.
    """
    reference = mount_reference(value)
    if reference is None:
        raise BlockedPath("expected alias:relative/name")
    alias, name = reference
    if not any(mount.alias == alias for mount in mounts):
        raise BlockedPath(f"{alias!r} is not a mount input images may be read from")
    if ".." in PurePosixPath(name).parts:
        raise BlockedPath("'..' is not allowed in a mount path")
    try:
        path = resolve(mounts, alias, name)
    except OutsideMount as err:
        raise BlockedPath(f"{name!r} leads outside the mount {alias!r}") from err
    except NotFound as err:
        raise MissingFile(f"no file {name!r} in the mount {alias!r}") from err
    try:
        # O_NOFOLLOW: a link swapped in after `resolve` checked the path is not followed.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as err:
        raise MissingFile(f"{name!r} in the mount {alias!r} cannot be read") from err
    if len(data) > max_bytes:
        raise TooLarge(f"over {max_bytes / (1 << 20):g} MiB")
    return data
