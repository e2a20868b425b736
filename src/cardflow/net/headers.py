"""Header names and values (RFC 9110 §5.1, §5.5), methods (§9.1), and the headers a flow
may not answer with."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator

# A token (RFC 9110 §5.6.2): what header names and methods are made of.
# RFC 9110 token; used with fullmatch ("$" alone would let a trailing newline through).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# field-value = *( VCHAR / obs-text / SP / HTAB ): every control character but HTAB is out.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# Hop-by-hop (RFC 9110 §7.6.1) and framing headers: the server that sends the answer
# decides these, never a flow (a flow relaying an upstream's headers would otherwise send
# Transfer-Encoding and Content-Length together, the shape of request smuggling).
FRAMING_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "host",
    }
)


def check_header_name(name: str) -> str:
    if not _TOKEN.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid header name: use letters, digits and !#$%&'*+-.^_`|~ "
            "(no spaces, colons, CR or LF)"
        )
    return name


def check_header_value(value: str) -> str:
    match = _BAD_VALUE.search(value)
    if match is not None:
        raise ValueError(
            f"a header value must not contain control characters (found {match.group()!r} "
            f"at position {match.start()}); only tab is allowed"
        )
    return value


def check_method(value: str) -> str:
    """An HTTP method (any token: PROPFIND as well as GET), upper-cased."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{value!r} is not an HTTP method")
    return value.upper()


# Header names and values as card inputs take them.
HeaderName = Annotated[str, AfterValidator(check_header_name)]
HeaderValue = Annotated[str, AfterValidator(check_header_value)]


def answer_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers a flow asked to answer with, without hop-by-hop and framing headers."""
    return {k: v for k, v in headers.items() if k.lower() not in FRAMING_HEADERS}
