"""/api/v1/connection-presets: the provider catalogue, and a preset filled in."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from cardflow.connections.presets import MAX_QUERY_CHARS, fill_preset, get_preset, search_presets
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import ViewerDep
from cardflow.server.schemas import errors
from cardflow.views import View

router = APIRouter(
    prefix="/api/v1/connection-presets",
    tags=["connections"],
    route_class=JsonRoute,
    responses=errors(401),
)


class PresetPlaceholderView(View):
    name: str = Field(examples=["okta_domain"])
    label: str
    pattern: str = Field(description="A regular expression the whole value must match.")
    example: str
    default: str | None
    description: str | None


class PresetTestRequestView(View):
    method: Literal["GET", "POST", "HEAD"]
    path: str = Field(description="Under the connection's base_url.", examples=["/user"])


class PresetView(View):
    """A provider preset: a new connection's starting point (it holds no secret)."""

    id: str = Field(examples=["github"])
    title: str
    auth_type: str
    description: str
    docs_url: str = Field(description="The provider's developer documentation.")
    placeholders: list[PresetPlaceholderView] = Field(
        description="Values to fill in ({okta_domain} in the URLs): give them as preset_params."
    )
    config: dict[str, Any] = Field(description="Config fields, with {placeholders}.")
    scopes: list[str]
    scope_separator: str = Field(description='How the provider wants scopes joined: " " or ",".')
    authorize_params: dict[str, str] = Field(description="Added to the authorize URL's query.")
    base_url: str | None
    extra_allowed_hosts: list[str]
    tokens_expire: bool = Field(description="False: the provider's tokens do not expire.")
    secret_help: str | None = Field(description="What to enter as the secret.")
    test_request: PresetTestRequestView | None


class FilledPresetView(View):
    """A preset with its placeholders filled: what to create the connection with, but
    client_id and the secrets, which only the user has."""

    preset: str
    auth_type: str
    config: dict[str, Any]
    allowed_hosts: list[str]
    base_url: str | None
    test_request: PresetTestRequestView | None
    docs_url: str


class PresetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, str] = Field(
        default_factory=dict, examples=[{"okta_domain": "dev-123456.okta.com"}]
    )


@router.get("", response_model=list[PresetView], responses=errors(422))
def list_presets(
    _caller: ViewerDep,
    q: str | None = Query(
        default=None,
        max_length=MAX_QUERY_CHARS,
        description="Words that the id, title or description must all hold.",
    ),
) -> list[dict[str, Any]]:
    """The provider presets, by title; ``?q=okta`` searches them."""
    return [preset.model_dump() for preset in search_presets(q)]


@router.get("/{preset_id}", response_model=PresetView, responses=errors(404, 422))
def get_one_preset(preset_id: str, _caller: ViewerDep) -> dict[str, Any]:
    return get_preset(preset_id).model_dump()


@router.post("/{preset_id}/fill", response_model=FilledPresetView, responses=errors(404, 422))
def fill_one_preset(preset_id: str, body: PresetParams, _caller: ViewerDep) -> dict[str, Any]:
    """The preset with ``params`` in its placeholders (what the New Connection dialog fills
    its form with). To create the connection in one call instead, POST /api/v1/connections
    with ``preset`` and ``preset_params``."""
    return fill_preset(get_preset(preset_id), body.params).to_dict()
