"""Test this card: one card run alone, by the same executor as a flow's cards.

The card sees an :class:`Execution` with a caller waiting (so Return and Close report the
answer they would give) and the builder's test data as ``trigger`` and earlier cards'
outputs as ``steps``. What comes back has every secret the test put on the wire blanked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cardflow.cards.base import CardOptions, CardSpec
from cardflow.cards.curl.export import card_to_curl, copies_as_curl
from cardflow.cards.registry import get_card
from cardflow.cards.runner import CardResult
from cardflow.errors import CardflowError
from cardflow.flows.engine import Execution, StepExecutor
from cardflow.flows.expressions import ExpressionError, render_async
from cardflow.flows.model import CardStep
from cardflow.redaction import SecretSet
from cardflow.runs.service import RunService
from cardflow.validation import validate


def card_test_scope(context: dict[str, Any]) -> dict[str, Any]:
    return {
        "trigger": context.get("trigger") or {},
        "steps": dict(context.get("steps") or {}),
        "flow": {"id": None, "name": None, "run_id": None},
        **({"loop": context["loop"]} if "loop" in context else {}),
    }


@dataclass
class CardTestOutcome:
    result: CardResult
    connection_id: str | None


async def run_card_test(
    executor: StepExecutor,
    card_id: str,
    *,
    connection: str | None,
    inputs: dict[str, Any] | None,
    options: CardOptions,
    context: dict[str, Any] | None,
) -> CardTestOutcome:
    """Run the card; its outputs, error and answer come back redacted. With ``context``
    ({"trigger": …, "steps": {card id: outputs}}), ``{{ }}`` expressions in the inputs
    are evaluated against it; without, inputs are taken as written."""
    spec = get_card(card_id)
    scope = card_test_scope(context or {})
    execution = Execution(
        trigger=scope["trigger"],
        secrets=SecretSet(),
        waiting_caller=True,
        connection_refs=frozenset({connection}) if connection else frozenset(),
    )
    step = CardStep.model_construct(
        id="test",
        card=spec.id,
        connection=connection,
        inputs=dict(inputs or {}),
        on_error=options.on_error,
        retry=options.retry,
        timeout=options.timeout,
    )
    step.parse_nested("")  # a For Each's or If / Else's cards: InvalidInput names the field
    result, connection_id = await executor.run_card(
        execution, step, scope, "", render=context is not None, strict=True
    )
    if result.outputs is not None:
        result.outputs = await executor.shown(execution, result.outputs)
    if execution.answer is not None:
        result.answer = await executor.shown(execution, execution.answer.to_dict())
    if copies_as_curl(spec.id):
        result.curl = await _as_curl(
            executor, execution, spec, step, scope, connection_id, render=context is not None
        )
    return CardTestOutcome(result, connection_id)


async def _as_curl(
    executor: StepExecutor,
    execution: Execution,
    spec: CardSpec,
    step: CardStep,
    scope: dict[str, Any],
    connection_id: str | None,
    *,
    render: bool,
) -> str | None:
    """The request the test sent, as a curl command: its ``{{ }}`` filled in as they were
    for the test, the connection's secrets as placeholders, anything secret blanked."""
    try:
        data = step.data_inputs
        inputs = await render_async(data, scope, executor.preparer.limits) if render else data
        ref = connection_id or step.connection
        # the runtime the card just used: cached, no I/O
        runtime = await executor.preparer.runtimes.get(ref) if ref else None
        command = card_to_curl(
            spec.id,
            inputs,
            auth_type=runtime.auth_type if runtime else None,
            config=runtime.public_config if runtime else None,
            base_url=runtime.base_url if runtime else None,
        )
    except (CardflowError, ExpressionError):
        return None  # the test's answer already says what was wrong
    shown: str = await executor.shown(execution, command)
    return shown


class CardTests:
    """Test this card, recorded in the run history (as a ``card_test`` run)."""

    def __init__(self, executor: StepExecutor, runs: RunService) -> None:
        self.executor = executor
        self.runs = runs

    async def test(
        self,
        card_id: str,
        *,
        connection: str | None = None,
        inputs: dict[str, Any] | None = None,
        options: dict[str, Any] | CardOptions | None = None,
        context: dict[str, Any] | None = None,
        flow_id: str | None = None,
    ) -> CardResult:
        opts = (
            options
            if isinstance(options, CardOptions)
            else validate(CardOptions, options or {}, "options")
        )
        started_at = datetime.now(UTC)
        outcome = await run_card_test(
            self.executor,
            card_id,
            connection=connection,
            inputs=inputs,
            options=opts,
            context=context,
        )
        result = outcome.result
        result.run_id = self.runs.record_card_test(
            card_id, outcome.connection_id, result, started_at, flow_id=flow_id
        )
        return result
