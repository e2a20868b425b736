"""/invoke/{alias}: the API-endpoint trigger."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from cardflow.app import Cardflow
from cardflow.errors import InvalidInput, NotFound, Unauthorized
from cardflow.flows.service import token_matches
from cardflow.flows.trigger import endpoint_trigger
from cardflow.net.headers import FRAMING_HEADERS
from cardflow.net.transport import HOP_HEADER
from cardflow.runs.service import RunError
from cardflow.server.deps import SESSION_COOKIE, CardflowDep
from cardflow.server.schemas import errors

router = APIRouter(tags=["invoke"])

TOKEN_QUERY = "clientToken"
TOKEN_HEADER = "x-api-client-token"


async def _body(request: Request) -> bytearray:
    # The app-wide limit (CARDFLOW_MAX_REQUEST_BYTES) is enforced as the body streams in.
    # Kept as it was gathered: a copy of megabytes would hold the event loop.
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
    return body


def _declared_length(request: Request) -> int:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() and len(value) < 19 else 0


def incoming_hop(request: Request) -> int:
    """How deep this request sits in flows calling cardflow's own URLs (0: from outside)."""
    value = request.headers.get(HOP_HEADER, "")
    return int(value) if value.isdigit() and len(value) < 6 else 0


class InvokeFinished(BaseModel):
    """The flow ended, without a Return or Close card to answer."""

    run_id: str
    status: Literal["succeeded"]


class InvokeAccepted(BaseModel):
    """The flow goes on (Prefer: respond-async, or the endpoint timeout passed)."""

    run_id: str


class InvokeFailed(BaseModel):
    """The flow failed, without a Return or Close card to answer."""

    run_id: str
    error: RunError


_ANY: dict[str, Any] = {"*/*": {"schema": {}}}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "model": InvokeFinished,
        "description": "The flow ended; a Return, Return Raw or Close card answers with its own "
        "status, headers and body instead.",
        "content": _ANY,
    },
    202: {"model": InvokeAccepted, "description": "The flow goes on: see GET /api/v1/runs/{id}."},
    500: {"model": InvokeFailed, "description": "The flow failed."},
    **errors(401, 404, 413, 422, 503, 508),
    "default": {"description": "What a Return or Return Raw card answers.", "content": _ANY},
}
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "Any body: trigger.body (parsed when JSON) and trigger.raw.",
        "content": _ANY,
    }
}


@router.post("/invoke/{alias}", operation_id="invoke_post", responses=_ANSWERS, openapi_extra=_BODY)
@router.get("/invoke/{alias}", operation_id="invoke_get", responses=_ANSWERS)
async def invoke(alias: str, request: Request, cf: CardflowDep) -> Response:
    """Run the flow whose API-endpoint trigger has this alias, and answer as it says."""
    return await handle_invoke(cf, alias, request)


async def invoke_endpoint(request: Request) -> Response:
    """The same, as a plain Starlette endpoint: the app mounts it ahead of the FastAPI
    routes so the hot path skips dependency resolution (the route above documents it)."""
    return await handle_invoke(request.app.state.cardflow, request.path_params["alias"], request)


async def handle_invoke(cf: Cardflow, alias: str, request: Request) -> Response:
    flow = cf.flows.by_alias_cached(alias) or await asyncio.to_thread(cf.flows.by_alias, alias)
    if flow is None:
        raise NotFound(f"No enabled flow answers at /invoke/{alias}.", field="alias")
    query = dict(request.query_params)
    headers = trigger_headers(request)
    trigger_conf = flow.document.trigger
    from_query, from_header = query.pop(TOKEN_QUERY, None), headers.pop(TOKEN_HEADER, None)
    if trigger_conf.security == "client_token":
        if from_query is not None and from_header is not None:
            raise InvalidInput(
                f"Send the client token once: the {TOKEN_QUERY} query parameter or the "
                f"{TOKEN_HEADER} header, not both.",
                field=TOKEN_QUERY,
            )
        if not token_matches(flow.client_token, from_query or from_header):
            raise Unauthorized(
                f"This flow needs its client token ({TOKEN_QUERY} query parameter or "
                f"{TOKEN_HEADER} header)."
            )
    hop = incoming_hop(request)
    headers.pop(HOP_HEADER.lower(), None)
    # Refused before the body is read when the run could not even wait its turn (the
    # requests still reading theirs counted); the run's place is decided once it is in.
    admission = cf.engine.admission()
    hold = admission.hold(flow.id, _declared_length(request), nested=hop > 0)
    try:
        raw = await _body(request)
        trigger = await endpoint_trigger(
            request.method,
            request.url.path,
            query,
            headers,
            raw,
            max_depth=cf.settings.max_nesting_depth,
        )
    finally:
        admission.release_hold(hold)
    prefer_async = "respond-async" in request.headers.get("prefer", "").lower()
    if prefer_async and cf.engine.queue is not None:
        # Nobody waits: the run goes to the queue, and any worker executes it.
        run_id = await cf.engine.enqueue(
            flow, trigger, trigger_type="api_endpoint", waiting_caller=False, hop=hop
        )
        return json_response(202, {"run_id": run_id})
    # The caller of respond-async has its answer (202) now: Close / Return answer no one.
    handle = await cf.engine.start(
        flow,
        trigger,
        trigger_type="api_endpoint",
        answer_caller=not prefer_async,
        hop=hop,
        size=len(raw),
    )
    if prefer_async:
        await cf.run_writer.flush_async()  # the run is on record before it is promised
        return json_response(202, {"run_id": handle.run_id})
    assert handle.response is not None
    try:
        value = await asyncio.wait_for(
            asyncio.shield(handle.response), timeout=cf.settings.endpoint_timeout
        )
    except TimeoutError:
        return json_response(202, {"run_id": handle.run_id})
    answer = await cf.engine.response_for(handle, value)
    return Response(
        answer.body, status_code=answer.status_code, headers=answer_headers(answer.headers)
    )


# A flow's answer comes from cardflow's origin, where the web app lives: whatever it says,
# it must not run script there (sandbox: no script, an opaque origin) nor set cookies.
ANSWER_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
}
_DROPPED_ANSWER_HEADERS = FRAMING_HEADERS | {
    "set-cookie",
    "content-security-policy",
    "x-content-type-options",
}


def answer_headers(headers: dict[str, str]) -> dict[str, str]:
    kept = {k: _latin1(v) for k, v in headers.items() if k.lower() not in _DROPPED_ANSWER_HEADERS}
    return {**kept, **ANSWER_HEADERS}


def _latin1(value: str) -> str:
    """A header value as the server will write it (latin-1): other text goes out as UTF-8."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("latin-1")
    return value


def trigger_headers(request: Request) -> dict[str, str]:
    """The caller's headers for trigger.headers, without the web app's session cookie
    (an admin's browser opening an invoke URL must not hand its session to the flow)."""
    headers = dict(request.headers)
    if SESSION_COOKIE in request.cookies:
        others = [
            part
            for part in headers.get("cookie", "").split(";")
            if part.strip() and part.split("=", 1)[0].strip() != SESSION_COOKIE
        ]
        if others:
            headers["cookie"] = ";".join(others).strip()
        else:
            headers.pop("cookie", None)
    return headers


def json_response(status: int, data: dict[str, str]) -> Response:
    return Response(
        json.dumps(data), status_code=status, media_type="application/json", headers=ANSWER_HEADERS
    )
