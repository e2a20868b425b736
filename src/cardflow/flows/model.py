"""The flow document: one schema for YAML, JSON and the REST API.

Control cards (For Each, If / Else) hold cards of their own under some of their inputs
(their spec's ``nested_inputs``). Those cards stay in the inputs as written, so a document
reads, stores and exports the same; each :class:`CardStep` also has them parsed, once,
when the document is validated (:attr:`CardStep.nested`), and :func:`walk` visits every
card of a flow with where it sits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from cardflow import jsondata
from cardflow.cards.base import CardOptions, RetryPolicy
from cardflow.cards.registry import CARDS
from cardflow.errors import InvalidInput
from cardflow.flows.schedule import Schedule, check_cron, check_timezone, parse_every
from cardflow.jsondata import DEFAULT_MAX_DEPTH, TooDeep, check_depth, exceeds
from cardflow.validation import validate
from cardflow.views import omitted_when_none

CARD_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MAX_FLOW_BYTES = 1024 * 1024
ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


_SCHEDULE_FIELDS = ("cron", "every", "start", "end", "timezone", "catch_up")


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["manual", "api_endpoint", "schedule"] = "manual"
    alias: str | None = Field(
        default=None,
        pattern=ALIAS_PATTERN,
        description="API endpoint: the flow answers at /invoke/{alias}.",
    )
    security: Literal["client_token", "none"] = Field(
        default="client_token",
        description="client_token: callers send the flow's token (clientToken query parameter "
        "or x-api-client-token header); none: public.",
    )
    cron: str | None = Field(
        default=None,
        exclude_if=omitted_when_none,
        max_length=200,
        description='Schedule: 5-field cron ("*/5 * * * *": minute hour day month weekday), '
        "in timezone.",
    )
    timezone: str | None = Field(
        default=None,
        exclude_if=omitted_when_none,
        max_length=64,
        description="Schedule: IANA time zone of cron (default UTC).",
    )
    every: str | None = Field(
        default=None,
        exclude_if=omitted_when_none,
        max_length=20,
        description="Schedule: a fixed interval (30s, 5m, 2h, 1d).",
    )
    start: datetime | None = Field(
        default=None, exclude_if=omitted_when_none, description="Schedule: no fire before."
    )
    end: datetime | None = Field(
        default=None, exclude_if=omitted_when_none, description="Schedule: no fire after."
    )
    catch_up: bool | None = Field(
        default=None,
        exclude_if=omitted_when_none,
        description="Schedule: fires missed while no worker ran run once on recovery (false: "
        "skipped; default true).",
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None:
            parse_every(value)
        return value

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone offset (2026-12-01T09:00:00+01:00, or Z)")
        return value

    @model_validator(mode="after")
    def _schedule(self) -> Self:
        given = [name for name in _SCHEDULE_FIELDS if getattr(self, name) is not None]
        if self.type != "schedule":
            if given:
                raise ValueError(
                    f"{', '.join(given)} belong to a schedule trigger; this one is {self.type}"
                )
            return self
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule trigger takes either cron or every (not both)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must come after start")
        # shown with the schedule: what it runs with
        self.timezone = self.timezone or "UTC"
        self.catch_up = True if self.catch_up is None else self.catch_up
        return self

    def schedule(self) -> Schedule | None:
        """When it fires (a schedule trigger), else None."""
        if self.type != "schedule":
            return None
        return Schedule(
            cron=self.cron,
            every=parse_every(self.every) if self.every is not None else None,
            timezone=self.timezone or "UTC",
            start=self.start.astimezone(UTC) if self.start is not None else None,
            end=self.end.astimezone(UTC) if self.end is not None else None,
        )


class CardStep(BaseModel):
    """One card in a flow: which card, which connection, its inputs and error handling.

    A control card's own cards stay in its inputs as written; :attr:`nested` has them as
    steps (parsed with the document, or when first asked for a step made without it)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=CARD_ID_PATTERN, description="Unique in the flow; steps.<id>.")
    card: str = Field(description="Card id, e.g. api_connector.get or object.get.")
    connection: str | None = Field(default=None, description="Connection name or id.")
    inputs: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["fail", "continue"] = "fail"
    retry: RetryPolicy | None = None
    timeout: float | None = Field(default=None, gt=0, le=3600)

    # Set by parse_nested: the cards under each input that holds cards.
    _nested: dict[str, list[CardStep]] | None = PrivateAttr(default=None)

    def options(self) -> CardOptions:
        """The card options this step runs with (the default retry policy when unset)."""
        return CardOptions(
            on_error=self.on_error, retry=self.retry or RetryPolicy(), timeout=self.timeout
        )

    @property
    def nested(self) -> dict[str, list[CardStep]]:
        """The cards under each input of this card that holds cards ([] where the input is
        left out; {} for a card holding none), parsed."""
        if self._nested is None:  # a step made without validation
            return self.parse_nested("")
        return self._nested

    @property
    def data_inputs(self) -> dict[str, Any]:
        """The inputs that are data (rendered, then given to the card): all but nested cards."""
        nested = self.nested
        if not nested:
            return self.inputs
        return {key: value for key, value in self.inputs.items() if key not in nested}

    def parse_nested(self, path: str) -> dict[str, list[CardStep]]:
        """Parse the cards nested in this card's inputs, and theirs. ``path`` is where this
        card sits (``cards.2``; "" for a card on its own): InvalidInput names the field of
        the first problem from there (``cards.2.inputs.then.0.card``)."""
        spec = CARDS.get(self.card)
        nested: dict[str, list[CardStep]] = {}
        for key in spec.nested_inputs if spec is not None else ():
            where = f"{path}.inputs.{key}" if path else f"inputs.{key}"
            raw = self.inputs.get(key, [])
            if not isinstance(raw, list):
                label = f"Card {self.id!r}: " if path else ""
                raise InvalidInput(f"{label}inputs.{key} must be a list of cards.", field=where)
            steps: list[CardStep] = []
            for index, item in enumerate(raw):
                step = validate(CardStep, item, f"{where}.{index}")
                step.parse_nested(f"{where}.{index}")
                steps.append(step)
            nested[key] = steps
        self._nested = nested
        return nested


