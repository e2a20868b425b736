"""Trigger outputs: what ``trigger.*`` holds in a run's expressions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from cardflow import jsondata
from cardflow.errors import InvalidBody
from cardflow.jsondata import TooDeep


async def parse_body(
    raw: bytes | bytearray, content_type: str, *, max_depth: int
) -> tuple[Any, str]:
    """(body, raw text): JSON when it parses as JSON, else the text. A body sent as JSON
    (``application/json``, ``…+json``) that is not JSON, or JSON that nests too deeply, is
    refused (InvalidBody), never taken as text: its fields would all read as null. A large
    body is decoded and parsed in a worker thread, one at a time (jsondata.off_loop)."""
    if len(raw) <= jsondata.LARGE:
        return _parse_body(raw, content_type, max_depth, yielding=False)
    return await jsondata.off_loop(_parse_body, raw, content_type, max_depth, yielding=True)


def _parse_body(
    raw: bytes | bytearray, content_type: str, max_depth: int, *, yielding: bool
) -> tuple[Any, str]:
    text = raw.decode("utf-8", errors="replace")
    if not text:
        return None, ""
    mime = content_type.split(";", 1)[0].strip().lower()
    declared = mime == "application/json" or mime.endswith("+json")
    if declared or text.lstrip()[:1] in "{[":
        try:
            return jsondata.loads(text, max_depth=max_depth, yielding=yielding), text
        except TooDeep:
            raise InvalidBody(
                f"The request body nests deeper than {max_depth} levels "
                "(CARDFLOW_MAX_NESTING_DEPTH).",
                field="body",
            ) from None
        except ValueError as exc:
            if declared:
                raise InvalidBody(
                    f"The request body is sent as {mime} but is not valid JSON "
                    f"({jsondata.parse_problem(exc)}); fix the JSON, or send it with another "
                    "Content-Type to pass it on as text.",
                    field="body",
                ) from None
    return text, text


async def endpoint_trigger(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    raw: bytes | bytearray,
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


def form_fields(trigger: Mapping[str, Any]) -> dict[str, list[str]]:
    """The fields of a form-encoded trigger body (kept as text in ``body``), so that those
    named like secrets are redacted as JSON fields are."""
    headers = trigger.get("headers") or {}
    mime = str(headers.get("content-type", "")).split(";", 1)[0].strip().lower()
    raw = trigger.get("raw")
    if mime != "application/x-www-form-urlencoded" or not isinstance(raw, str):
        return {}
    fields: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        fields.setdefault(name, []).append(value)
    return fields


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
