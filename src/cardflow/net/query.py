"""Query parameters a connection's auth puts in URLs (an API key sent as ``?api_key=…``).

Each is set exactly once — the connection's value replaces any parameter of that name the
URL or the card's ``query`` already had — and, like the headers an auth adds, it stays on
its origin: a redirect to the same origin gets it again, a redirect to another origin never
carries it (see :func:`cardflow.net.transport.HttpTransport.send`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from functools import lru_cache
from urllib.parse import unquote_plus

from yarl import URL

# RFC 3986 unreserved characters only: the name reads the same in a URL, encoded or not.
_NAME = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_BASE = URL("http://h/")


def check_param_name(name: str) -> str:
    """A query parameter name as a connection may send it, or ValueError saying why not."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a usable query parameter name: use 1 to 128 letters, digits "
            "and - . _ ~ (e.g. api_key)"
        )
    return name


@lru_cache(maxsize=256)
def encoded_pair(name: str, value: str) -> str:
    """``name=value`` as yarl writes a query parameter: the form cardflow's redaction
    knows (:func:`cardflow.redaction.secret_forms`)."""
    return _BASE.with_query({name: value}).raw_query_string


def set_query_params(url: URL, params: Mapping[str, str]) -> URL:
    """``url`` with each of ``params`` once, with its value; parameters of other names are
    kept as they were written."""
    pairs = _without(url.raw_query_string, params.keys())
    pairs.extend(encoded_pair(name, value) for name, value in params.items())
    return _with_raw_query(url, "&".join(pairs))


def drop_query_params(url: URL, names: Collection[str]) -> URL:
    """``url`` without any parameter named in ``names``."""
    raw = url.raw_query_string
    pairs = _without(raw, names)
    joined = "&".join(pairs)
    return url if joined == raw else _with_raw_query(url, joined)


def _without(raw: str, names: Collection[str]) -> list[str]:
    if not raw:
        return []
    return [
        pair
        for pair in raw.split("&")
        if pair and unquote_plus(pair.partition("=")[0]) not in names
    ]


def _with_raw_query(url: URL, raw: str) -> URL:
    return URL.build(
        scheme=url.scheme,
        authority=url.raw_authority,
        path=url.raw_path,
        query_string=raw,
        fragment=url.raw_fragment,
        encoded=True,
    )
