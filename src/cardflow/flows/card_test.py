"""Test this card outside a run: expressions from a test context, and a stand-in flow.

Control cards (Close, Return, Continue If, For Each, If / Else) ask the running flow to
answer its caller, stop, or run nested cards. In a test there is no run: `CardTestControl`
records the answer a Return or Close would give and runs nested cards one after another
(without recording them), so every card can be tried from the builder.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cardflow.cards.base import CardContext, CardOptions, CardSpec
from cardflow.cards.registry import get_card
from cardflow.cards.runner import CardResult, run_card
from cardflow.errors import InvalidInput
from cardflow.flows.control import NestedCardFailed
from cardflow.flows.expressions import ExpressionError, render
from cardflow.flows.model import CardStep

Prepare = Callable[
    [CardSpec, str | None, dict[str, Any], CardOptions, "CardTestControl"],
    Awaitable[tuple[Any, CardContext]],
]


def card_test_scope(context: dict[str, Any]) -> dict[str, Any]:
    return {
        "trigger": context.get("trigger") or {},
        "steps": dict(context.get("steps") or {}),
        "flow": {"id": None, "name": None, "run_id": None},
        **({"loop": context["loop"]} if "loop" in context else {}),
    }


def render_inputs(
    spec: CardSpec, inputs: dict[str, Any], scope: dict[str, Any], field_prefix: str = "inputs"
) -> dict[str, Any]:
    """A card's inputs with their expressions evaluated (nested cards are left as they are)."""
    rendered = dict(inputs)
    for name, value in inputs.items():
        if name in spec.nested_inputs:
            continue
        try:
            rendered[name] = render(value, scope)
        except ExpressionError as exc:
            raise InvalidInput(str(exc), field=f"{field_prefix}.{name}") from None
    return rendered


@dataclass
class CardTestControl:
    """The flow a tested card sees: a caller waiting for an answer, nothing else running."""

    prepare: Prepare
    scope: dict[str, Any]
    answer: dict[str, Any] | None = None
    stopped: bool = False

    @property
    def answers_caller(self) -> bool:
        return True

    def respond(self, status_code: int, headers: dict[str, str], body: Any, *, raw: bool) -> bool:
        if self.answer is not None:
            return False
        self.answer = {"status_code": status_code, "headers": headers, "body": body}
        return True

    def stop(self) -> None:
        self.stopped = True

    async def run_nested(
        self, parent: str, steps: list[Any], scope: dict[str, Any]
    ) -> dict[str, Any]:
        nested_scope = {**self.scope, **scope, "steps": dict(self.scope["steps"])}
        outputs: dict[str, Any] = {}
        for raw in steps:
            step = CardStep.model_validate(raw)
            spec = get_card(step.card)
            inputs = render_inputs(spec, step.inputs, nested_scope, f"{step.id}.inputs")
            inner = CardTestControl(self.prepare, nested_scope)
            parsed, ctx = await self.prepare(spec, step.connection, inputs, step.options(), inner)
            result: CardResult = await run_card(spec, parsed, ctx)
            if not result.ok and step.on_error == "fail":
                error = result.error or {}
                raise NestedCardFailed(
                    f"Nested card {step.id!r} failed: {error.get('message')}",
                    status_code=error.get("status_code"),
                )
            outputs[step.id] = result.outputs
            nested_scope["steps"][step.id] = result.outputs
            if inner.answer is not None and self.answer is None:
                self.answer = inner.answer
            if inner.stopped:
                break
        return outputs
