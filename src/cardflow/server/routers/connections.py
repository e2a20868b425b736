"""/api/v1/connections"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from cardflow.connections.presets import preset_connection
from cardflow.connections.probe import ConnectionTestResult
from cardflow.connections.service import ConnectionDeleted, ConnectionView
from cardflow.credentials.registry import AUTH_TYPES, auth_type_info
from cardflow.errors import InvalidInput
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import AdminDep, AdminNavigatingDep, CardflowDep, ViewerDep
from cardflow.server.schemas import errors
from cardflow.views import View

router = APIRouter(
    prefix="/api/v1/connections",
    tags=["connections"],
    route_class=JsonRoute,
    responses=errors(401, 403, 422),
)
auth_types_router = APIRouter(
    prefix="/api/v1/auth-types",
    tags=["connections"],
    route_class=JsonRoute,
    responses=errors(401, 403),
)


class FieldCondition(View):
    """A rule on a choice field: it has one of these values."""

    field: str = Field(examples=["token_auth_method"])
    values: list[str] = Field(examples=[["private_key_jwt"]])


class AuthTypeField(View):
    """One config field of an auth type, as a form shows it."""

    name: str
    title: str
    description: str | None
    kind: Literal["text", "choice", "boolean", "pem"] = Field(
        description="pem: several lines of PEM text (certificates, a private key)."
    )
    options: list[Any] | None = Field(description="choice: the values to choose from.")
    required: bool
    default: Any
    secret: bool = Field(description='Write-only: shown back only as {"set": true|false}.')
    required_if_applies: bool = Field(
        description="Required whenever it applies (see applies_when); `required` says "
        "whether it is with the defaults."
    )
    applies_when: FieldCondition | None = Field(
        description="The field applies only while another (choice) field has one of these "
        "values; forms hide it otherwise. null: always."
    )
    required_when: FieldCondition | None = Field(
        description="An optional field required while another (choice) field has one of "
        "these values (the client certificate and key with tls_client_auth). null: never."
    )
    group: Literal["client_tls"] | None = Field(
        description="client_tls: the mutual-TLS fields every auth type has (optional).",
    )


class AuthTypeView(View):
    """An auth type and its config fields."""

    name: str = Field(examples=["basic"])
    title: str
    uses_tokens: bool = Field(description="It fetches access tokens (kept per connection).")
    user_authorizes: bool = Field(
        description="A user authorizes it in a browser (GET /api/v1/connections/{ref}/authorize)."
    )
    fields: list[AuthTypeField]


@auth_types_router.get("", response_model=list[AuthTypeView])
def list_auth_types(_caller: ViewerDep) -> list[dict[str, Any]]:
    """The auth types and their config fields (secret fields are marked), for forms."""
    return [auth_type_info(auth_type) for auth_type in AUTH_TYPES.values()]


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(examples=["JIRA Service Management - Basic - service_account"])
    auth_type: str | None = Field(
        default=None,
        examples=["basic"],
        description=", ".join(AUTH_TYPES) + " (may be left out with a preset).",
    )
    preset: str | None = Field(
        default=None,
        examples=["github"],
        description="Start from a provider preset (GET /api/v1/connection-presets): its auth "
        "type, URLs, scopes, allowed_hosts and base_url; config given here is added on top "
        "(client_id, the secrets), allowed_hosts and base_url given here replace the preset's.",
    )
    preset_params: dict[str, str] = Field(
        default_factory=dict,
        examples=[{"okta_domain": "dev-123456.okta.com"}],
        description="Values for the preset's placeholders.",
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
    base_url: str | None = Field(
        default=None,
        examples=["https://api.github.com"],
        description="Where cards' relative URLs (/user) resolve; its host must be allowed.",
    )
    test_request: dict[str, Any] | None = Field(
        default=None,
        examples=[{"method": "GET", "url": "https://api.example.com/me"}],
        description="What Test connection sends with its auth (method, and an absolute URL "
        "or a path under base_url). With a preset, left out: the preset's.",
    )
    shared_with: list[str] = Field(
        default_factory=lambda: ["everyone"],
        max_length=100,
        description='Who may use it in cards besides admins: "everyone", "role:<role>" or '
        '"user:<name or id>" entries.',
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
    base_url: str | None = Field(
        default=None, description='A new base_url ("" removes it); left out: kept.'
    )
    test_request: dict[str, Any] | None = Field(
        default=None,
        examples=[{"method": "GET", "url": "/me"}],
        description="What Test connection sends (replaces the old one; its url an absolute "
        "URL or a path under base_url); null removes it.",
    )
    shared_with: list[str] | None = Field(
        default=None,
        max_length=100,
        description='The new list: "everyone", "role:<role>" or "user:<name or id>" entries.',
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409))
def create_connection(body: ConnectionCreate, cf: CardflowDep, _caller: AdminDep) -> ConnectionView:
    if body.preset is None:
        if body.preset_params:
            raise InvalidInput("preset_params need a preset.", field="preset_params")
        return cf.connections.create(
            body.name,
            body.auth_type,
            body.config,
            body.allowed_hosts,
            body.base_url,
            body.test_request,
            body.shared_with,
        )
    auth_type, config, hosts, base_url, test_request = preset_connection(
        body.preset,
        body.preset_params,
        auth_type=body.auth_type,
        config=body.config,
        allowed_hosts=body.allowed_hosts,
        base_url=body.base_url,
        test_request=body.test_request,
    )
    return cf.connections.create(
        body.name, auth_type, config, hosts, base_url, test_request, body.shared_with
    )


@router.get("")
def list_connections(cf: CardflowDep, caller: ViewerDep) -> list[ConnectionView]:
    """Every connection; below admin, those shared with the caller, without their config."""
    return cf.connections.list(caller)


@router.get("/{ref}", responses=errors(404))
def get_connection(ref: str, cf: CardflowDep, caller: ViewerDep) -> ConnectionView:
    return cf.connections.get(ref, caller)


@router.patch("/{ref}", responses=errors(404, 409))
def update_connection(
    ref: str, body: ConnectionUpdate, cf: CardflowDep, _caller: AdminDep
) -> ConnectionView:
    return cf.connections.update(
        ref,
        name=body.name,
        auth_type=body.auth_type,
        config=body.config,
        allowed_hosts=body.allowed_hosts,
        base_url=body.base_url,
        **({"test_request": body.test_request} if "test_request" in body.model_fields_set else {}),
        shared_with=body.shared_with,
    )


@router.post("/{ref}/test", responses=errors(404))
async def test_connection(ref: str, cf: CardflowDep, _caller: AdminDep) -> ConnectionTestResult:
    """Test connection: send its ``test_request`` with its auth, through the client cards
    use (allowed_hosts, network policy, timeout, token refresh). ``ok``: a 2xx answer; a
    401/403 is recorded as the connection's rejection. The response body is not returned.
    No ``test_request``: 422 naming it."""
    return await cf.test_connection_async(ref)


@router.get(
    "/{ref}/authorize",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={302: {"description": "Redirect to the provider's consent page"}, **errors(404)},
)
def authorize_connection(
    ref: str,
    cf: CardflowDep,
    _caller: AdminNavigatingDep,
) -> RedirectResponse:
    """The Authorize button: a single-use state (10 minutes) and, with PKCE, a challenge."""
    url = cf.authorizations.begin(ref)
    return RedirectResponse(
        url, status_code=status.HTTP_302_FOUND, headers={"Cache-Control": "no-store"}
    )


@router.delete("/{ref}", responses=errors(404, 409))
def delete_connection(ref: str, cf: CardflowDep, _caller: AdminDep) -> ConnectionDeleted:
    """Delete a connection, its secrets and tokens. With a revocation_url, the tokens it
    held are then revoked at the provider; a failed revocation does not stop the delete
    and is said in ``revocation``."""
    return cf.connections.delete(ref)
