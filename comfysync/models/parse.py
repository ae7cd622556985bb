"""Checking a body against a model: the model, or one 400 that lists every bad field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import BadRequest
from .fields import ERROR_TYPE, Refusal

Model = TypeVar("Model", bound=BaseModel)


def parse(model: type[Model], body: Any, what: str = "The request body") -> Model:
    """`body` as `model`.

    :raises BadRequest: `error` and `field` say the first refusal, `errors`
        lists them all (`[{"field", "message"}]`).
    """
    if not isinstance(body, dict):
        raise BadRequest(f"{what} must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as err:
        found = (_refusal(model, detail) for detail in err.errors(include_url=False))
        # A value refused by several branches of a union is one bad field.
        errors = list({(e["field"], e["message"]): e for e in found}.values())
    first = errors[0]
    raise BadRequest(first["message"], field=first["field"], errors=errors)


def _refusal(model: type[BaseModel], detail: Any) -> dict[str, Any]:
    """One pydantic error as the gateway words it."""
    loc = [str(part) for part in detail["loc"]]
    context = detail.get("ctx") or {}
    if detail["type"] == ERROR_TYPE:
        field = context.get("field") or ".".join(loc) or None
        return {"field": field, "message": context["message"]}
    name = loc[0] if loc else None
    info = model.model_fields.get(name) if name else None
    for item in info.metadata if info else ():
        if isinstance(item, Refusal):
            return {"field": name, "message": item.text.format(input=detail.get("input"))}
    where = ".".join(loc) or "body"
    return {"field": where if loc else None, "message": f"'{where}': {detail['msg']}"}
