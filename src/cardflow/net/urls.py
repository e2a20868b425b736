"""URL checks shared by connection configs and cards."""

from __future__ import annotations

import ipaddress
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
    if _legacy_ipv4(url.raw_host or ""):
        raise ValueError(
            f"{url.raw_host!r} is an IPv4 address in a legacy form (short, decimal, octal or "
            "hex); write it as four decimal numbers, e.g. 127.0.0.1"
        )
    return url


def _legacy_ipv4(host: str) -> bool:
    """A host that browsers read as an IPv4 address (its last label is a number) but that
    is not written as one: ``127.1``, ``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``1.2.3.4.``."""
    if ":" in host:
        return False  # IPv6
    labels = host.split(".")
    last = labels[-1] or (labels[-2] if len(labels) > 1 else "")
    if not (last.isdigit() or last.lower().startswith("0x")):
        return False
    try:
        return str(ipaddress.IPv4Address(host)) != host
    except ValueError:
        return True


def check_http_url(value: str) -> str:
    parse_http_url(value)
    return value
