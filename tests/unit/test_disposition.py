"""Content-Disposition: one parameter that cannot be broken out of, the real name beside it."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from comfysync.disposition import content_disposition

# RFC 6266 as we emit it: the type, a quoted ASCII filename, an optional filename*.
_STRICT = re.compile(
    r"(inline|attachment); filename=\"([\x20\x21\x23-\x5b\x5d-\x7e]*)\""
    r"(?:; filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]+))?"
)


def parse(header: str) -> tuple[str, str, str | None]:
    found = _STRICT.fullmatch(header)
    assert found, header
    return found[1], found[2], unquote(found[3]) if found[3] else None


@pytest.mark.parametrize(
    "name",
    [
        "cat.png",
        'evil"; filename=evil.html',
        "back\\slash.png",
        "zürich 東京.png",
        "line\r\nbreak.png",
        "",
    ],
)
@pytest.mark.parametrize("kind", ["inline", "attachment"])
def test_every_name_parses_back_strictly(kind: str, name: str) -> None:
    parsed_kind, fallback, full = parse(content_disposition(kind, name))  # type: ignore[arg-type]
    assert parsed_kind == kind
    assert (full if full is not None else fallback) == name


def test_a_plain_name_needs_no_filename_star() -> None:
    assert content_disposition("attachment", "x_1.png") == 'attachment; filename="x_1.png"'
