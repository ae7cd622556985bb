"""`Content-Disposition` headers, built one way for every download route (RFC 6266)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

# Characters RFC 5987 lets stand unencoded in `filename*` (attr-char).
_ATTR_CHARS = "!#$&+-.^_`|~"


def content_disposition(kind: Literal["inline", "attachment"], filename: str) -> str:
    """`kind; filename="<ASCII fallback>"`, plus `filename*` when the name is not plain ASCII.

    The fallback replaces anything outside printable ASCII, and the quote and
    backslash that would end or escape the quoted string, with `_`: a name
    with quotes can never add parameters of its own (`"; filename=evil.html`).
    """
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "_" for ch in filename)
    header = f'{kind}; filename="{fallback}"'
    if fallback != filename:
        header += "; filename*=UTF-8''" + quote(filename, safe=_ATTR_CHARS)
    return header
