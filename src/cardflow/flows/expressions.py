"""``{{ expr }}`` expressions: JMESPath over ``{trigger, steps, flow}``; nothing executes code.

An input string that is exactly ``{{ expr }}`` takes the value with its type; ``{{ … }}``
inside longer text is interpolated as text (objects and lists as JSON, null as empty).

Evaluation is bounded (see :mod:`cardflow.search`): a render starts on the event loop
with a small budget and, past it, starts again in a worker thread with the full one.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from cardflow.cards.base import DEFAULT_LIMITS, CardLimits, as_text
from cardflow.jsondata import exceeds
from cardflow.search import Budget, MoveOffLoop, OverBudget, jmespath_reason, search

_EXPR = re.compile(r"\{\{(.*?)\}\}", re.S)
_STEP_REF = re.compile(
    r"(?<![\w.])steps\s*\.\s*(?:\"((?:[^\"\\]|\\.)*)\"|([A-Za-z_][A-Za-z0-9_]*))"
)


class ExpressionError(Exception):
    """An expression does not parse, or fails when evaluated."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"{{{{ {expression} }}}}: {reason}")
        self.expression = expression
        self.reason = reason


@lru_cache(maxsize=4096)
def compile_expression(expression: str) -> ParsedResult:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ExpressionError(
            expression, f"not a valid expression: {jmespath_reason(exc)}"
        ) from None
    except RecursionError:
        raise ExpressionError(expression, "it nests too deeply") from None


@dataclass(frozen=True)
class Whole:
    """The whole string is one expression: keeps the value's type."""

    expression: str


@dataclass(frozen=True)
class Interpolated:
    parts: tuple[str | Whole, ...]


def has_expression(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value and _EXPR.search(value) is not None
    if isinstance(value, dict):
        return any(has_expression(v) for v in value.values())
    if isinstance(value, list):
        return any(has_expression(v) for v in value)
    return False


def parse_template(text: str) -> str | Whole | Interpolated:
    """Split a string into literal text and expressions (each compiled once, cached)."""
    if "{{" not in text:
        return text
    matches = list(_EXPR.finditer(text))
    if not matches:
        return text
    if len(matches) == 1 and matches[0].span() == (0, len(text)):
        expression = matches[0].group(1).strip()
        compile_expression(expression)
        return Whole(expression)
    parts: list[str | Whole] = []
    last = 0
    for match in matches:
        if match.start() > last:
            parts.append(text[last : match.start()])
        expression = match.group(1).strip()
        compile_expression(expression)
        parts.append(Whole(expression))
        last = match.end()
    if last < len(text):
        parts.append(text[last:])
    return Interpolated(tuple(parts))


def expressions_in(value: Any) -> list[str]:
    """Every expression inside a value (strings, and nested lists and objects)."""
    found: list[str] = []
    if isinstance(value, str):
        found.extend(match.group(1).strip() for match in _EXPR.finditer(value))
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(expressions_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(expressions_in(item))
    return found


def step_references(expression: str) -> set[str]:
    """The card ids an expression reads through ``steps.<id>``."""
    return {quoted or plain for quoted, plain in _STEP_REF.findall(expression)}


def _search(expression: str, scope: dict[str, Any], budget: Budget) -> Any:
    try:
        return search(compile_expression(expression), scope, budget)
    except JMESPathError as exc:
        raise ExpressionError(expression, jmespath_reason(exc)) from None
    except OverBudget as exc:
        raise ExpressionError(expression, exc.reason) from None


def _interpolate(value: Any, budget: Budget) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return as_text(value)
    if exceeds(value, budget.limits.max_expression_bytes):
        budget.text(budget.limits.max_expression_bytes + 1)
    try:
        return as_text(value)
    except (RecursionError, ValueError):
        return json.dumps(None)


def _render(value: Any, scope: dict[str, Any], budget: Budget) -> Any:
    if isinstance(value, str):
        template = parse_template(value)
        if isinstance(template, str):
            return template
        if isinstance(template, Whole):
            return _search(template.expression, scope, budget)
        pieces: list[str] = []
        length = 0
        for part in template.parts:
            if isinstance(part, Whole):
                try:
                    text = _interpolate(_search(part.expression, scope, budget), budget)
                except OverBudget as exc:
                    raise ExpressionError(part.expression, exc.reason) from None
            else:
                text = part
            length += len(text)
            try:
                budget.text(length)
            except OverBudget as exc:
                raise ExpressionError(value[:80], exc.reason) from None
            pieces.append(text)
        return "".join(pieces)
    if isinstance(value, dict):
        return {key: _render(item, scope, budget) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, scope, budget) for item in value]
    return value


def render(value: Any, scope: dict[str, Any], limits: CardLimits = DEFAULT_LIMITS) -> Any:
    """Evaluate every expression in a value (recursively), leaving the rest as it is."""
    try:
        return _render(value, scope, Budget(limits, inline=False))
    except OverBudget as exc:
        raise ExpressionError(str(value)[:200], exc.reason) from None


async def render_async(
    value: Any, scope: dict[str, Any], limits: CardLimits = DEFAULT_LIMITS
) -> Any:
    """:func:`render`, moving to a worker thread when it gets expensive."""
    try:
        return _render(value, scope, Budget(limits, inline=True))
    except MoveOffLoop:
        return await asyncio.to_thread(render, value, scope, limits)
