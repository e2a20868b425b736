"""Checks a flow before it is saved: cards, connections, ids, expressions, triggers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from cardflow.cards.registry import CARDS
from cardflow.errors import InvalidInput
from cardflow.flows.expressions import (
    ExpressionError,
    expressions_in,
    parse_template,
    step_references,
)
from cardflow.flows.model import CardStep, FlowDocument
from cardflow.validation import invalid_input


def nested_keys(card: str) -> tuple[str, ...]:
    """Inputs of a control card that hold nested cards rather than data."""
    spec = CARDS.get(card)
    return spec.nested_inputs if spec is not None else ()


def nested_steps(step: CardStep, key: str, path: str) -> list[CardStep]:
    raw = step.inputs.get(key, [])
    if not isinstance(raw, list):
        raise InvalidInput(
            f"Card {step.id!r}: inputs.{key} must be a list of cards.", field=f"{path}.inputs.{key}"
        )
    steps = []
    for index, item in enumerate(raw):
        try:
            steps.append(CardStep.model_validate(item))
        except ValidationError as exc:
            raise invalid_input(exc, f"{path}.inputs.{key}.{index}") from None
    return steps


def _all_ids(steps: list[CardStep], path: str) -> list[str]:
    ids = []
    for index, step in enumerate(steps):
        ids.append(step.id)
        for key in nested_keys(step.card):
            ids.extend(_all_ids(nested_steps(step, key, f"{path}.{index}"), f"{path}.{index}"))
    return ids


def check_flow(document: FlowDocument, connection_exists: Callable[[str], bool]) -> None:
    """Raise InvalidInput naming the card and the field of the first problem found."""
    trigger = document.trigger
    if trigger.type == "api_endpoint" and not trigger.alias:
        raise InvalidInput(
            "An api_endpoint trigger needs an alias (the flow answers at /invoke/{alias}).",
            field="trigger.alias",
        )
    every_id = set(_all_ids(document.cards, "cards"))
    _check_steps(document, document.cards, "cards", set(), set(), every_id, connection_exists)


def _check_steps(
    document: FlowDocument,
    steps: list[CardStep],
    path: str,
    visible: set[str],
    seen: set[str],
    every_id: set[str],
    connection_exists: Callable[[str], bool],
) -> None:
    visible = set(visible)
    for index, step in enumerate(steps):
        where = f"{path}.{index}"
        label = f"Card {step.id!r}"
        if step.id in seen:
            raise InvalidInput(f"{label}: the id is used by another card.", field=f"{where}.id")
        seen.add(step.id)
        spec = CARDS.get(step.card)
        if spec is None:
            raise InvalidInput(f"{label}: there is no card {step.card!r}.", field=f"{where}.card")
        if step.connection is not None:
            if not spec.uses_connection:
                raise InvalidInput(
                    f"{label}: {step.card} does not use a connection.", field=f"{where}.connection"
                )
            if not connection_exists(step.connection):
                raise InvalidInput(
                    f"{label}: there is no connection {step.connection!r}.",
                    field=f"{where}.connection",
                )
        if step.card == "api_connector.close" and document.trigger.type != "api_endpoint":
            raise InvalidInput(
                f"{label}: Close answers the caller of an API-endpoint flow, and this flow's "
                f"trigger is {document.trigger.type}.",
                field=f"{where}.card",
            )
        nested = spec.nested_inputs
        data_inputs = {k: v for k, v in step.inputs.items() if k not in nested}
        _check_inputs(step, spec.inputs, data_inputs, nested, where, label)
        for key, value in data_inputs.items():
            _check_expressions(value, f"{where}.inputs.{key}", label, visible, every_id)
        for key in nested:
            _check_steps(
                document,
                nested_steps(step, key, where),
                f"{where}.inputs.{key}",
                visible,
                seen,
                every_id,
                connection_exists,
            )
        visible.add(step.id)


def _check_inputs(
    step: CardStep,
    model: Any,
    inputs: dict[str, Any],
    nested: tuple[str, ...],
    where: str,
    label: str,
) -> None:
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    for name, info in fields.items():
        if name not in nested and info.is_required() and name not in inputs:
            raise InvalidInput(
                f"{label}: inputs.{name} is required.", field=f"{where}.inputs.{name}"
            )
    if model.model_config.get("extra") == "forbid":
        for name in inputs:
            if name not in fields and name not in nested:
                raise InvalidInput(
                    f"{label}: {step.card} has no input {name!r} (inputs: "
                    f"{', '.join(fields) or 'none'}).",
                    field=f"{where}.inputs.{name}",
                )


def _check_expressions(
    value: Any, field: str, label: str, visible: set[str], every_id: set[str]
) -> None:
    def walk(item: Any) -> None:
        if isinstance(item, str):
            try:
                parse_template(item)
            except ExpressionError as exc:
                raise InvalidInput(f"{label}: {exc}", field=field) from None
        elif isinstance(item, dict):
            for child in item.values():
                walk(child)
        elif isinstance(item, list):
            for child in item:
                walk(child)

    walk(value)
    for expression in expressions_in(value):
        for ref in step_references(expression):
            if ref in visible:
                continue
            reason = (
                f"card {ref!r} runs later (or inside a loop or branch), so its outputs are "
                "not there yet"
                if ref in every_id
                else f"there is no card {ref!r}"
            )
            raise InvalidInput(f"{label}: {{{{ {expression} }}}}: {reason}.", field=field)
