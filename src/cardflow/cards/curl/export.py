"""Copy as cURL: an API Connector card (and its connection) → a curl command, its secrets
replaced by placeholders (``<password>``, ``<header_value>``, ``<access_token>``).

The connection comes as users see it (auth type and config, secrets only as ``{"set": …}``),
so no secret can reach the command. Pasted back into cURL import, the command gives the same
card, and the placeholders come back as the connection's fields to fill in.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from cardflow.cards.curl.card import JSON_METHODS
from cardflow.errors import InvalidInput
from cardflow.net.urls import is_relative_url, resolve_url

_TOKEN_TYPES = ("oauth", "client_credentials")


def card_to_curl(
    card_id: str,
    inputs: Mapping[str, Any],
    *,
    auth_type: str | None = None,
    config: Mapping[str, Any] | None = None,
    base_url: str | None = None,
) -> str:
    """The curl command making this card's request (``{{ }}`` expressions left as typed;
    a relative URL put under the connection's ``base_url``)."""
    if not copies_as_curl(card_id):
        raise InvalidInput(
            "Copy as cURL is for the API Connector request cards (Get, Post, Put, Patch, "
            "Delete, Raw Request).",
            field="card",
        )
    name = card_id.partition(".")[2]
    method = str(inputs.get("method") or "GET") if name == "raw_request" else name.upper()
    url = str(inputs.get("url") or "")
    if base_url and url and is_relative_url(url):
        if "{{" in url:  # resolved at run time; shown as the card's path under base_url
            url = base_url.rstrip("/") + "/" + url.lstrip("/")
        else:
            try:
                url = str(resolve_url(url, base_url))
            except ValueError as exc:
                raise InvalidInput(f"inputs.url: {exc}.", field="inputs.url") from None
    query = _query(inputs.get("query") or {}, _query_key(auth_type, config or {}))
    if query:
        url = f"{url}{'&' if '?' in url else '?'}{query}"
    body = inputs.get("body")
    # curl sends data as a POST unless told otherwise: a GET with a body says -X GET
    explicit = method != "GET" or body is not None
    lines = [["curl"] + (["-X", method] if explicit else []) + [url]]
    headers: dict[str, Any] = dict(inputs.get("headers") or {})
    lines += [["-H", f"{key}: {value}"] for key, value in headers.items()]
    lines += _auth(auth_type, config or {})
    if body is not None:
        if isinstance(body, str):
            text = body
        else:
            text = json.dumps(body, ensure_ascii=False)
            if method in JSON_METHODS and not any(k.lower() == "content-type" for k in headers):
                lines.append(["-H", "Content-Type: application/json"])
        lines.append(["--data-raw", text])
    return " \\\n  ".join(" ".join(shlex.quote(word) for word in line) for line in lines)


def copies_as_curl(card_id: str) -> bool:
    """The cards Copy as cURL is for: the API Connector cards that send a request."""
    family, _, name = card_id.partition(".")
    return family == "api_connector" and name != "close"


def _query_key(auth_type: str | None, config: Mapping[str, Any]) -> str | None:
    """The name of a ``query`` connection's parameter."""
    name = config.get("param_name")
    return str(name) if auth_type == "query" and name else None


def _query(query: Mapping[str, Any], key: str | None) -> str:
    """The query string; a ``query`` connection's parameter ``key`` last, its value the
    placeholder ``<param_value>`` (left unencoded so cURL import knows it), in place of a
    same-name parameter, as the connection's key replaces it on the wire."""
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            pairs.append((name, text))
    text = urlencode([pair for pair in pairs if pair[0] != key])
    if key is None:
        return text
    return f"{text}{'&' if text else ''}{quote(key, safe='')}=<param_value>"


def _auth(auth_type: str | None, config: Mapping[str, Any]) -> list[list[str]]:
    if auth_type == "basic":
        return [["-u", f"{config.get('username') or '<username>'}:<password>"]]
    if auth_type == "digest":
        return [["--digest", "-u", f"{config.get('username') or '<username>'}:<password>"]]
    if auth_type == "custom":
        return [["-H", f"{config.get('header_name') or 'Authorization'}: <header_value>"]]
    if auth_type in _TOKEN_TYPES or auth_type == "bearer":
        return [["-H", "Authorization: Bearer <access_token>"]]
    if auth_type == "digest":
        return [["--digest", "-u", f"{config.get('username') or '<username>'}:<password>"]]
    if auth_type in (None, "none", "query"):  # a query key is in the URL
        return []
    return [["-H", f"Authorization: <{auth_type} credentials>"]]
