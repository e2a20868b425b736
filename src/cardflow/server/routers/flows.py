"""/api/v1/flows: flows, their version history, manual runs, client tokens, export."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cardflow.access.roles import Caller, Role
from cardflow.app import Cardflow
from cardflow.errors import InvalidInput
from cardflow.flows.model import FlowDocument, Trigger, dump_document
from cardflow.flows.service import FlowTestData, FlowView
from cardflow.flows.versions import (
    MAX_NOTE_CHARS,
    FlowVersionDiff,
    FlowVersionSummary,
    FlowVersionView,
)
from cardflow.runs.service import RunView
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import BuilderDep, CardflowDep, ViewerDep
from cardflow.server.routers.invoke import incoming_hop
from cardflow.server.schemas import ErrorResponse, errors

router = APIRouter(
    prefix="/api/v1/flows", tags=["flows"], route_class=JsonRoute, responses=errors(401, 403, 422)
)


def _seen_by(view: FlowView, caller: Caller) -> FlowView:
    """A viewer reads a flow, not the client token that would let them run it."""
    if caller.may(Role.builder) or view.client_token is None:
        return view
    return view.model_copy(update={"client_token": None})


def _check_connections(cf: Cardflow, document: FlowDocument, caller: Caller) -> None:
    """A builder saves only flows whose cards use connections shared with them."""
    refs = [at.step.connection for at in document.walk() if at.step.connection]
    cf.connections.check_usable(refs, caller)


def check_may_run(cf: Cardflow, ref: str, caller: Caller) -> None:
    """A builder runs (or retries a run of) a flow only when every connection its cards
    use is shared with them, as when saving it."""
    if not caller.may(Role.admin):
        _check_connections(cf, cf.flows.get(ref).document, caller)


_NOTE_HELP = (
    f"What this save is for (at most {MAX_NOTE_CHARS} characters), kept with the version it makes."
)
NoteQuery = Annotated[str | None, Query(max_length=MAX_NOTE_CHARS, description=_NOTE_HELP)]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict, description="Becomes trigger.body.")


class FlowImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(description="The flow file's text, YAML or JSON.")
    filename: str | None = Field(default=None, description="Its name (.json reads as JSON).")
    replace: bool = Field(default=False, description="Replace the flow of the same name.")
    as_copy: bool = Field(
        default=False,
        description='Create it beside a flow of the same name: "Name (copy)", and a free '
        'alias ("alias-copy") if its alias is taken.',
    )
    connections: dict[str, str] = Field(
        default_factory=dict,
        description="Connections as the file names them -> an existing connection's name or "
        "id: every card naming one (nested cards too) names the existing connection "
        "instead, before the flow is checked. A file naming connections that do not exist "
        "is refused with error.missing_connections listing each, with the cards using it.",
        examples=[{"JIRA - OAuth - service_account": "JIRA - OAuth - bot"}],
    )
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS, description=_NOTE_HELP)


class FlowPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS, description=_NOTE_HELP)


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(
        default=None,
        max_length=MAX_NOTE_CHARS,
        description='Kept with the new version (default "Restored from version N").',
    )


_IMPORT_REFUSED: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ErrorResponse,
        "description": "A field is wrong: error.field names it. A flow file naming "
        "connections that do not exist adds error.missing_connections: each one's name and "
        "the cards using it ([{name, cards: [{id, field}]}]), for a client to map each to an "
        'existing connection and import again with "connections". A mapping to a '
        "connection that does not exist names the field connections.<name>.",
    }
}


@router.post(
    "/import", status_code=status.HTTP_201_CREATED, responses={**errors(409), **_IMPORT_REFUSED}
)
def import_flow(body: FlowImport, cf: CardflowDep, caller: BuilderDep) -> FlowView:
    """Create a flow from the text of a YAML or JSON flow file (the web app's Import), its
    connections mapped to existing ones with ``connections``."""
    document = cf.flows.parse(body.content, filename=body.filename or "")
    if body.replace and body.as_copy:
        raise InvalidInput("Choose replace or as_copy, not both.", field="as_copy")
    _check_connections(cf, document.with_connections(body.connections), caller)
    return cf.flows.import_document(
        document,
        replace=body.replace,
        as_copy=body.as_copy,
        connections=body.connections,
        note=body.note,
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409))
def create_flow(
    document: FlowDocument, cf: CardflowDep, caller: BuilderDep, note: NoteQuery = None
) -> FlowView:
    """Save a flow; the answer has its id, invoke_url and (client_token security) client_token.
    Its document is its version 1."""
    _check_connections(cf, document, caller)
    return cf.flows.create(document, note=note)


@router.get("")
def list_flows(cf: CardflowDep, caller: ViewerDep) -> list[FlowView]:
    return [_seen_by(view, caller) for view in cf.flows.list()]


@router.get("/{ref}", responses=errors(404))
def get_flow(ref: str, cf: CardflowDep, caller: ViewerDep) -> FlowView:
    return _seen_by(cf.flows.get(ref), caller)


class SchedulePreviewRequest(BaseModel):
    trigger: Trigger


class SchedulePreview(BaseModel):
    """When a schedule trigger fires next (UTC)."""

    next: list[datetime]


@router.post("/schedule-preview", responses=errors(422))
def schedule_preview(
    body: SchedulePreviewRequest, _caller: ViewerDep, count: Annotated[int, Query(ge=1, le=50)] = 5
) -> SchedulePreview:
    """The next fire times of a schedule trigger (the builder shows five), from now."""
    schedule = body.trigger.schedule()
    if schedule is None:
        raise InvalidInput("Only a schedule trigger fires on its own.", field="trigger.type")
    return SchedulePreview(next=schedule.next_fires(datetime.now(UTC), count))


@router.put("/{ref}", responses=errors(404, 409))
def replace_flow(
    ref: str, document: FlowDocument, cf: CardflowDep, caller: BuilderDep, note: NoteQuery = None
) -> FlowView:
    """Save a flow's new document: a new version of it when the document changed."""
    _check_connections(cf, document, caller)
    return cf.flows.replace(ref, document, note=note)


@router.patch("/{ref}", responses=errors(404))
def patch_flow(ref: str, body: FlowPatch, cf: CardflowDep, caller: BuilderDep) -> FlowView:
    """Enable or disable a flow (a disabled API-endpoint flow answers 404); a change is a
    new version of its document."""
    return cf.flows.set_enabled(ref, body.enabled, note=body.note)


VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="The version's number.")]


