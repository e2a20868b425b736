"""/api/v1/runs: run history."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status

from cardflow.runs.service import RunView
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import BuilderDep, CardflowDep, ViewerDep
from cardflow.server.routers.flows import check_may_run
from cardflow.server.schemas import errors

router = APIRouter(
    prefix="/api/v1/runs", tags=["runs"], route_class=JsonRoute, responses=errors(401, 403, 422)
)


RunStatus = Literal["queued", "running", "succeeded", "failed"]
RunTrigger = Literal["api_endpoint", "manual", "schedule", "card_test"]


@router.get("", responses=errors(404))
def list_runs(
    cf: CardflowDep,
    _caller: ViewerDep,
    flow_id: str | None = None,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
    trigger: Annotated[RunTrigger | None, Query(description="Only runs started so.")] = None,
    card_tests: Annotated[
        bool,
        Query(description="false: leave out the builder's Test this card runs (card_test)."),
    ] = True,
    since: Annotated[datetime | None, Query(description="Started at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Started before (ISO 8601).")] = None,
    before: Annotated[
        str | None,
        Query(description="A run id: the next page, the runs listed after that one."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunView]:
    """Runs, newest first. Page through them with ``before`` set to the last id shown."""
    return cf.runs.list(
        flow_id=flow_id,
        status=status,
        trigger=trigger,
        card_tests=card_tests,
        since=since,
        until=until,
        before=before,
        limit=limit,
    )


@router.get("/{run_id}", responses=errors(404))
def get_run(run_id: str, cf: CardflowDep, _caller: ViewerDep) -> RunView:
    return cf.runs.get(run_id)


@router.post(
    "/{run_id}/retry", status_code=status.HTTP_201_CREATED, responses=errors(404, 409, 503)
)
async def retry_run(
    run_id: str,
    request: Request,
    cf: CardflowDep,
    caller: BuilderDep,
    original: Annotated[
        bool,
        Query(description="Run the flow as the failed run had it, not as it is saved now."),
    ] = False,
) -> RunView:
    """Retry a failed run from its failed card, with the earlier cards' outputs, as a new
    run (``retry_of`` names the first). Answers once it has ended, or after
    CARDFLOW_ENDPOINT_TIMEOUT with the run as it is; at once with `Prefer: respond-async`."""
    run = await asyncio.to_thread(cf.runs.get, run_id)
    if run.flow_id is not None:  # a builder retries only what they may run
        await asyncio.to_thread(check_may_run, cf, run.flow_id, caller)
    prefer_async = "respond-async" in request.headers.get("prefer", "").lower()
    wait = 0.0 if prefer_async else cf.settings.endpoint_timeout
    return await cf.retry_run_async(run_id, original=original, wait=wait)
