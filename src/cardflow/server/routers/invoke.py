"""/invoke/{alias}: the API-endpoint trigger."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request, Response

from cardflow.app import Cardflow
from cardflow.errors import InvalidInput, NotFound, Unauthorized
from cardflow.flows.service import token_matches
from cardflow.flows.trigger import endpoint_trigger
from cardflow.server.deps import SESSION_COOKIE, CardflowDep

router = APIRouter(tags=["invoke"])

MAX_BODY = 10 * 1024 * 1024
TOKEN_QUERY = "clientToken"
TOKEN_HEADER = "x-api-client-token"


class PayloadTooLarge(InvalidInput):
    type = "payload_too_large"
    http_status = 413


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge(f"The request body is larger than {MAX_BODY:,} bytes.")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY:
            raise PayloadTooLarge(f"The request body is larger than {MAX_BODY:,} bytes.")
    return bytes(chunks)


@router.post("/invoke/{alias}", operation_id="invoke_post")
@router.get("/invoke/{alias}", operation_id="invoke_get")
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
    trigger = endpoint_trigger(
        request.method, request.url.path, query, headers, await _body(request)
    )
    prefer_async = "respond-async" in request.headers.get("prefer", "").lower()
    handle = cf.engine.start(flow, trigger, trigger_type="api_endpoint", answer_caller=True)
    assert handle.response is not None
    if prefer_async:
        return json_response(202, {"run_id": handle.run_id})
    try:
        answer = await asyncio.wait_for(
            asyncio.shield(handle.response), timeout=cf.settings.endpoint_timeout
        )
    except TimeoutError:
        return json_response(202, {"run_id": handle.run_id})
    return Response(
        answer.body, status_code=answer.status_code, headers=answer_headers(answer.headers)
    )


# A flow's answer comes from cardflow's origin, where the web app lives: whatever it says,
# it must not run script there (sandbox: no script, an opaque origin) nor set cookies.
ANSWER_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
}
_DROPPED_ANSWER_HEADERS = frozenset(
    {"set-cookie", "content-security-policy", "x-content-type-options", "content-length"}
)


def answer_headers(headers: dict[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in headers.items() if k.lower() not in _DROPPED_ANSWER_HEADERS}
    return {**kept, **ANSWER_HEADERS}


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
