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
from urllib.parse import urlencode

from cardflow.cards.curl.card import JSON_METHODS
from cardflow.errors import InvalidInput

_TOKEN_TYPES = ("oauth", "client_credentials")


def card_to_curl(
    card_id: str,
    inputs: Mapping[str, Any],
    *,
    auth_type: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> str:
    """The curl command making this card's request (``{{ }}`` expressions left as typed)."""
    family, _, name = card_id.partition(".")
    if family != "api_connector" or name == "close":
        raise InvalidInput(
            "Copy as cURL is for the API Connector request cards (Get, Post, Put, Patch, "
            "Delete, Raw Request).",
            field="card",
        )
    method = str(inputs.get("method") or "GET") if name == "raw_request" else name.upper()
    url = str(inputs.get("url") or "")
    query = _query(inputs.get("query") or {})
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


def _query(query: Mapping[str, Any]) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            pairs.append((key, text))
    return urlencode(pairs)


def _auth(auth_type: str | None, config: Mapping[str, Any]) -> list[list[str]]:
    if auth_type == "basic":
        return [["-u", f"{config.get('username') or '<username>'}:<password>"]]
    if auth_type == "digest":
        return [["--digest", "-u", f"{config.get('username') or '<username>'}:<password>"]]
    if auth_type == "custom":
        return [["-H", f"{config.get('header_name') or 'Authorization'}: <header_value>"]]
    if auth_type in _TOKEN_TYPES or auth_type == "bearer":
        return [["-H", "Authorization: Bearer <access_token>"]]
    if auth_type in (None, "none"):
        return []
    return [["-H", f"Authorization: <{auth_type} credentials>"]]
