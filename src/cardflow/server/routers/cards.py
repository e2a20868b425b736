"""/api/v1/cards: the card catalogue and Test this card."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from cardflow.cards.base import CardSpec, RetryPolicy
from cardflow.cards.curl import MAX_COMMAND_CHARS, import_curl
from cardflow.cards.curl.export import card_to_curl
from cardflow.cards.registry import CARDS, get_card
from cardflow.jsondata import dumps_async
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import BuilderDep, CardflowDep, ViewerDep
from cardflow.server.schemas import errors
from cardflow.views import ErrorDetail, View

router = APIRouter(
    prefix="/api/v1/cards", tags=["cards"], route_class=JsonRoute, responses=errors(401)
)


class CardSpecView(View):
    """A card of the catalogue: what it does, its inputs and outputs."""

    id: str = Field(examples=["api_connector.get"])
    family: str
    title: str
    description: str
    uses_connection: bool
    nested_inputs: list[str] = Field(description="Inputs holding cards, run by the card itself.")
    inputs: dict[str, Any] = Field(description="The JSON Schema of its inputs.")
    outputs: list[str]
    example: dict[str, Any] = Field(description="A step using it, as a flow lists it.")

    @classmethod
    def of(cls, spec: CardSpec) -> CardSpecView:
        return cls(
            id=spec.id,
            family=spec.family,
            title=spec.title,
            description=spec.description,
            uses_connection=spec.uses_connection,
            nested_inputs=list(spec.nested_inputs),
            inputs=spec.inputs.model_json_schema(),
            outputs=list(spec.outputs),
            example=spec.example,
        )


class TestContext(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trigger: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, Any] = Field(default_factory=dict)
    loop: dict[str, Any] | None = Field(
        default=None, description="Inside a For Each: {item, index} for loop.* expressions."
    )


class CardTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: str | None = Field(default=None, description="Connection id or name, or null.")
    flow: str | None = Field(
        default=None,
        description="The flow being built (id or name): the test is listed under it in the run "
        "history, as a card_test run, apart from its real runs.",
    )
    inputs: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["fail", "continue"] = "fail"
    retry: RetryPolicy | None = None
    timeout: float | None = Field(default=None, gt=0, le=3600)
    context: TestContext | None = Field(
        default=None,
        description="Values for the inputs' {{ }} expressions: the trigger and the outputs "
        "of earlier cards (as the builder keeps them from their last tests).",
    )


class CardTestResult(BaseModel):
    """What Test this card gave (cards.runner.CardResult, with its secrets blanked out)."""

    ok: bool
    outputs: dict[str, Any] | None
    error: ErrorDetail | None
    duration_ms: float
    run_id: str | None
    answer: dict[str, Any] | None = Field(
        default=None, description="Return / Close cards: what the caller would be answered."
    )
    curl: str | None = Field(
        default=None,
        description="Request cards: the request as the test sent it, as a curl command "
        "({{ }} filled in, the connection's secrets as placeholders).",
    )


class CurlCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(
        description=f"A curl command as API docs show it (at most {MAX_COMMAND_CHARS:,} "
        "characters; line continuations with \\ or Windows ^ are fine).",
        examples=["curl -u bot:token https://jira.example.com/rest/api/3/myself"],
    )


class ConnectionProposalView(BaseModel):
    """A new connection for the command's credentials. It holds the secrets: it is only
    this answer's, to prefill the New Connection dialog; nothing is stored or logged."""

    name: str = Field(description="A suggested nickname.")
    auth_type: str = Field(examples=["basic", "custom"])
    config: dict[str, str] = Field(description="The auth type's config, secrets included.")
    allowed_hosts: list[str] = Field(description="The host of the command's URL.")
    secret_fields: list[str] = Field(description="The config fields holding a secret.")
    to_fill: list[str] = Field(
        description="Config fields the command left as placeholders ($TOKEN, <api-key>)."
    )


class CurlImportView(BaseModel):
    card: dict[str, Any] = Field(
        description='The card as a flow lists it: {"card": "api_connector.post", "inputs": '
        "{...}}; it names no connection and holds no credential."
    )
    connection: ConnectionProposalView | None
    warnings: list[str] = Field(description="What the card could not keep as curl had it.")


@router.post("/from-curl", responses=errors(422))
def card_from_curl(body: CurlCommand, _caller: BuilderDep) -> CurlImportView:
    """cURL import: the card for a pasted curl command, and its credentials as a proposed
    connection (never in the card)."""
    # A plain def: FastAPI runs it in a worker thread, so a long command never holds the loop.
    return CurlImportView.model_validate(import_curl(body.command).to_dict())


class CurlExport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: str | None = Field(default=None, description="Connection id or name, or null.")
    inputs: dict[str, Any] = Field(default_factory=dict)


class CurlCommandView(BaseModel):
    command: str = Field(
        description="The curl command; the connection's secrets as placeholders (<password>, "
        "<header_value>, <access_token>)."
    )


@router.post("/{card_id}/curl", responses=errors(404, 422))
def card_as_curl(
    card_id: str, body: CurlExport, cf: CardflowDep, caller: BuilderDep
) -> CurlCommandView:
    """Copy as cURL: the curl command making this card's request, secrets as placeholders."""
    get_card(card_id)
    view = cf.connections.get(body.connection, caller) if body.connection else None
    command = card_to_curl(
        card_id,
        body.inputs,
        auth_type=view.auth_type if view else None,
        config=view.config if view else None,
        base_url=view.base_url if view else None,
    )
    return CurlCommandView(command=command)


@router.get("")
def list_cards(_caller: ViewerDep) -> list[CardSpecView]:
    return [CardSpecView.of(spec) for spec in CARDS.values()]


@router.post("/{card_id}/test", response_model=CardTestResult, responses=errors(404, 422))
async def test_card(card_id: str, body: CardTest, cf: CardflowDep, caller: BuilderDep) -> Response:
    """Run a card once with these inputs; a card failure is ok: false, not an HTTP error.
    A builder may test only with a connection shared with them."""
    get_card(card_id)
    if body.connection:
        await asyncio.to_thread(cf.connections.check_usable, [body.connection], caller)
    options: dict[str, Any] = {"on_error": body.on_error}
    if body.retry is not None:
        options["retry"] = body.retry
    if body.timeout is not None:
        options["timeout"] = body.timeout
    flow_id = await asyncio.to_thread(cf.flows.id_of, body.flow) if body.flow else None
    result = await cf.test_card_async(
        card_id,
        connection=body.connection,
        flow_id=flow_id,
        inputs=body.inputs,
        options=options,
        context=body.context.model_dump(exclude_none=True) if body.context is not None else None,
    )
    # Written here (off the event loop when large) rather than by FastAPI's serializer.
    return Response(await dumps_async(result.to_dict()), media_type="application/json")
