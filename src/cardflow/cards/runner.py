"""Run one card: validate its inputs, call it, and turn failures into a result."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from cardflow.cards.base import CardContext, CardInputs, CardSpec
from cardflow.errors import CardFailed, CardflowError, RunAborted, internal_error
from cardflow.validation import invalid_input

log = logging.getLogger("cardflow.cards")


@dataclass
class CardResult:
    ok: bool
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    duration_ms: float
    status_code: int | None
    run_id: str | None = None
    # Card tests only: the answer a Return or Close card would give the caller.
    answer: dict[str, Any] | None = None
    # A paginating card: the pages (requests) it read.
    pages: int | None = None
    # Card tests of request cards only: the request as a curl command (Copy as cURL).
    curl: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "ok": self.ok,
            "outputs": self.outputs,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
            "run_id": self.run_id,
            "answer": self.answer,
        }
        if self.curl is not None:
            data["curl"] = self.curl
        return data


def validate_inputs(spec: CardSpec, inputs: Any) -> CardInputs:
    # What validation.validate does, a call shorter: this runs for every card.
    try:
        parsed: CardInputs = spec.inputs.__pydantic_validator__.validate_python(
            inputs if inputs is not None else {}
        )
    except ValidationError as exc:
        raise invalid_input(exc, "inputs") from None
    return parsed


def failed_result(exc: CardflowError, duration_ms: float, on_error: str) -> CardResult:
    """The result of a card that failed; with ``on_error: continue`` it still has outputs
    (whatever the card got, plus ``error``) for the cards after it."""
    error = exc.to_dict()
    status_code = exc.status_code if isinstance(exc, CardFailed) else None
    base = exc.outputs if isinstance(exc, CardFailed) and exc.outputs else {}
    pages = base.get("pages")
    outputs = None
    if on_error == "continue":
        outputs = {
            "status_code": base.get("status_code", status_code),
            "headers": base.get("headers", {}),
            "body": base.get("body"),
            "error": error,
        }
        if pages is not None:  # a paginating card: what it had before it failed
            outputs.update(items=base.get("items"), pages=pages, stopped_by=None)
    return CardResult(False, outputs, error, duration_ms, status_code, pages=pages)


async def run_card(spec: CardSpec, inputs: CardInputs, ctx: CardContext) -> CardResult:
    """Never raises for a card failure: the result says what happened."""
    started = time.perf_counter()
    try:
        outcome = await spec.run(ctx, inputs)
    except CardflowError as exc:
        duration = (time.perf_counter() - started) * 1000
        return failed_result(exc, duration, ctx.options.on_error)
    except RunAborted:
        raise  # the whole run stops: no card may catch it
    except Exception:
        incident = secrets.token_hex(4)
        log.exception("card %s failed unexpectedly (incident %s)", spec.id, incident)
        duration = (time.perf_counter() - started) * 1000
        error = {**internal_error(incident), "status_code": None}
        return CardResult(False, None, error, duration, None)
    duration = (time.perf_counter() - started) * 1000
    return CardResult(
        True, outcome.outputs, None, duration, outcome.status_code, pages=outcome.pages
    )
