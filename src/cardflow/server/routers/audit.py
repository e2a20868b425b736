"""/api/v1/audit: the audit log, listed newest first or exported as JSON lines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from cardflow.audit.log import MAX_LIMIT, AuditEventView, AuditFilter
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import AdminDep, CardflowDep
from cardflow.server.schemas import errors

router = APIRouter(
    prefix="/api/v1/audit", tags=["audit"], route_class=JsonRoute, responses=errors(401, 403, 422)
)

ActionQuery = Annotated[
    str | None,
    Query(
        max_length=64,
        description="An action (connection.updated) or its first part (connection).",
    ),
]
TargetQuery = Annotated[str | None, Query(max_length=200, description="The target's id or name.")]
ActorQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        description="The actor's id or name (an API token's), or its kind (api_token, "
        "web_session, cli, library, anonymous).",
    ),
]
SinceQuery = Annotated[datetime | None, Query(description="At or after (ISO 8601).")]
UntilQuery = Annotated[datetime | None, Query(description="Before (ISO 8601).")]


@router.get("")
def list_audit_events(
    cf: CardflowDep,
    _caller: AdminDep,
    action: ActionQuery = None,
    target: TargetQuery = None,
    actor: ActorQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    before: Annotated[
        int | None,
        Query(ge=1, description="An entry id: the next page, the entries listed after it."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> list[AuditEventView]:
    """Audit log entries, newest first. Page through them with ``before`` set to the last
    id shown."""
    where = AuditFilter(action=action, target=target, actor=actor, since=since, until=until)
    return cf.audit.list(where, before=before, limit=limit)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON lines."}},
)
def export_audit_events(
    cf: CardflowDep,
    _caller: AdminDep,
    action: ActionQuery = None,
    target: TargetQuery = None,
    actor: ActorQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> StreamingResponse:
    """Every entry (filtered as the list is), oldest first, one JSON object a line:
    streamed, read from the database a page at a time."""
    where = AuditFilter(action=action, target=target, actor=actor, since=since, until=until)

    def lines() -> Iterator[bytes]:
        for event in cf.audit.export(where):
            yield event.model_dump_json().encode() + b"\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )
