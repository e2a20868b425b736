"""What the REST API answers besides its resources' views: errors and /healthz.

(Each resource's view lives with its service — ``ConnectionView``, ``FlowView``,
``RunView`` — and the routers declare them, so /openapi.json names a schema for every
body.)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from cardflow.views import ErrorDetail, View, omitted_when_none


class ConnectionUse(View):
    """A card naming a connection, and where it sits."""

    id: str = Field(description="The card's id.")
    field: str = Field(examples=["cards.1.connection"], description="Its connection field.")


class MissingConnection(View):
    """A connection a flow's cards name that does not exist here, and the cards naming it."""

    name: str = Field(description="The connection as the flow names it.")
    cards: list[ConnectionUse]


class Problem(View):
    """One of several problems found at once."""

    message: str
    field: str | None = Field(default=None, exclude_if=omitted_when_none)


class ApiErrorDetail(ErrorDetail):
    """What went wrong (see ErrorDetail), and the details some errors of the API add."""

    errors: list[Problem] | None = Field(
        default=None,
        exclude_if=omitted_when_none,
        description="When a check found several problems at once (a flow's cards on save or "
        "import): every one of them, in order, the first being message and field; absent "
        "when there is one.",
    )

    missing_connections: list[MissingConnection] | None = Field(
        default=None,
        exclude_if=omitted_when_none,
        description="A flow whose cards name connections that do not exist here (saved or "
        "imported): every one of them, with the cards naming it; absent otherwise. Import "
        'maps each to an existing connection with "connections": {name: connection}.',
    )


class ErrorResponse(BaseModel):
    """Every error the API answers: ``{"error": {"type", "message", "field"}}``."""

    error: ApiErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


_WHEN = {
    400: "The request body cannot be read (not JSON, or nested too deep).",
    401: "No valid API token ('Authorization: Bearer <token>') or web session.",
    403: "The caller's role is below the route's x-min-role (error.type forbidden), a web "
    "request lacks its CSRF token, or a connection is not shared with the caller.",
    404: "There is no such thing (error.field names the reference).",
    409: "It conflicts with what is stored (a name taken, a connection in use).",
    413: "The request body is larger than CARDFLOW_MAX_REQUEST_BYTES.",
    422: "A field is wrong: error.field names it.",
    503: "Too many runs are waiting: try again after Retry-After seconds.",
    508: "Flows calling cardflow's own URLs nest too deep.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for these error statuses, each with the error shape."""
    return {status: {"model": ErrorResponse, "description": _WHEN[status]} for status in statuses}
