"""Named workflow graphs (ComfyUI API format): `workflows/<name>.json`, or versions of one
in `workflows/<name>/v<N>.json` (see `versions`).

A request's `workflow` string is resolved here and nowhere else: `name`,
`name@v3` or `name@<alias>` (see `refs`). A flat file answers the plain name
when a folder of the same name exists too, so adding versions never changes
what existing clients run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from ..errors import GatewayError, NotFound
from ..params import Declaration, DeclarationError, load_declaration
from .refs import DECLARATION_SUFFIX, is_name, parse_ref
from .versions import MANIFESTS, Deployment, read_deployment


@dataclass(frozen=True)
class Resolved:
    """Which file a reference names, and the version it picked (None for a flat file)."""

    name: str
    version: str | None
    path: str


class WorkflowStore:
    """Lists, resolves and loads graphs; files are cached until their mtime changes."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._cache: dict[str, tuple[float, str]] = {}
        self._declarations: dict[str, tuple[float, Declaration | None]] = {}
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

    def path_for(self, ref: str) -> str:
        """The file of a workflow reference (see `resolve`)."""
        return self.resolve(ref).path

    def load(self, ref: str) -> dict[str, Any]:
        """A fresh copy of the named graph, safe to modify.

        :raises NotFound: when there is no such workflow (or version, or alias).
        """
        path = self.path_for(ref)
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            raise NotFound(f"Workflow {ref!r} not found", workflow=ref) from None
        cached = self._cache.get(path)
        if cached is None or cached[0] != mtime:
            with open(path, encoding="utf-8") as handle:
                cached = (mtime, handle.read())
            self._cache[path] = cached
        try:
            graph = json.loads(cached[1])  # parsing again is the cheapest deep copy
        except ValueError as err:
            raise GatewayError(f"Workflow {ref!r} is not valid JSON: {err}") from err
        if not isinstance(graph, dict):
            raise GatewayError(f"Workflow {ref!r} is not a ComfyUI API-format graph")
        return graph

    def declared_tags(self, ref: str) -> tuple[str, ...]:
        """The server tags the workflow's declaration says its runs need (none without one).

        :raises GatewayError: a missing workflow, or a broken declaration.
        """
        if not os.path.exists(_declaration_file(self.path_for(ref))):
            return ()
        declaration = self.declaration(ref, self.load(ref))
        return declaration.tags if declaration is not None else ()

    def declaration(self, ref: str, graph: dict[str, Any]) -> Declaration | None:
        """The typed parameters declared beside the graph file (`<file>.params.json`), if any.

        :raises GatewayError: when the declaration is broken (a deployment error).
        """
        path = self.path_for(ref)
        params_path = _declaration_file(path)
        try:
            mtime = os.stat(params_path).st_mtime
        except FileNotFoundError:
            return None
        cached = self._declarations.get(params_path)
        if cached is None or cached[0] != mtime:
            try:
                cached = (mtime, load_declaration(path, graph))
            except DeclarationError as err:
                raise GatewayError(f"Parameters of workflow {ref!r} are invalid: {err}") from err
            self._declarations[params_path] = cached
        return cached[1]

    def _entries(self) -> list[str]:
        try:
            return os.listdir(self.root)
        except FileNotFoundError:
            return []


def _declaration_file(path: str) -> str:
    return path[: -len(".json")] + DECLARATION_SUFFIX + ".json"


def _mtime(path: str) -> int:
    """Its mtime in ns, 0 when it does not exist: a cache stamp that changes with the file."""
    try:
        return os.stat(path).st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        return 0