@dataclass(frozen=True)
class StepAt:
    """A card, and where it sits in its flow."""

    step: CardStep
    path: str  # as error fields name it: cards.2, cards.2.inputs.then.0
    parent: StepAt | None = None  # the control card whose input holds it
    depth: int = 0  # 0 for a card of the flow itself

    @property
    def list_path(self) -> str:
        """Where the list holding this card sits: cards, cards.2.inputs.then."""
        return self.path.rpartition(".")[0]


def walk(
    steps: list[CardStep], path: str = "cards", parent: StepAt | None = None
) -> Iterator[StepAt]:
    """Every card of ``steps``, nested cards included, in the order a flow lists them: each
    card, then the cards nested in it."""
    depth = parent.depth + 1 if parent is not None else 0
    for index, step in enumerate(steps):
        at = StepAt(step, f"{path}.{index}", parent, depth)
        yield at
        for key, inner in step.nested.items():
            yield from walk(inner, f"{at.path}.inputs.{key}", at)


class FlowDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    trigger: Trigger = Field(default_factory=Trigger)
    save_data: bool = Field(
        default=False, description="Keep each card's inputs and outputs (secrets redacted)."
    )
    enabled: bool = True
    cards: list[CardStep] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a flow needs a name")
        return value.strip()

    @model_validator(mode="after")
    def _parse_nested(self) -> Self:
        # Raises InvalidInput naming the nested card's path (not a ValueError, so pydantic
        # lets it through rather than report it at the document's root).
        for index, step in enumerate(self.cards):
            step.parse_nested(f"cards.{index}")
        return self

    def walk(self) -> Iterator[StepAt]:
        """Every card of the flow with where it sits, nested cards included."""
        return walk(self.cards)

    def with_connections(self, renamed: Mapping[str, str]) -> FlowDocument:
        """The document with every card (nested ones too) that names a connection in
        ``renamed`` naming the connection it maps to instead (an import's mapping)."""
        data = self.model_dump(mode="json")
        changed = False
        for at in self.walk():
            target = renamed.get(at.step.connection) if at.step.connection else None
            if target is None or target == at.step.connection:
                continue
            card: Any = data
            for part in at.path.split("."):  # cards.2.inputs.then.0: lists and inputs
                card = card[int(part)] if isinstance(card, list) else card[part]
            card["connection"] = target
            changed = True
        return validate(FlowDocument, data) if changed else self


