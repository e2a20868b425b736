"""Header name and value checks (RFC 9110 tokens; no CR, LF or NUL in values)."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def check_header_name(name: str) -> str:
    if not _TOKEN.match(name):
        raise ValueError(
            f"{name!r} is not a valid header name: use letters, digits and !#$%&'*+-.^_`|~ "
            "(no spaces, colons, CR or LF)"
        )
    return name


def check_header_value(value: str) -> str:
    if _BAD_VALUE.search(value):
        raise ValueError("a header value must not contain CR, LF or NUL characters")
    return value
