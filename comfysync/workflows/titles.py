"""Naming a node by its id or by its title (`_meta.title` in ComfyUI's API format).

Titles are what people see in ComfyUI's editor; ids are what the graph links
by. An id always wins, so a node titled "7" never hides node 7, and a title
names a node only when no other node has it.
"""

from __future__ import annotations

from typing import Any

from ..comfy.protocol import node_sort_key
from ..errors import BadRequest


def title_of(node: Any) -> str | None:
    """The node's title, when it has one."""
    meta = node.get("_meta") if isinstance(node, dict) else None
    title = meta.get("title") if isinstance(meta, dict) else None
    return title if isinstance(title, str) else None


def titled(graph: dict[str, Any], title: str) -> list[str]:
    """Ids of the nodes with exactly this title, in id order."""
    return sorted((i for i, node in graph.items() if title_of(node) == title), key=node_sort_key)


def node_id(graph: dict[str, Any], ref: Any) -> str | None:
    """The id `ref` names: itself when it is an id, else the one node with that title.

    None when nothing has it, or when several nodes share the title.
    """
    ref = str(ref)
    if ref in graph:
        return ref
    ids = titled(graph, ref)
    return ids[0] if len(ids) == 1 else None


def resolve_node(graph: dict[str, Any], ref: Any, *, field: str, unknown: str) -> str:
    """Like `node_id`, for a reference a request made.

    :raises BadRequest: naming `field`: with `unknown` as its message when no
        node has that id or title, or listing the candidates when several
        nodes share the title.
    """
    found = node_id(graph, ref)
    if found is not None:
        return found
    ids = titled(graph, str(ref))
    if ids:
        raise BadRequest(
            f"'{field}': {str(ref)!r} is the title of several nodes ({', '.join(ids)}); "
            "name one of them by id",
            field=field,
            candidates=ids,
        )
    raise BadRequest(unknown, field=field)
