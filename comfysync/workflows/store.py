"""Named workflow graphs stored as `workflows/<name>.json` (ComfyUI API format)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from ..errors import BadRequest, GatewayError, NotFound
from ..params import Declaration, DeclarationError, load_declaration

# A plain file name: no separators, no leading dot, so no path traversal.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
DECLARATION_SUFFIX = ".params"


class WorkflowStore:
    """Lists and loads graphs; parsed files are cached until their mtime changes."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._cache: dict[str, tuple[float, str]] = {}
        self._declarations: dict[str, tuple[float, Declaration | None]] = {}

    def names(self) -> list[str]:
        """Sorted workflow names (parameter declarations are not workflows)."""
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return []
        names = []
        for entry in entries:
            stem, ext = os.path.splitext(entry)
            if ext == ".json" and not stem.endswith(DECLARATION_SUFFIX) and _NAME.match(stem):
                names.append(stem)
        return sorted(names)

    def path_for(self, name: str) -> str:
        """The file of a workflow name.

        :raises BadRequest: for a name that is not a plain file name.
        """
        if name.endswith(".json"):
            name = name[: -len(".json")]
        if not _NAME.match(name) or ".." in name or name.endswith(DECLARATION_SUFFIX):
            raise BadRequest(f"Invalid workflow name {name!r}")
        return os.path.join(self.root, name + ".json")

    def load(self, name: str) -> dict[str, Any]:
        """A fresh copy of the named graph, safe to modify.

        :raises NotFound: when there is no such workflow.
        """
        path = self.path_for(name)
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            raise NotFound(f"Workflow {name!r} not found", workflow=name) from None
        cached = self._cache.get(path)
        if cached is None or cached[0] != mtime:
            with open(path, encoding="utf-8") as handle:
                cached = (mtime, handle.read())
            self._cache[path] = cached
        try:
            graph = json.loads(cached[1])  # parsing again is the cheapest deep copy
        except ValueError as err:
            raise GatewayError(f"Workflow {name!r} is not valid JSON: {err}") from err
        if not isinstance(graph, dict):
            raise GatewayError(f"Workflow {name!r} is not a ComfyUI API-format graph")
        return graph

    def declared_tags(self, name: str) -> tuple[str, ...]:
        """The server tags the workflow's declaration says its runs need (none without one).

        :raises GatewayError: a missing workflow, or a broken declaration.
        """
        path = self.path_for(name)
        if not os.path.exists(path[: -len(".json")] + DECLARATION_SUFFIX + ".json"):
            return ()
        declaration = self.declaration(name, self.load(name))
        return declaration.tags if declaration is not None else ()

    def declaration(self, name: str, graph: dict[str, Any]) -> Declaration | None:
        """The typed parameters declared beside a workflow (`<name>.params.json`), if any.

        :raises GatewayError: when the declaration is broken (a deployment error).
        """
        path = self.path_for(name)
        params_path = path[: -len(".json")] + DECLARATION_SUFFIX + ".json"
        try:
            mtime = os.stat(params_path).st_mtime
        except FileNotFoundError:
            return None
        cached = self._declarations.get(params_path)
        if cached is None or cached[0] != mtime:
            try:
                cached = (mtime, load_declaration(path, graph))
            except DeclarationError as err:
                raise GatewayError(f"Parameters of workflow {name!r} are invalid: {err}") from err
            self._declarations[params_path] = cached
        return cached[1]