@router.get("/{ref}/versions", responses=errors(404))
def list_versions(
    ref: str,
    cf: CardflowDep,
    _caller: ViewerDep,
    before: Annotated[
        int | None,
        Query(ge=1, description="A version number: the next page, the versions older than it."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[FlowVersionSummary]:
    """The flow's saved versions, newest first (at most CARDFLOW_MAX_FLOW_VERSIONS are kept).
    Page through them with ``before`` set to the last number shown."""
    return cf.flows.versions(ref, before=before, limit=limit)


@router.get("/{ref}/versions/{number}", responses=errors(404))
def get_version(
    ref: str, number: VersionNumber, cf: CardflowDep, _caller: ViewerDep
) -> FlowVersionView:
    """One saved version with its flow document."""
    return cf.flows.version(ref, number)


@router.get("/{ref}/versions/{number}/diff/{other}", responses=errors(404))
def diff_versions(
    ref: str,
    number: VersionNumber,
    other: VersionNumber,
    cf: CardflowDep,
    _caller: ViewerDep,
    format: Annotated[Literal["yaml", "json"], Query()] = "yaml",
) -> FlowVersionDiff:
    """Version ``number`` (left) and ``other`` (right), exported as YAML (or JSON) and
    compared line by line: side-by-side rows and a unified diff."""
    return cf.flows.diff(ref, number, other, format)


@router.post("/{ref}/versions/{number}/restore", responses=errors(404, 409))
def restore_version(
    ref: str,
    number: VersionNumber,
    cf: CardflowDep,
    caller: BuilderDep,
    body: RestoreRequest | None = None,
) -> FlowView:
    """Save that version's document as the flow's newest version (checked as any save:
    its connections must exist, its name and alias be free)."""
    kept = cf.flows.version(ref, number).document
    with contextlib.suppress(ValidationError):  # an invalid one is refused by the restore
        _check_connections(cf, FlowDocument.model_validate(kept), caller)
    return cf.flows.restore(ref, number, note=body.note if body else None)


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
def delete_flow(ref: str, cf: CardflowDep, _caller: BuilderDep) -> Response:
    cf.flows.delete(ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class FlowTestSave(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample: str = Field(default="", description="The test data (the trigger body), as typed.")
    results: dict[str, Any] = Field(
        default_factory=dict,
        description="Card id -> its last Test this card result (as the builder shows it), or "
        "outputs typed for testing later cards.",
    )


@router.get("/{ref}/test-state", responses=errors(404))
def get_test_state(ref: str, cf: CardflowDep, _caller: ViewerDep) -> FlowTestData:
    """The builder's test data and each card's last test result, kept for the flow."""
    return cf.flows.test_state(ref)


@router.put("/{ref}/test-state", responses=errors(404))
def put_test_state(
    ref: str, body: FlowTestSave, cf: CardflowDep, _caller: BuilderDep
) -> FlowTestData:
    """Keep the builder's test data and last results until the flow is deleted."""
    return cf.flows.save_test_state(ref, body.sample, body.results)


@router.post("/{ref}/client-token", responses=errors(404))
def regenerate_client_token(ref: str, cf: CardflowDep, _caller: BuilderDep) -> FlowView:
    """A new client token; the old one stops working at once."""
    return cf.flows.regenerate_token(ref)


@router.get(
    "/{ref}/export",
    response_class=Response,
    responses={
        200: {
            "description": "The flow file: YAML, or JSON with format=json.",
            "model": FlowDocument,
            "content": {"application/yaml": {"schema": {"type": "string"}}},
        },
        **errors(404),
    },
)
def export_flow(
    ref: str,
    cf: CardflowDep,
    _caller: ViewerDep,
    format: Annotated[Literal["yaml", "json"], Query()] = "yaml",
) -> Response:
    text = dump_document(cf.flows.get(ref).document, format)
    media = "application/yaml" if format == "yaml" else "application/json"
    return Response(text, media_type=media)


@router.post("/{ref}/runs", status_code=status.HTTP_201_CREATED, responses=errors(404, 503, 508))
async def run_flow(
    ref: str, request: Request, cf: CardflowDep, caller: BuilderDep, body: RunRequest | None = None
) -> RunView:
    """Run the flow now (manual trigger) and return the finished run.

    On PostgreSQL the run goes through the queue (any worker executes it): the answer
    comes when it has ended, or after CARDFLOW_ENDPOINT_TIMEOUT seconds with the run as it
    is then (status queued or running); with `Prefer: respond-async`, at once.

    A builder runs only flows whose connections are shared with them."""
    await asyncio.to_thread(check_may_run, cf, ref, caller)
    inputs, hop = body.inputs if body else {}, incoming_hop(request)
    if cf.engine.queue is None:
        return await cf.run_flow_async(ref, inputs, hop=hop)
    prefer_async = "respond-async" in request.headers.get("prefer", "").lower()
    wait = 0.0 if prefer_async else cf.settings.endpoint_timeout
    return await cf.queue_flow_run_async(ref, inputs, hop=hop, wait=wait)
