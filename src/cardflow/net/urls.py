"""URL checks shared by connection configs and cards."""

from __future__ import annotations

import re
from functools import lru_cache

from yarl import URL

# A DNS name (IDNA-encoded by yarl), an IPv4 address or an IPv6 address (with a zone id).
_HOST = re.compile(r"^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|[0-9A-Fa-f:.]+(?:%[\w.-]+)?)$")


@lru_cache(maxsize=4096)
def parse_http_url(value: str) -> URL:
    """Parse an absolute http(s) URL or raise ValueError saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a URL is required")
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError("the URL must not contain CR, LF or NUL characters")
    try:
        url = URL(value.strip())
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if not url.is_absolute() or url.scheme not in ("http", "https"):
        raise ValueError(f"{value!r} is not an absolute http:// or https:// URL")
    if not url.host:
        raise ValueError(f"{value!r} has no host")
    if not _HOST.match(url.raw_host or ""):
        raise ValueError(f"{url.raw_host!r} is not a valid host name or address")
    return url


def check_http_url(value: str) -> str:
    parse_http_url(value)
    return value
