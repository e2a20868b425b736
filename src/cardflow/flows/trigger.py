"""Trigger outputs: what ``trigger.*`` holds in a run's expressions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def parse_body(raw: bytes, content_type: str) -> tuple[Any, str]:
    """(body, raw text): JSON when it parses as JSON, else the text."""
    text = raw.decode("utf-8", errors="replace")
    if not text:
        return None, ""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json") or text.lstrip()[:1] in "{[":
        try:
            return json.loads(text), text
        except ValueError:
            pass
    return text, text


def endpoint_trigger(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    raw: bytes,
) -> dict[str, Any]:
    lower = {name.lower(): value for name, value in headers.items()}
    body, text = parse_body(raw, lower.get("content-type", ""))
    return {
        "method": method,
        "path": path,
        "query": dict(query),
        "headers": lower,
        "body": body,
        "raw": text,
    }


def manual_trigger(inputs: dict[str, Any] | None) -> dict[str, Any]:
    """A manual run looks like an API call whose body is the given inputs."""
    body = inputs or {}
    return {
        "method": None,
        "path": None,
        "query": {},
        "headers": {},
        "body": body,
        "raw": json.dumps(body),
        "inputs": body,
    }
