"""URL checks shared by connection configs and cards."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import unquote

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


MAX_BASE_URL_CHARS = 2048


def check_base_url(value: str) -> str:
    """A connection's ``base_url``: an absolute http(s) URL without user info, query or
    fragment (relative card URLs are appended to its path). Returned without a trailing /."""
    if len(value) > MAX_BASE_URL_CHARS:
        raise ValueError(f"longer than {MAX_BASE_URL_CHARS} characters")
    url = parse_http_url(value)
    if url.raw_user is not None or url.raw_password is not None:
        raise ValueError("must not contain a user name or password (those are secrets)")
    if url.raw_query_string or url.raw_fragment or "?" in value or "#" in value:
        raise ValueError("must not have a query or a fragment")
    return value.strip().rstrip("/")


def is_relative_url(value: str) -> bool:
    """``url`` is a path (with maybe a query) to resolve against a connection's base_url:
    anything that does not start with a scheme. Whether it is a safe one is
    :func:`check_relative_url`'s business."""
    if value.startswith(("https://", "http://")):  # nearly every card URL: no more work
        return False
    head = value.strip().split("/", 1)[0].split("?", 1)[0]
    return ":" not in head and not value.strip().startswith(("//", "\\\\"))


def check_relative_url(value: str) -> str:
    """A relative card URL that can only name a path under a base_url: no scheme, no
    ``//host``, no backslash, no ``.``/``..`` segment (percent-encoded ones included)."""
    if any(ch in value for ch in "\r\n\x00\\"):
        raise ValueError("a relative URL must not contain CR, LF, NUL or backslashes")
    text = value.strip()
    if text.startswith("//"):
        raise ValueError(
            f"{value!r} names another host (//…); give a path such as /user, or a whole URL"
        )
    if not is_relative_url(text):
        raise ValueError(f"{value!r} is not an absolute http:// or https:// URL nor a path")
    path = text.split("?", 1)[0].split("#", 1)[0]
    for segment in unquote(path).split("/"):
        if segment in (".", ".."):
            raise ValueError(
                f"{value!r}: '.' and '..' segments are not allowed in a relative URL "
                "(it cannot leave the connection's base_url)"
            )
    return text


def resolve_url(url: str, base_url: str | None) -> URL:
    """A card's ``url``: absolute as it is, or a path appended to the connection's base_url
    (``/user`` and ``user`` alike: https://api.example.com/v1 + /user → …/v1/user)."""
    if not is_relative_url(url):
        return parse_http_url(url)
    relative = check_relative_url(url)
    if not base_url:
        raise ValueError(
            f"{url!r} is a relative URL and the card's connection has no base_url: give a "
            "whole https:// URL, or set the connection's base_url"
        )
    base = parse_http_url(base_url)
    resolved = parse_http_url(base_url.rstrip("/") + "/" + relative.lstrip("/"))
    # the checks above make these hold; kept so that no future change can break them unseen
    base_path = base.path.rstrip("/") + "/"
    if resolved.origin() != base.origin() or not (resolved.path + "/").startswith(base_path):
        raise ValueError(f"{url!r} leaves the connection's base_url")
    return resolved
