"""/api/v1/connections"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from cardflow.credentials.registry import AUTH_TYPES, auth_type_info
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import CardflowDep, NavigationTokenDep, TokenDep

router = APIRouter(prefix="/api/v1/connections", tags=["connections"], route_class=JsonRoute)
auth_types_router = APIRouter(
    prefix="/api/v1/auth-types", tags=["connections"], route_class=JsonRoute
)


@auth_types_router.get("")
def list_auth_types(_token: TokenDep) -> list[dict[str, Any]]:
    """The auth types and their config fields (secret fields are marked), for forms."""
    return [auth_type_info(auth_type) for auth_type in AUTH_TYPES.values()]


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(examples=["JIRA Service Management - Basic - service_account"])
    auth_type: str = Field(
        examples=["basic"], description="basic, custom, oauth, client_credentials, none"
    )
    config: dict[str, Any] = Field(
        default_factory=dict, examples=[{"username": "svc", "password": "…"}]
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        examples=[["api.example.com", "*.example.com"]],
        description="Hosts the connection's credentials may be sent to: exact names or "
        "addresses, or *.domain for any name under a domain, each with an optional :port. "
        "Empty: any host (the connection then carries a warning).",
    )


class ConnectionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    auth_type: str | None = None
    config: dict[str, Any] | None = Field(
        default=None, description="Fields to change; secrets left out are kept."
    )
    allowed_hosts: list[str] | None = Field(
        default=None,
        description="The new list (replaces the old one). Allowing a host the list did not "
        "allow needs the connection's secrets entered again in config.",
    )


class ConnectionPublic(BaseModel):
    """A connection; secret fields appear only as {"set": true|false}."""

    id: str
    name: str
    auth_type: str
    config: dict[str, Any]
    allowed_hosts: list[str] = Field(description="Hosts its credentials may go to; [] = any.")
    status: str
    last_error: str | None
    warnings: list[str] = Field(default_factory=list, description="Things to fix, in words.")
    redirect_uri: str | None = Field(
        default=None, description="OAuth: the redirect URI to register with the provider."
    )
    created_at: str
    updated_at: str


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ConnectionPublic)
def create_connection(body: ConnectionCreate, cf: CardflowDep, _token: TokenDep) -> dict[str, Any]:
    return cf.connections.create(
        body.name, body.auth_type, body.config, body.allowed_hosts
    ).to_dict()


@router.get("", response_model=list[ConnectionPublic])
def list_connections(cf: CardflowDep, _token: TokenDep) -> list[dict[str, Any]]:
    return [view.to_dict() for view in cf.connections.list()]


@router.get("/{ref}", response_model=ConnectionPublic)
def get_connection(ref: str, cf: CardflowDep, _token: TokenDep) -> dict[str, Any]:
    return cf.connections.get(ref).to_dict()


@router.patch("/{ref}", response_model=ConnectionPublic)
def update_connection(
    ref: str, body: ConnectionUpdate, cf: CardflowDep, _token: TokenDep
) -> dict[str, Any]:
    return cf.connections.update(
        ref,
        name=body.name,
        auth_type=body.auth_type,
        config=body.config,
        allowed_hosts=body.allowed_hosts,
    ).to_dict()


@router.get(
    "/{ref}/authorize",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={302: {"description": "Redirect to the provider's consent page"}},
)
def authorize_connection(
    ref: str,
    cf: CardflowDep,
    _token: NavigationTokenDep,
) -> RedirectResponse:
    """The Authorize button: a single-use state (10 minutes) and, with PKCE, a challenge."""
    url = cf.authorizations.begin(ref)
    return RedirectResponse(
        url, status_code=status.HTTP_302_FOUND, headers={"Cache-Control": "no-store"}
    )


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT)
def delete_connection(ref: str, cf: CardflowDep, _token: TokenDep) -> Response:
    cf.connections.delete(ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
