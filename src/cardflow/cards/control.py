"""Control cards: Close, Return, Return Raw, Continue If, For Each and If/Else."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator

from cardflow.cards.base import CardContext, CardInputs, CardOutcome, CardSpec, FlowControl
from cardflow.errors import CardFailed, InvalidInput
from cardflow.net.headers import HeaderName, HeaderValue, answer_headers


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "" and empty lists/objects are false."""
    return value not in (None, False, "", [], {})


def _check_status(value: int) -> int:
    if value != 200 and not 400 <= value <= 599:
        raise ValueError("must be 200, or from 400 to 599")
    return value


def _flow(ctx: CardContext, card: str) -> FlowControl:
    if ctx.flow is None:
        raise InvalidInput(f"{card} only runs inside a flow.", field="card")
    return ctx.flow


class ResponseInputs(CardInputs):
    status_code: int = Field(default=200, description="200, or from 400 to 599.")
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    body: Any = Field(default=None, description="An object or list (sent as JSON) or text.")

    @field_validator("status_code")
    @classmethod
    def _status(cls, value: int) -> int:
        return _check_status(value)


class RawResponseInputs(ResponseInputs):
    body: str = Field(default="", description="Text, sent as it is.")


async def _close(ctx: CardContext, inputs: ResponseInputs) -> CardOutcome:
    """Answer the caller now; the flow goes on. In a run nobody waits on (manual, scheduled,
    respond-async, a retry) it answers no one and records what a caller would have got."""
    flow = _flow(ctx, "api_connector.close")
    headers = answer_headers(inputs.headers)
    answered = flow.answers_caller and flow.respond(
        inputs.status_code, headers, inputs.body, raw=False
    )
    response = {"status_code": inputs.status_code, "headers": headers, "body": inputs.body}
    return CardOutcome({"answered": answered, "response": response})


class ReturnInputs(CardInputs):
    model_config = ConfigDict(extra="allow")


async def _return(ctx: CardContext, inputs: ReturnInputs) -> CardOutcome:
    flow = _flow(ctx, "flow.return")
    body = dict(inputs.model_extra or {})
    flow.respond(200, {}, body, raw=False)
    flow.stop()
    return CardOutcome(body)


async def _return_raw(ctx: CardContext, inputs: RawResponseInputs) -> CardOutcome:
    flow = _flow(ctx, "flow.return_raw")
    flow.respond(inputs.status_code, answer_headers(inputs.headers), inputs.body, raw=True)
    flow.stop()
    return CardOutcome({"status_code": inputs.status_code})


class ConditionInputs(CardInputs):
    condition: Any = Field(description="False, null, empty text, list or object count as false.")


async def _continue_if(ctx: CardContext, inputs: ConditionInputs) -> CardOutcome:
    flow = _flow(ctx, "flow.continue_if")
    go_on = truthy(inputs.condition)
    if not go_on:
        flow.stop()
    return CardOutcome({"continued": go_on})


class ForEachInputs(CardInputs):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    items: Any = Field(
        alias="list", description="The items to loop over (nested cards see loop.item, loop.index)."
    )
    cards: list[Any] = Field(default_factory=list, description="The cards to run for each item.")
    max_items: int | None = Field(
        default=None,
        ge=1,
        description="Fail rather than loop over more items than this (at most "
        "CARDFLOW_MAX_FOR_EACH_ITEMS, 10,000 by default).",
    )


class NestedCardFailed(CardFailed):
    type = "nested_card_failed"


