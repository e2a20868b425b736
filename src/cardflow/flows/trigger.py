"""Trigger outputs: what ``trigger.*`` holds in a run's expressions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cardflow import jsondata
from cardflow.errors import InvalidBody
from cardflow.jsondata import TooDeep


async def parse_body(raw: bytes, content_type: str, *, max_depth: int) -> tuple[Any, str]:
    """(body, raw text): JSON when it parses as JSON, else the text. JSON that nests too
    deeply is refused (InvalidBody), never taken as text."""
    text = raw.decode("utf-8", errors="replace")
    if not text:
        return None, ""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json") or text.lstrip()[:1] in "{[":
        try:
            return await jsondata.loads_async(text, max_depth=max_depth), text
        except TooDeep:
            raise InvalidBody(
                f"The request body nests deeper than {max_depth} levels "
                "(CARDFLOW_MAX_NESTING_DEPTH).",
                field="body",
            ) from None
        except ValueError:
            pass
    return text, text


async def endpoint_trigger(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    raw: bytes,
    *,
    max_depth: int = jsondata.DEFAULT_MAX_DEPTH,
) -> dict[str, Any]:
    lower = {name.lower(): value for name, value in headers.items()}
    body, text = await parse_body(raw, lower.get("content-type", ""), max_depth=max_depth)
    return {
        "method": method,
        "path": path,
        "query": {jsondata.clean_text(k): jsondata.clean_text(v) for k, v in query.items()},
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
        "raw": json.dumps(body, ensure_ascii=False),
        "inputs": body,
    }
