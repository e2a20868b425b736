"""Checks a flow before it is saved: cards, connections, ids, expressions, triggers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from cardflow.cards.base import CardSpec
from cardflow.cards.registry import CARDS, unknown_card
from cardflow.errors import InvalidInput, MissingConnections
from cardflow.flows.expressions import (
    ExpressionError,
    expressions_in,
    has_expression,
    parse_template,
    step_references,
)
from cardflow.flows.model import CardStep, FlowDocument, StepAt
from cardflow.net.urls import is_relative_url

MAX_PROBLEMS = 50


class _Problems:
    """The problems found so far: each check that raises InvalidInput inside ``collect()``
    is noted and the next check goes on, so a save names every problem at once."""

    def __init__(self) -> None:
        self.found: list[InvalidInput] = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        try:
            yield
        except InvalidInput as exc:
            self.found.append(exc)

    def raise_any(self) -> None:
        if self.found:
            raise InvalidInput.of_all(self.found[:MAX_PROBLEMS])


def check_flow(document: FlowDocument, connection_exists: Callable[[str], bool]) -> None:
    """Raise InvalidInput naming the card and the field of the first problem found, with
    every problem found (at most MAX_PROBLEMS) in its ``problems``; when the flow is
    otherwise sound, MissingConnections naming every connection its cards name that does
    not exist (so an import can offer to map them all at once)."""
    problems = _Problems()
    trigger = document.trigger
    if trigger.type == "api_endpoint" and not trigger.alias:
        problems.found.append(
            InvalidInput(
                "An api_endpoint trigger needs an alias (the flow answers at /invoke/{alias}).",
                field="trigger.alias",
            )
        )
    placed = list(document.walk())
    every_id = {at.step.id for at in placed}
    seen: set[str] = set()
    # A card's expressions may name the cards before it in its own list, and those the
    # card holding that list may name (never one inside another loop or branch).
    visible_next: dict[str, set[str]] = {}  # list path: what its next card may name
    visible_inside: dict[str, set[str]] = {}  # control card path: what its cards start with
    for at in placed:
        visible = visible_next.get(at.list_path)
        if visible is None:
            start = visible_inside[at.parent.path] if at.parent is not None else set()
            visible = visible_next[at.list_path] = set(start)
        if at.step.id in seen:
            problems.found.append(
                InvalidInput(
                    f"Card {at.step.id!r}: the id is used by another card.",
                    field=f"{at.path}.id",
                )
            )
        seen.add(at.step.id)
        _check_step(document, at, visible, every_id, problems)
        if at.step.nested:
            visible_inside[at.path] = set(visible)
        visible.add(at.step.id)
    missing = _missing_connections(placed, connection_exists)
    if problems.found and missing:
        # with other problems to fix too, each missing connection is one more problem
        problems.found.extend(
            InvalidInput(
                f"Card {at.step.id!r}: there is no connection {name!r}.",
                field=f"{at.path}.connection",
            )
            for name, ats in missing.items()
            for at in ats
        )
    problems.raise_any()
    if missing:
        raise _missing_error(missing)


def _missing_connections(
    placed: list[StepAt], connection_exists: Callable[[str], bool]
) -> dict[str, list[StepAt]]:
    """The connections the cards name that do not exist, each with the cards naming it."""
    users: dict[str, list[StepAt]] = {}
    for at in placed:
        if at.step.connection is not None:
            users.setdefault(at.step.connection, []).append(at)
    return {name: ats for name, ats in users.items() if not connection_exists(name)}


def _missing_error(missing: dict[str, list[StepAt]]) -> MissingConnections:
    first = next(iter(missing.values()))
    if len(missing) == 1 and len(first) == 1:
        message = f"Card {first[0].step.id!r}: there is no connection {first[0].step.connection!r}."
    else:
        named = " and ".join(
            f"no connection {name!r} (used by {_cards_text(ats)})" for name, ats in missing.items()
        )
        message = f"There is {named}."
    return MissingConnections(
        message,
        missing=[
            {
                "name": name,
                "cards": [{"id": at.step.id, "field": f"{at.path}.connection"} for at in ats],
            }
            for name, ats in missing.items()
        ],
        field=f"{first[0].path}.connection",
    )


def _cards_text(ats: list[StepAt]) -> str:
    ids = ", ".join(repr(at.step.id) for at in ats)
    return f"card {ids}" if len(ats) == 1 else f"cards {ids}"


def _check_step(
    document: FlowDocument,
    at: StepAt,
    visible: set[str],
    every_id: set[str],
    problems: _Problems,
) -> None:
    step, where = at.step, at.path
    label = f"Card {step.id!r}"
    spec = CARDS.get(step.card)
    if spec is None:
        problems.found.append(
            InvalidInput(f"{label}: {unknown_card(step.card)}", field=f"{where}.card")
        )
        return
    if step.connection is not None and not spec.uses_connection:
        problems.found.append(
            InvalidInput(
                f"{label}: {step.card} does not use a connection.", field=f"{where}.connection"
            )
        )
    if step.card == "api_connector.close" and document.trigger.type != "api_endpoint":
        problems.found.append(
            InvalidInput(
                f"{label}: Close answers the caller of an API-endpoint flow, and this flow's "
                f"trigger is {document.trigger.type}.",
                field=f"{where}.card",
            )
        )
    data_inputs = step.data_inputs
    url = data_inputs.get("url")
    if (
        step.connection is None
        and spec.uses_connection
        and isinstance(url, str)
        and not has_expression(url)
        and is_relative_url(url)
    ):
        problems.found.append(
            InvalidInput(
                f"{label}: inputs.url: {url!r} is a relative URL and the card has no "
                "connection: give a whole https:// URL, or a connection with a base_url.",
                field=f"{where}.inputs.url",
            )
        )
    _check_inputs(step, spec, data_inputs, where, label, problems)
    for key, value in data_inputs.items():
        with problems.collect():
            _check_expressions(value, f"{where}.inputs.{key}", label, visible, every_id)


def _check_inputs(
    step: CardStep,
    spec: CardSpec,
    inputs: dict[str, Any],
    where: str,
    label: str,
    problems: _Problems,
) -> None:
    model, nested = spec.inputs, spec.nested_inputs
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    for name, info in fields.items():
        if name not in nested and info.is_required() and name not in inputs:
            problems.found.append(
                InvalidInput(f"{label}: inputs.{name} is required.", field=f"{where}.inputs.{name}")
            )
    if model.model_config.get("extra") == "forbid":
        for name in inputs:
            if name not in fields and name not in nested:
                problems.found.append(
                    InvalidInput(
                        f"{label}: {step.card} has no input {name!r} (inputs: "
                        f"{', '.join(fields) or 'none'}).",
                        field=f"{where}.inputs.{name}",
                    )
                )
    _check_literals(spec, inputs, fields, where, label, problems)


def _check_literals(
    spec: CardSpec,
    inputs: dict[str, Any],
    fields: dict[str, Any],
    where: str,
    label: str,
    problems: _Problems,
) -> None:
    """Each input written as a plain value (no ``{{ }}`` anywhere in it) is checked now,
    as the card will check it at every run: only expressions wait for run time."""
    model = spec.inputs
    blank = model.model_construct()
    attribute = {info.alias or name: name for name, info in model.model_fields.items()}
    for key, value in inputs.items():
        if key in spec.nested_inputs or key not in fields or has_expression(value):
            continue
        try:
            model.__pydantic_validator__.validate_assignment(blank, attribute[key], value)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            mine = [e for e in errors if e["loc"] and e["loc"][0] in (key, attribute[key])]
            if not mine:  # a check across fields, which the blank model cannot answer
                continue
            message = mine[0]["msg"].removeprefix("Value error, ")
            path = ".".join(str(part) for part in (key, *mine[0]["loc"][1:]) if part != "[key]")
            problems.found.append(
                InvalidInput(f"{label}: inputs.{path}: {message}.", field=f"{where}.inputs.{path}")
            )


def _check_expressions(
    value: Any, field: str, label: str, visible: set[str], every_id: set[str]
) -> None:
    def walk(item: Any) -> None:
        if isinstance(item, str):
            try:
                parse_template(item)
            except ExpressionError as exc:
                raise InvalidInput(f"{label}: {exc}.", field=field) from None
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
