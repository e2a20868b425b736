"""JMESPath searches on a budget.

Whoever writes an expression — a flow author, anyone with an API token — can make one
that doubles its value at every step (``@ | [@,@] | [@,@] …``) or joins a long text to
itself. Every search here runs on a :class:`Budget`: steps, wall time
(``CARDFLOW_EXPRESSION_TIMEOUT``), values it builds (counted with their shared parts, as
they would be written out) and text it makes (``CARDFLOW_MAX_EXPRESSION_BYTES``). A
search starts on the event loop with a small budget; past it, it starts again in a
worker thread with the full one, so a heavy expression never stalls other requests.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Protocol

from jmespath import exceptions as jp_errors
from jmespath import functions as jp_functions
from jmespath.parser import ParsedResult
from jmespath.visitor import Options, TreeInterpreter

from cardflow.jsondata import exceeds, json_size

# The full budget: evaluation steps (nodes visited, list items touched by functions) and
# values built (list items and object members, shared parts counted each time).
MAX_STEPS = 2_000_000
# Values an expression builds, as JSON: beyond, writing them out (a request body, an
# answer) would take more memory and time than anything a flow needs.
# What a render may spend on the event loop before it moves to a worker thread.
INLINE_STEPS = 20_000
INLINE_SECONDS = 0.005


class SearchLimits(Protocol):
    """The limits a search keeps to (cardflow.cards.base.CardLimits has them)."""

    @property
    def max_expression_bytes(self) -> int: ...

    @property
    def max_expression_value_bytes(self) -> int: ...

    @property
    def expression_timeout(self) -> float: ...


class MoveOffLoop(Exception):
    """The small on-loop budget ran out: evaluate again in a worker thread."""


class OverBudget(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Budget:
    """What one render may still spend."""

    __slots__ = ("deadline", "inline", "limits", "max_steps", "steps")

    def __init__(self, limits: SearchLimits, *, inline: bool) -> None:
        self.limits = limits
        self.inline = inline
        self.steps = 0
        self.max_steps = INLINE_STEPS if inline else MAX_STEPS
        seconds = INLINE_SECONDS if inline else limits.expression_timeout
        self.deadline = time.monotonic() + seconds

    def spend(self, steps: int) -> None:
        self.steps += steps
        if self.steps > self.max_steps:
            self._over(f"needs more than {self.max_steps:,} evaluation steps")
        if steps > 64 or not self.steps & 0xFF:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            self._over(
                f"took longer than {self.limits.expression_timeout:g} s "
                "(CARDFLOW_EXPRESSION_TIMEOUT)"
            )

    def build(self, size: int) -> None:
        if size > self.limits.max_expression_value_bytes:
            self._over(
                f"builds a value of more than {self.limits.max_expression_value_bytes:,} bytes "
                "as JSON (CARDFLOW_MAX_EXPRESSION_VALUE_BYTES)"
            )

    def text(self, length: int) -> None:
        if length > self.limits.max_expression_bytes:
            self._over(
                f"makes text longer than {self.limits.max_expression_bytes:,} characters "
                "(CARDFLOW_MAX_EXPRESSION_BYTES)"
            )

    def _over(self, reason: str) -> None:
        if self.inline:
            raise MoveOffLoop
        raise OverBudget(reason)


class _Interpreter(TreeInterpreter):  # type: ignore[misc]
    """JMESPath's interpreter, charging a :class:`Budget` for what it does."""

    def __init__(self, budget: Budget) -> None:
        super().__init__(Options(custom_functions=_Functions(budget, self)))
        self.budget = budget
        # Containers this evaluation built or measured -> their size as JSON, shared parts
        # counted each time they appear (kept alive so that an id is never reused).
        self.sizes: dict[int, int] = {}
        self._alive: list[Any] = []

    def visit(self, node: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.budget.spend(1)
        return super().visit(node, *args, **kwargs)

    def built(self, container: Any) -> Any:
        """Charge for a container this evaluation made: its size as JSON, counting what it
        holds as often as it holds it (``[@,@]`` is twice the size of ``@``)."""
        budget = self.budget
        budget.spend(len(container))
        size = 2
        if isinstance(container, dict):
            for key, child in container.items():
                size += len(key) + 4 + self._size(child)
        else:
            for child in container:
                size += 1 + self._size(child)
        budget.build(size)
        self.sizes[id(container)] = size
        self._alive.append(container)
        return container

    def _size(self, value: Any) -> int:
        if isinstance(value, str):
            return len(value) + 2
        if not isinstance(value, list | dict):
            return 8
        known = self.sizes.get(id(value))
        if known is None:  # a value from the data, measured once (cost bounded)
            known, nodes = json_size(value, self.budget.limits.max_expression_value_bytes)
            self.budget.spend(nodes)
            self.sizes[id(value)] = known
            self._alive.append(value)
        return known

    def _made(self, value: Any) -> Any:
        return self.built(value) if isinstance(value, list | dict) else value

    def visit_multi_select_list(self, node: dict[str, Any], value: Any) -> Any:
        return self._made(super().visit_multi_select_list(node, value))

    def visit_multi_select_dict(self, node: dict[str, Any], value: Any) -> Any:
        return self._made(super().visit_multi_select_dict(node, value))

    def visit_flatten(self, node: dict[str, Any], value: Any) -> Any:
        return self._made(super().visit_flatten(node, value))

    def visit_projection(self, node: dict[str, Any], value: Any) -> Any:
        return self._made(super().visit_projection(node, value))

    def visit_value_projection(self, node: dict[str, Any], value: Any) -> Any:
        return self._made(super().visit_value_projection(node, value))

    def visit_filter_projection(self, node: dict[str, Any], value: Any) -> Any:
        return self._made(super().visit_filter_projection(node, value))

    def visit_slice(self, node: dict[str, Any], value: Any) -> Any:
        return self._made(super().visit_slice(node, value))


class _Functions(jp_functions.Functions):  # type: ignore[misc]
    """JMESPath's built-in functions, each paying for the work its arguments imply."""

    def __init__(self, budget: Budget, interpreter: _Interpreter) -> None:
        self._budget = budget
        self._interpreter = interpreter

    def call_function(self, function_name: str, resolved_args: list[Any]) -> Any:
        budget = self._budget
        work = sum(len(arg) for arg in resolved_args if isinstance(arg, list | dict))
        if function_name in ("sort", "sort_by", "max_by", "min_by") and work > 1:
            work *= math.ceil(math.log2(work))
        budget.spend(work)
        if function_name == "to_string" and resolved_args and not isinstance(resolved_args[0], str):
            if exceeds(resolved_args[0], budget.limits.max_expression_bytes):
                budget.text(budget.limits.max_expression_bytes + 1)
        elif function_name == "join" and len(resolved_args) == 2:
            glue, items = resolved_args
            if isinstance(glue, str) and isinstance(items, list):
                budget.text(
                    len(glue) * max(len(items) - 1, 0)
                    + sum(len(item) for item in items if isinstance(item, str))
                )
        result = super().call_function(function_name, resolved_args)
        if isinstance(result, str):
            budget.text(len(result))
        elif isinstance(result, list | dict) and not any(result is arg for arg in resolved_args):
            self._interpreter.built(result)
        return result


def search(parsed: ParsedResult, data: Any, budget: Budget) -> Any:
    """Evaluate a compiled expression on a budget: raises OverBudget (or MoveOffLoop, on
    an inline budget), or JMESPathError when a function is misused."""
    try:
        return _Interpreter(budget).visit(parsed.parsed, data)
    except RecursionError:
        raise OverBudget("it nests too deeply") from None


async def search_async(parsed: ParsedResult, data: Any, limits: SearchLimits) -> Any:
    """:func:`search` on the event loop while it is cheap, else in a worker thread."""
    try:
        return search(parsed, data, Budget(limits, inline=True))
    except MoveOffLoop:
        return await asyncio.to_thread(search, parsed, data, Budget(limits, inline=False))


def jmespath_reason(exc: Exception) -> str:
    """A JMESPath error as a sentence for people: what is wrong and at which character
    (1-based), without the parser's raw text ("Invalid jmespath expression: …, for
    expression:" and a caret line)."""
    if isinstance(exc, jp_errors.IncompleteExpressionError):
        return f"it ends too early (after character {exc.lex_position})"
    if isinstance(exc, jp_errors.LexerError):
        problem = str(exc.message or "a character it cannot read").rstrip(".")
        return f"{problem[:1].lower()}{problem[1:]} at character {exc.lexer_position + 1}"
    if isinstance(exc, jp_errors.ParseError):
        token = exc.token_value
        where = f"at character {exc.lex_position + 1}"
        if token in (None, ""):
            return f"{str(exc.msg).rstrip('.')} {where}"
        return f"unexpected “{token}” {where}"
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for noise in ("Invalid jmespath expression: ", "Invalid JMESPath expression: "):
        first = first.removeprefix(noise)
    return first.removesuffix(", for expression:").rstrip(":").rstrip(".")
