"""What a route declares about itself for the API description: its body, query and answers.

The declaration sits on the view function, next to the code it describes; the
document builder reads it from there (`document.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

View = TypeVar("View", bound=Callable[..., Any])

# An answer that is a file: any media type.
FILE = "file"
# An answer that is an event stream.
EVENTS = "events"
# An answer in Prometheus' text format.
TEXT = "text"

Answer = type[BaseModel] | str


@dataclass(frozen=True)
class Query:
    """One query parameter (or header, with `where="header"`)."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    where: str = "query"


@dataclass(frozen=True)
class Operation:
    body: type[BaseModel] | None = None
    multipart: bool = False  # also takes multipart: a JSON `payload` part plus files
    query: tuple[Query, ...] = ()
    answers: dict[int, Answer] = field(default_factory=dict)
    tag: str = "gateway"
    public: bool = False  # no API key asked for
    body_required: bool = True


def operation(
    *,
    body: type[BaseModel] | None = None,
    multipart: bool = False,
    query: tuple[Query, ...] = (),
    answers: dict[int, Answer] | None = None,
    tag: str = "gateway",
    public: bool = False,
    body_required: bool = True,
) -> Callable[[View], View]:
    """Describe a view for `/openapi.json`; goes below the route decorator."""

    def mark(view: View) -> View:
        view.__operation__ = Operation(  # type: ignore[attr-defined]
            body, multipart, tuple(query), dict(answers or {}), tag, public, body_required
        )
        return view

    return mark


def declared(view: Callable[..., Any]) -> Operation | None:
    return getattr(view, "__operation__", None)
