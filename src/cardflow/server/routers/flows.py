"""/api/v1/flows: flows, manual runs, client tokens, export."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from cardflow.flows.model import FlowDocument, dump_document
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import CardflowDep, TokenDep
from cardflow.server.routers.invoke import incoming_hop

router = APIRouter(prefix="/api/v1/flows", tags=["flows"], route_class=JsonRoute)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict, description="Becomes trigger.body.")


class FlowImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(description="The flow file's text, YAML or JSON.")
    filename: str | None = Field(default=None, description="Its name (.json reads as JSON).")
    replace: bool = Field(default=False, description="Replace the flow of the same name.")


class FlowPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool


@router.post("/import", status_code=status.HTTP_201_CREATED)
def import_flow(body: FlowImport, cf: CardflowDep, _token: TokenDep) -> dict[str, Any]:
    """Create a flow from the text of a YAML or JSON flow file (the web app's Import)."""
    document = cf.flows.parse(body.content, filename=body.filename or "")
    return cf.flows.import_document(document, replace=body.replace).to_dict()


@router.post("", status_code=status.HTTP_201_CREATED)
def create_flow(document: FlowDocument, cf: CardflowDep, _token: TokenDep) -> dict[str, Any]:
    """Save a flow; the answer has its id, invoke_url and (client_token security) client_token."""
    return cf.flows.create(document).to_dict()


@router.get("")
def list_flows(cf: CardflowDep, _token: TokenDep) -> list[dict[str, Any]]:
    return [view.to_dict() for view in cf.flows.list()]


@router.get("/{ref}")
def get_flow(ref: str, cf: CardflowDep, _token: TokenDep) -> dict[str, Any]:
    return cf.flows.get(ref).to_dict()


@router.put("/{ref}")
def replace_flow(
    ref: str, document: FlowDocument, cf: CardflowDep, _token: TokenDep
) -> dict[str, Any]:
    return cf.flows.replace(ref, document).to_dict()


@router.patch("/{ref}")
def patch_flow(ref: str, body: FlowPatch, cf: CardflowDep, _token: TokenDep) -> dict[str, Any]:
    """Enable or disable a flow (a disabled API-endpoint flow answers 404)."""
    return cf.flows.set_enabled(ref, body.enabled).to_dict()


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT)
def delete_flow(ref: str, cf: CardflowDep, _token: TokenDep) -> Response:
    cf.flows.delete(ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{ref}/client-token")
def regenerate_client_token(ref: str, cf: CardflowDep, _token: TokenDep) -> dict[str, Any]:
    """A new client token; the old one stops working at once."""
    return cf.flows.regenerate_token(ref).to_dict()


@router.get("/{ref}/export")
def export_flow(
    ref: str,
    cf: CardflowDep,
    _token: TokenDep,
    format: Annotated[Literal["yaml", "json"], Query()] = "yaml",
) -> Response:
    text = dump_document(cf.flows.get(ref).document, format)
    media = "application/yaml" if format == "yaml" else "application/json"
    return Response(text, media_type=media)


@router.post("/{ref}/runs", status_code=status.HTTP_201_CREATED)
async def run_flow(
    ref: str, request: Request, cf: CardflowDep, _token: TokenDep, body: RunRequest | None = None
) -> dict[str, Any]:
    """Run the flow now (manual trigger) and return the finished run."""
    return await cf.run_flow_async(ref, body.inputs if body else {}, hop=incoming_hop(request))
