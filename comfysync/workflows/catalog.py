"""Which workflows a folder holds, and which file a reference names.

Workflows are `workflows/<name>.json`, or versions of one in
`workflows/<name>/v<N>.json` (see `versions`). A request's `workflow` string
is resolved here and nowhere else: `name`, `name@v3` or `name@<alias>` (see
`refs`). A flat file answers the plain name when a folder of the same name
exists too, so adding versions never changes what existing clients run.

Nothing here parses a graph, so the settings can check WARMUP_WORKFLOW with it
without importing what the graphs' parameters need.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import GatewayError, NotFound
from .refs import is_name, parse_ref
from .versions import MANIFESTS, Deployment, read_deployment


@dataclass(frozen=True)
class Resolved:
    """Which file a reference names, and the version it picked (None for a flat file)."""

    name: str
    version: str | None
    path: str


class Catalog:
    """Lists the workflows of a folder and resolves references to their files."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._deployments: dict[str, tuple[tuple[int, ...], Deployment | None]] = {}

    def names(self) -> list[str]:
        """Sorted workflow names, flat or versioned (parameter declarations are not workflows)."""
        names = set()
        for entry in self._entries():
            stem, ext = os.path.splitext(entry)
            if ext == ".json":
                if is_name(stem):
                    names.add(stem)
            elif is_name(entry) and self._has_versions(entry):
                names.add(entry)
        return sorted(names)

    def _has_versions(self, name: str) -> bool:
        try:
            return self.deployment(name) is not None
        except GatewayError:
            return True  # listed; `deployments()` shows what is wrong with it

    def deployments(self) -> dict[str, dict[str, Any]]:
        """Each versioned workflow's versions, aliases and default version, by name.

        A broken aliases file shows as `{"error": ...}` instead of failing the list.
        """
        found: dict[str, dict[str, Any]] = {}
        for entry in sorted(self._entries()):
            if not is_name(entry) or not os.path.isdir(os.path.join(self.root, entry)):
                continue
            try:
                deployment = self.deployment(entry)
            except GatewayError as err:
                found[entry] = {"error": err.message}
                continue
            if deployment is not None:
                found[entry] = deployment.to_json()
        return found

    def deployment(self, name: str) -> Deployment | None:
        """The versions of `name` (a valid name), or None when it has no folder of versions.

        :raises GatewayError: its aliases file is broken.
        """
        folder = os.path.join(self.root, name)
        stamp = tuple(_mtime(p) for p in (folder, *(os.path.join(folder, m) for m in MANIFESTS)))
        cached = self._deployments.get(name)
        if cached is None or cached[0] != stamp:
            cached = (stamp, read_deployment(folder, name) if stamp[0] else None)
            self._deployments[name] = cached
        return cached[1]

    def resolve(self, ref: str) -> Resolved:
        """The file `name`, `name@version` or `name@alias` names.

        :raises BadRequest: for a reference that is not plain names.
        :raises NotFound: no such workflow, version or alias (naming those there are).
        """
        parsed = parse_ref(ref)
        flat = os.path.join(self.root, parsed.name + ".json")
        if parsed.tag is None and os.path.isfile(flat):
            return Resolved(parsed.name, None, flat)
        deployment = self.deployment(parsed.name)
        if deployment is None:
            if os.path.isfile(flat):
                raise NotFound(
                    f"Workflow {parsed.name!r} has no versions; run it as {parsed.name!r}",
                    workflow=parsed.name,
                )
            raise NotFound(f"Workflow {ref!r} not found", workflow=ref)
        version = deployment.pick(parsed.tag)
        path = os.path.join(self.root, parsed.name, version + ".json")
        return Resolved(parsed.name, version, path)

    def _entries(self) -> list[str]:
        try:
            return os.listdir(self.root)
        except FileNotFoundError:
            return []


def _mtime(path: str) -> int:
    """Its mtime in ns, 0 when it does not exist: a cache stamp that changes with the file."""
    try:
        return os.stat(path).st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        return 0
