"""Converting request values to each parameter type, and every way that fails."""

from __future__ import annotations

import pytest

from comfysync.params.types import Invalid, Param, Target, convert, expected

T = (Target("1", "x"),)


def p(kind: str, **extra) -> Param:
    return Param(name="x", type=kind, targets=T, **extra)


@pytest.mark.parametrize(
    ("value", "result"),
    [
        (42, 42),
        ("42", 42),
        (" -7 ", -7),
        ("1_000", 1000),
        (20.0, 20),
        ("20.0", 20),
        ("1e3", 1000),
        ("0xff8800", 0xFF8800),
        (18446744073709551615, 18446744073709551615),
    ],
)
def test_int_conversion(value, result) -> None:
    assert convert(p("int"), value) == result
    assert type(convert(p("int"), value)) is int


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "boolean"),
        ("abc", "not an integer"),
        ("2.5", "whole"),
        (2.5, "whole"),
        ([1], "array"),
        ({"a": 1}, "object"),
        ("", "not an integer"),
        ("inf", "whole"),
    ],
)
def test_int_failures(value, reason) -> None:
    with pytest.raises(Invalid, match=reason):
        convert(p("int"), value)


@pytest.mark.parametrize(
    ("value", "result"), [(7.5, 7.5), (7, 7.0), ("7.5", 7.5), (" 1e-3 ", 0.001), ("-0", 0.0)]
)
def test_float_conversion(value, result) -> None:
    assert convert(p("float"), value) == result
    assert type(convert(p("float"), value)) is float


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (False, "boolean"),
        ("seven", "not a number"),
        ("nan", "finite"),
        ("inf", "finite"),
        ([], "array"),
    ],
)
def test_float_failures(value, reason) -> None:
    with pytest.raises(Invalid, match=reason):
        convert(p("float"), value)


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("int", 0, "below the minimum of 1"),
        ("int", 151, "above the maximum of 150"),
        ("float", "0.99", "below"),
        ("float", 150.5, "above"),
    ],
)
def test_bounds(kind, value, reason) -> None:
    param = p(kind, minimum=1, maximum=150)
    with pytest.raises(Invalid, match=reason):
        convert(param, value)
    assert convert(param, 1) == 1 and convert(param, 150) == 150


@pytest.mark.parametrize(
    ("value", "result"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("False", False),
        (" YES ", True),
        ("no", False),
        ("on", True),
        ("off", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
    ],
)
def test_bool_conversion(value, result) -> None:
    assert convert(p("bool"), value) is result


@pytest.mark.parametrize("value", ["maybe", "", 2, 0.5, [], "tru"])
def test_bool_failures(value) -> None:
    with pytest.raises(Invalid, match="true or false"):
        convert(p("bool"), value)


def test_string_conversion() -> None:
    assert convert(p("string"), "a cat") == "a cat"
    assert convert(p("string"), "") == ""
    assert convert(p("string"), 42) == "42"
    for bad in (True, [], {"a": 1}):
        with pytest.raises(Invalid, match="expected a string"):
            convert(p("string"), bad)


def test_model_file_names_are_not_urls() -> None:
    param = p("string", file_name=True)
    assert convert(param, "my_lora.safetensors") == "my_lora.safetensors"
    with pytest.raises(Invalid, match="downloading models"):
        convert(param, "https://civitai.example/lora.safetensors")


def test_enum_conversion() -> None:
    param = p("enum", choices=("euler", "ddim", 2, 0.5))
    assert convert(param, "ddim") == "ddim"
    assert convert(param, " euler ") == "euler"
    assert convert(param, "2") == 2 and convert(param, 2.0) == 2
    assert convert(param, "0.5") == 0.5
    for bad, reason in (
        ("Euler", "not one of"),
        ("3", "not one of"),
        (True, "boolean"),
        ([], "array"),
    ):
        with pytest.raises(Invalid, match=reason):
            convert(param, bad)


def test_image_conversion() -> None:
    param = p("image")
    assert convert(param, b"\x89PNG") == b"\x89PNG"
    assert convert(param, " https://example.com/a.png ") == "https://example.com/a.png"
    assert convert(param, " cat.png ") == "cat.png"
    # alias:name is a mount file; whether that mount may be read is decided on preparing.
    assert convert(param, "C:secret.png") == "C:secret.png"
    for bad, reason in (
        ("", "empty"),
        (b"", "empty"),
        (5, "image reference"),
        ("../../etc/passwd", "without folders"),
        ("/etc/passwd", "without folders"),
        ("..\\secret.png", "without folders"),
        ("photos/cat.png", "without folders"),
        ("..", "not '..'"),
        ("cat:", "without ':'"),
        ("cat.png [output]", "annotation"),
        ("cat.png [temp]", "annotation"),
    ):
        with pytest.raises(Invalid, match=reason):
            convert(param, bad)


@pytest.mark.parametrize("kind", ["string", "int", "float", "bool", "enum"])
def test_files_only_for_images(kind) -> None:
    with pytest.raises(Invalid, match="not an image"):
        convert(p(kind, choices=("a",)), b"bytes")


@pytest.mark.parametrize("kind", ["string", "int", "float", "bool", "enum", "image"])
def test_null_is_rejected(kind) -> None:
    with pytest.raises(Invalid, match="null"):
        convert(p(kind, choices=("a",)), None)


def test_expected_texts() -> None:
    assert expected(p("int", minimum=1, maximum=150)) == "integer from 1 to 150"
    assert expected(p("float", minimum=0)) == "number >= 0"
    assert expected(p("float", maximum=1)) == "number <= 1"
    assert expected(p("string")) == "string"
    assert expected(p("bool")) == "bool (true/false)"
    assert expected(p("enum", choices=("a", "b"))) == "one of: a, b"
    assert expected(p("image")).startswith("image:")
