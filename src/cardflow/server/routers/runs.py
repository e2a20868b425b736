"""/api/v1/runs: run history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cardflow.runs.service import RunView
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import CardflowDep, TokenDep
from cardflow.server.schemas import errors

router = APIRouter(
    prefix="/api/v1/runs", tags=["runs"], route_class=JsonRoute, responses=errors(401, 422)
)


@router.get("")
def list_runs(
    cf: CardflowDep,
    _token: TokenDep,
    flow_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunView]:
    return cf.runs.list(flow_id=flow_id, limit=limit)


@router.get("/{run_id}", responses=errors(404))
def get_run(run_id: str, cf: CardflowDep, _token: TokenDep) -> RunView:
    return cf.runs.get(run_id)
