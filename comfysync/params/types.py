"""Typed workflow parameters: what each one is, and converting a request value to it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from comfysync.inputs.decode import SourceKind, classify
from comfysync.workflows.files import name_problem

ParamType = Literal["string", "int", "float", "bool", "enum", "image"]
TYPES: tuple[str, ...] = ("string", "int", "float", "bool", "enum", "image")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class Invalid(ValueError):
    """A value does not fit its parameter; the message is the field's `reason`."""


@dataclass(frozen=True)
class Target:
    """One node input a parameter writes to."""

    node: str
    input: str

    def __str__(self) -> str:
        return f"{self.node}.{self.input}"


@dataclass(frozen=True)
class Param:
    """A named, typed workflow input and the node inputs it sets."""

    name: str
    type: ParamType
    targets: tuple[Target, ...]
    default: Any = None
    has_default: bool = False  # False: the graph's own value stays unless the client sets it
    description: str = ""
    display_name: str = ""
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple[Any, ...] = ()
    required: bool = False
    alpha: bool = False  # image only: keep/produce an alpha channel (RGBA PNG)
    file_name: bool = False  # string only: a model file name, never a URL to download
    source: Literal["declaration", "comfyui_deploy"] = "declaration"
    node_class: str = ""  # ComfyUI Deploy: the external node's class_type
    default_link: tuple[str, int] | None = None  # ComfyUI Deploy: a wired-in default


def expected(param: Param) -> str:
    """Describe the accepted values of `param` for the `expected` field of an error."""
    if param.type == "enum":
        return "one of: " + ", ".join(str(c) for c in param.choices)
    if param.type == "image":
        alpha = " (alpha kept)" if param.alpha else ""
        return (
            f"image{alpha}: http(s) URL, data URL, base64, uploaded file, "
            "alias:name in an input mount or input file name"
        )
    if param.type == "bool":
        return "bool (true/false)"
    text = {"string": "string", "int": "integer", "float": "number"}[param.type]
    if param.minimum is not None and param.maximum is not None:
        return f"{text} from {param.minimum} to {param.maximum}"
    if param.minimum is not None:
        return f"{text} >= {param.minimum}"
    if param.maximum is not None:
        return f"{text} <= {param.maximum}"
    return text


def convert(param: Param, value: Any) -> Any:
    """Convert a JSON (or form) value to the parameter's type and check its bounds.

    :raises Invalid: with the reason the value is not acceptable.
    """
    if isinstance(value, bytes | bytearray) and param.type != "image":
        raise Invalid("a file was sent for a parameter that is not an image")
    if value is None:
        raise Invalid("null is not a value")
    converted = _CONVERTERS[param.type](param, value)
    if param.type in ("int", "float"):
        _check_bounds(param, converted)
    return converted


def _to_string(param: Param, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Invalid(f"expected a string, got {_json_type(value)}")
    text = value if isinstance(value, str) else str(value)
    # `alias:name` is an input-image form only; for a model file it stays a plain name.
    if param.file_name and classify(text) not in (SourceKind.NAME, SourceKind.MOUNT):
        raise Invalid("must name a file ComfyUI already has; downloading models is not supported")
    return text


def _to_int(param: Param, value: Any) -> int:
    if isinstance(value, bool):
        raise Invalid("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise Invalid("not a whole number")
        return int(value)
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            return int(text, 16) if text.lower().startswith(("0x", "-0x")) else int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise Invalid("not an integer") from None
        if math.isfinite(number) and number.is_integer():
            return int(number)
        raise Invalid("not a whole number")
    raise Invalid(f"expected an integer, got {_json_type(value)}")


def _to_float(param: Param, value: Any) -> float:
    if isinstance(value, bool):
        raise Invalid("expected a number, got a boolean")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise Invalid("not a number") from None
    else:
        raise Invalid(f"expected a number, got {_json_type(value)}")
    if not math.isfinite(number):
        raise Invalid("not a finite number")
    return number


def _to_bool(param: Param, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise Invalid("expected true or false")


def _to_enum(param: Param, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Invalid(f"expected one of the choices, got {_json_type(value)}")
    # Compare as text so "2" picks the choice 2 (form fields are always strings).
    text = value.strip() if isinstance(value, str) else str(value)
    for choice in param.choices:
        if text == str(choice) or (isinstance(value, int | float) and value == choice):
            return choice
    raise Invalid("not one of the choices")


def _to_image(param: Param, value: Any) -> str | bytes:
    if isinstance(value, bytes | bytearray):
        if not value:
            raise Invalid("the uploaded file is empty")
        return bytes(value)
    if not isinstance(value, str):
        raise Invalid(f"expected an image reference, got {_json_type(value)}")
    text = value.strip()
    if not text:
        raise Invalid("empty")
    if classify(text) is SourceKind.NAME:
        problem = name_problem(text)
        if problem is not None:
            raise Invalid(f"must be {problem} in ComfyUI's input folder")
    return text


def _check_bounds(param: Param, number: int | float) -> None:
    if param.minimum is not None and number < param.minimum:
        raise Invalid(f"below the minimum of {param.minimum}")
    if param.maximum is not None and number > param.maximum:
        raise Invalid(f"above the maximum of {param.maximum}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_CONVERTERS = {
    "string": _to_string,
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "enum": _to_enum,
    "image": _to_image,
}
