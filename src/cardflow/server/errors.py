"""Every error leaves the API as {"error": {"type", "message", "field"}} with a 4xx (or 5xx)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cardflow.errors import Busy, CardFailed, CardflowError
from cardflow.validation import field_path

log = logging.getLogger("cardflow.server")


def error_response(
    status: int,
    type_: str,
    message: str,
    field: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": body}, status_code=status, headers=headers or None)


def payload_too_large(scope: Scope) -> JSONResponse:
    """413 naming the limit this route applied: the app's, or the web forms' own."""
    limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    size = f" of {limit:,} bytes" if isinstance(limit, int) else ""
    cardflow = getattr(getattr(scope.get("app"), "state", None), "cardflow", None)
    app_limit = cardflow.settings.max_request_bytes if cardflow is not None else None
    which = "CARDFLOW_MAX_REQUEST_BYTES" if limit == app_limit else "the web forms' limit"
    return error_response(
        413,
        "payload_too_large",
        f"The request body is larger than the limit{size} ({which}); it was not read further.",
    )


class ShapedTooLarge:
    """Starlette's body limiter answers a declared Content-Length over the limit with its
    own plain-text 413 ("Content Too Large"), whatever the app answered: send the error
    shape instead. Wraps the whole app, outside that limiter."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def shaped(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the limiter's plain-text body: the shaped one went instead
            if message["type"] == "http.response.start" and _from_limiter(message):
                replaced = True
                response = payload_too_large(scope)
                await send(
                    {"type": "http.response.start", "status": 413, "headers": response.raw_headers}
                )
                await send({"type": "http.response.body", "body": response.body})
                return
            await send(message)

        await self.app(scope, receive, shaped)


def _from_limiter(message: Message) -> bool:
    """A 413 with only Content-Length and a text/plain Content-Type: the limiter's (flow
    answers always carry more headers, cardflow's own errors are JSON)."""
    headers = dict(message.get("headers", []))
    return (
        message["status"] == 413
        and set(headers) == {b"content-length", b"content-type"}
        and headers[b"content-type"].startswith(b"text/plain")
    )


def _validation_field(loc: tuple[Any, ...]) -> str | None:
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    return field_path("", loc) or None


def install(app: FastAPI) -> None:
    @app.exception_handler(CardflowError)
    async def _cardflow(_request: Request, exc: CardflowError) -> JSONResponse:
        # A card that failed outside a run (an OAuth exchange, say) is a bad gateway.
        status = 502 if isinstance(exc, CardFailed) else exc.http_status
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
        data = exc.to_dict()
        return error_response(
            status, data.pop("type"), data.pop("message"), headers=headers, **data
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = _validation_field(tuple(first.get("loc", ())))
        kind = first.get("type", "")
        if kind == "json_invalid":
            message, field = "The request body is not valid JSON.", None
        elif kind == "missing":
            message = f"{field}: this field is required" if field else "a field is required"
        elif kind == "extra_forbidden":
            message = f"{field}: unknown field"
        else:
            text = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
            message = f"{field}: {text}" if field else text
        return error_response(422, "invalid_input", message, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413:
            return payload_too_large(request.scope)
        kinds = {
            400: "invalid_body",
            401: "unauthorized",
            404: "not_found",
            405: "method_not_allowed",
        }
        return error_response(
            exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail)
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        incident = secrets.token_hex(4)
        log.error("unexpected error (incident %s): %s", incident, type(exc).__name__, exc_info=exc)
        return error_response(
            500,
            "internal_error",
            f"cardflow hit an unexpected error (incident {incident}); the server log has details.",
        )
