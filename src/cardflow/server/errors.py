"""Every error leaves the API as {"error": {"type", "message", "field"}} with a 4xx (or 5xx)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cardflow.errors import CardflowError
from cardflow.validation import field_path

log = logging.getLogger("cardflow.server")


def error_response(
    status: int, type_: str, message: str, field: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _validation_field(loc: tuple[Any, ...]) -> str | None:
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    return field_path("", loc) or None


def install(app: FastAPI) -> None:
    @app.exception_handler(CardflowError)
    async def _cardflow(_request: Request, exc: CardflowError) -> JSONResponse:
        status = exc.http_status if exc.http_status < 500 else 502
        data = exc.to_dict()
        return error_response(status, data.pop("type"), data.pop("message"), **data)

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
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
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