async def _for_each(ctx: CardContext, inputs: ForEachInputs) -> CardOutcome:
    flow = _flow(ctx, "list.for_each")
    items = inputs.items
    if items is None:
        items = []
    if not isinstance(items, list):
        raise InvalidInput("inputs.list must be a list.", field="inputs.list")
    most = ctx.limits.max_for_each_items
    if inputs.max_items is not None and inputs.max_items < most:
        limit = f"the card's max_items ({inputs.max_items:,})"
        most = inputs.max_items
    else:
        limit = f"CARDFLOW_MAX_FOR_EACH_ITEMS ({most:,})"
    if len(items) > most:
        raise InvalidInput(
            f"inputs.list has {len(items):,} items, more than {limit}: nothing was run. "
            "Split the list, or filter it first.",
            field="inputs.list",
        )
    results = list(flow.loop_done_before())[: len(items)]  # a resumed run goes on
    for index in range(len(results), len(items)):
        item = items[index]
        results.append(
            await flow.run_nested(
                f"[{index}]", inputs.cards, {"loop": {"item": item, "index": index}}
            )
        )
        await flow.loop_progress(results)
    return CardOutcome({"output": results})


class IfElseInputs(CardInputs):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    condition: Any = Field(description="False, null, empty text, list or object count as false.")
    then: list[Any] = Field(default_factory=list, description="Cards run when true.")
    else_: list[Any] = Field(
        default_factory=list, alias="else", description="Cards run when false."
    )


async def _if_else(ctx: CardContext, inputs: IfElseInputs) -> CardOutcome:
    flow = _flow(ctx, "branch.if_else")
    branch = "then" if truthy(inputs.condition) else "else"
    steps = inputs.then if branch == "then" else inputs.else_
    outputs = await flow.run_nested(f".{branch}", steps, {})
    return CardOutcome({"branch": branch, "outputs": outputs})


CARDS = (
    CardSpec(
        id="api_connector.close",
        family="API Connector",
        title="Close",
        description="Answer the caller of an API-endpoint flow now; the flow goes on. In a "
        "run nobody waits on, it records the response a caller would have got.",
        inputs=ResponseInputs,
        run=_close,
        outputs=("answered", "response"),
        example={"status_code": 200, "body": {"accepted": True}},
    ),
    CardSpec(
        id="flow.return",
        family="Flow",
        title="Return",
        description="Answer 200 with a JSON object of exactly these keys, and end the flow.",
        inputs=ReturnInputs,
        run=_return,
        outputs=("(the given keys)",),
        example={"user": "{{ steps.user.body.displayName }}"},
    ),
    CardSpec(
        id="flow.return_raw",
        family="Flow",
        title="Return Raw",
        description="Answer with this status, headers and text body, and end the flow.",
        inputs=RawResponseInputs,
        run=_return_raw,
        outputs=("status_code",),
        example={"status_code": 200, "headers": {"Content-Type": "text/xml"}, "body": "<ok/>"},
    ),
    CardSpec(
        id="flow.continue_if",
        family="Flow",
        title="Continue If",
        description="End the run successfully here unless the condition is true.",
        inputs=ConditionInputs,
        run=_continue_if,
        outputs=("continued",),
        example={"condition": "{{ trigger.body.active }}"},
    ),
    CardSpec(
        id="list.for_each",
        family="Flow",
        title="For Each",
        description="Run nested cards once per item; the output lists each item's results.",
        inputs=ForEachInputs,
        run=_for_each,
        outputs=("output",),
        nested_inputs=("cards",),
        example={
            "list": "{{ trigger.body.users }}",
            "cards": [
                {
                    "id": "name",
                    "card": "object.get",
                    "inputs": {"object": "{{ loop.item }}", "path": "name"},
                }
            ],
        },
    ),
    CardSpec(
        id="branch.if_else",
        family="Flow",
        title="If / Else",
        description="Run the 'then' cards when the condition is true, else the 'else' cards.",
        inputs=IfElseInputs,
        run=_if_else,
        outputs=("branch", "outputs"),
        nested_inputs=("then", "else"),
        example={
            "condition": "{{ trigger.body.vip }}",
            "then": [{"id": "vip", "card": "object.construct", "inputs": {"tier": "gold"}}],
            "else": [],
        },
    ),
)
