"""What a card is: typed inputs, an async run function, and how it is run and retried."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from cardflow.credentials.base import ConnectionAuth
from cardflow.net.hosts import AllowedHosts
from cardflow.net.transport import HttpTransport
from cardflow.redaction import SecretSet


def as_text(value: Any) -> str:
    """The text a value becomes inside ``{{ … }}`` interpolation: null is empty, objects
    and lists are compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class CardInputs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryPolicy(BaseModel):
    """Retries for 429 (and 503 with Retry-After); nothing else is retried by default."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=2, ge=0, le=10, description="Retries after the first attempt.")
    max_wait: float = Field(
        default=30.0, ge=0, le=600, description="Longest wait before a retry, in seconds."
    )


class CardOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_error: Literal["fail", "continue"] = "fail"
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout: float | None = Field(default=None, gt=0, le=3600, description="Seconds; default 30.")


class FlowControl(Protocol):
    """What control cards (Close, Return, loops, branches) may ask of the running flow."""

    @property
    def answers_caller(self) -> bool:
        """True in a run started by an API-endpoint call whose caller waits for an answer."""

    def respond(self, status_code: int, headers: dict[str, str], body: Any, *, raw: bool) -> bool:
        """Answer the caller now (the first answer wins); False if already answered."""

    def stop(self) -> None:
        """End the run successfully after this card."""

    async def run_nested(
        self, parent: str, steps: list[Any], scope: dict[str, Any]
    ) -> dict[str, Any]:
        """Run nested cards; returns their outputs by card id, raises CardFailed."""

    def loop_done_before(self) -> list[Any]:
        """A loop card: the results of the items it finished before its run went on in
        another worker (a queued run resumed inside it); empty otherwise."""

    async def loop_progress(self, results: list[Any]) -> None:
        """A loop card: the results of its items so far, kept for a queued run so that at
        most the item in flight runs again if its worker stops."""


@dataclass(frozen=True)
class CardLimits:
    """Limits a card enforces on what it is given (from CARDFLOW_* settings)."""

    max_nesting_depth: int = 64
    max_for_each_items: int = 10_000
    max_expression_bytes: int = 1024 * 1024
    max_expression_value_bytes: int = 32 * 1024 * 1024
    expression_timeout: float = 2.0
    max_pages: int = 1000
    max_run_seconds: float = 3600.0


DEFAULT_LIMITS = CardLimits()


@dataclass(slots=True)
class CardContext:
    transport: HttpTransport
    auth: ConnectionAuth | None
    options: CardOptions
    timeout: float
    flow: FlowControl | None = None
    # Where the connection's credentials may go (None: anywhere).
    allowed_hosts: AllowedHosts | None = None
    # Every secret the work this card belongs to put on the wire (auth headers are added
    # as they are sent, so a token refreshed mid-run is known too).
    secrets: SecretSet | None = None
    limits: CardLimits = DEFAULT_LIMITS
    # How deep this run sits in a chain of flows calling cardflow's own /invoke URLs.
    hop: int = 0
    # The connection's base_url: a card's relative url is appended to it.
    base_url: str | None = None


@dataclass
class CardOutcome:
    """What a card produced: outputs, and the HTTP status it saw (if any)."""

    outputs: dict[str, Any]
    status_code: int | None = None
    # A paginating card: how many pages (requests) it read.
    pages: int | None = None


RunFn = Callable[[CardContext, Any], Awaitable[CardOutcome]]
# A card's own check of its validated inputs against the CARDFLOW_* limits, which its
# input model cannot know; raises InvalidInput.
CheckFn = Callable[[Any, CardLimits], None]


@dataclass(frozen=True)
class CardSpec:
    id: str
    family: str
    title: str
    description: str
    inputs: type[CardInputs]
    run: RunFn
    uses_connection: bool = False
    # Inputs holding nested cards (run by the card itself, not evaluated as data).
    nested_inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    example: dict[str, Any] = field(default_factory=dict)
    check: CheckFn | None = None