@dataclass(frozen=True)
class FlowSnapshot:
    """The parts of a stored flow a run needs."""

    id: str
    name: str
    document: FlowDocument
    client_token: str | None = None
    version: int | None = None  # its saved version (FlowVersion.number)

    @cached_property
    def connections(self) -> frozenset[str]:
        """Every connection its cards name, nested cards included."""
        return frozenset(at.step.connection for at in self.document.walk() if at.step.connection)


def check_document_size(
    data: Any, *, max_bytes: int = MAX_FLOW_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> None:
    """Refuse a flow document too large or too deeply nested (YAML aliases count each
    time they are used, so a small file cannot expand into a huge flow)."""
    if exceeds(data, max_bytes):
        raise InvalidInput(
            f"The flow document is larger than {max_bytes:,} bytes as JSON "
            "(CARDFLOW_MAX_FLOW_BYTES).",
            field=None,
        )
    try:
        check_depth(data, max_depth)
    except TooDeep:
        raise InvalidInput(
            f"The flow document nests deeper than {max_depth} levels (CARDFLOW_MAX_NESTING_DEPTH).",
            field=None,
        ) from None


def load_document(
    data: Any, *, max_bytes: int = MAX_FLOW_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> FlowDocument:
    """Validate the shape of a flow document (a dict already parsed from YAML or JSON)."""
    if not isinstance(data, dict):
        raise InvalidInput("A flow document must be an object.", field=None)
    check_document_size(data, max_bytes=max_bytes, max_depth=max_depth)
    return validate(FlowDocument, data)


_BRACKETS = re.compile(r"[\[\]{}]")


def _brackets_nest_deeper(text: str, limit: int) -> bool:
    """Whether ``[`` and ``{`` ever open ``limit`` more than ``]`` and ``}`` close, quoted
    or not (no real flow comes near). PyYAML's scanner does work in proportion to the
    open brackets for every token, so a few kilobytes of them would cost it seconds."""
    depth = 0
    for char in _BRACKETS.findall(text):
        depth += 1 if char in "[{" else -1
        if depth > limit:
            return True
    return False


class _BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader, refusing nesting deeper than 500 levels as it composes
    (block-style nesting: ``- - - - x``)."""

    max_depth = 500
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise TooDeep(self.max_depth)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_text(text: str, *, filename: str = "", max_chars: int = 4 * MAX_FLOW_BYTES) -> Any:
    """YAML or JSON text to data (JSON is YAML, but its errors read better as JSON)."""
    if len(text) > max_chars:
        raise InvalidInput(
            f"The flow file is longer than {max_chars:,} characters "
            "(four times CARDFLOW_MAX_FLOW_BYTES)."
        )
    try:
        if filename.endswith(".json") or text.lstrip().startswith("{"):
            return jsondata.loads(text, max_depth=500)
        if _brackets_nest_deeper(text, _BoundedLoader.max_depth):
            raise TooDeep(_BoundedLoader.max_depth)
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)
    except (TooDeep, RecursionError):
        raise InvalidInput("The flow file nests too deeply.") from None
    except ValueError as exc:
        problem = jsondata.parse_problem(exc)
        raise InvalidInput(f"The flow file is not valid JSON: {problem}.", field="file") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(_yaml_problem(exc), field="file") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error as one sentence with 1-based line and column (its text names an
    internal "<unicode string>" and spreads over several lines)."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"The flow file is not valid YAML: {str(exc).splitlines()[0]}."
    mark = exc.problem_mark
    sentence = (
        f"The flow file is not valid YAML at line {mark.line + 1}, column {mark.column + 1}: "
        f"{(exc.problem or 'it cannot be read').rstrip('.')}"
    )
    if exc.context and exc.context_mark is not None:
        start = exc.context_mark
        sentence += f" ({exc.context} at line {start.line + 1}, column {start.column + 1})"
    return sentence + "."


def dump_document(document: FlowDocument, fmt: Literal["yaml", "json"] = "yaml") -> str:
    data = document.model_dump(mode="json", exclude_defaults=True)  # tidy, re-importable
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
