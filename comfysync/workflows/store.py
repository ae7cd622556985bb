"""Named workflow graphs (ComfyUI API format) and the parameters declared beside them.

Which file a reference names is the catalog's answer (see `catalog`).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import GatewayError, NotFound
from ..params import Declaration, DeclarationError, load_declaration
from .catalog import Catalog, Resolved
from .refs import DECLARATION_SUFFIX

__all__ = ["Resolved", "WorkflowStore"]


class WorkflowStore(Catalog):
    """Lists, resolves and loads graphs; files are cached until their mtime changes."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self._cache: dict[str, tuple[float, str]] = {}
        self._declarations: dict[str, tuple[float, Declaration | None]] = {}

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


def _declaration_file(path: str) -> str:
    return path[: -len(".json")] + DECLARATION_SUFFIX + ".json"
