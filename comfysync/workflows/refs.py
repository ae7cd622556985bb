"""How a request names a stored workflow: `name`, `name@v3` or `name@staging`.

`v3` is a version, `staging` an alias (see `versions`).

Every part must be a plain file name (no separators, no leading dot, no
`..`), so no reference can reach outside the workflows folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BadRequest

SEPARATOR = "@"
DECLARATION_SUFFIX = ".params"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
VERSION = re.compile(r"^v(0|[1-9][0-9]{0,8})$")
ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class WorkflowRef:
    """A parsed reference: the workflow's name and the version or alias asked for, if any."""

    name: str
    tag: str | None = None

    def __str__(self) -> str:
        return self.name if self.tag is None else f"{self.name}{SEPARATOR}{self.tag}"


def is_name(name: str) -> bool:
    """Whether `name` may name a workflow (a file or a folder in the workflows folder)."""
    return bool(NAME.match(name)) and ".." not in name and not name.endswith(DECLARATION_SUFFIX)


def version_number(tag: str) -> int | None:
    """3 for "v3"; None for anything that is not a version."""
    match = VERSION.match(tag)
    return int(match.group(1)) if match else None


def parse_ref(text: str) -> WorkflowRef:
    """Split `name[@version-or-alias]`; a plain name may end in `.json`, as it always could.

    :raises BadRequest: naming the reference when a part is not a plain name.
    """
    name, separator, tag = text.partition(SEPARATOR)
    if not separator and name.endswith(".json"):
        name = name[: -len(".json")]
    if not is_name(name) or (separator and not (VERSION.match(tag) or ALIAS.match(tag))):
        raise BadRequest(f"Invalid workflow name {text!r}", field="workflow")
    return WorkflowRef(name, tag if separator else None)


def base_name(text: str) -> str:
    """The workflow a reference belongs to, whichever version it picks."""
    return text.partition(SEPARATOR)[0]
