"""The flow document: one schema for YAML, JSON and the REST API."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cardflow import jsondata
from cardflow.cards.base import CardOptions, RetryPolicy
from cardflow.errors import InvalidInput
from cardflow.jsondata import DEFAULT_MAX_DEPTH, TooDeep, check_depth, exceeds
from cardflow.validation import validate

CARD_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MAX_FLOW_BYTES = 1024 * 1024
ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["manual", "api_endpoint"] = "manual"
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


class CardStep(BaseModel):
    """One card in a flow: which card, which connection, its inputs and error handling."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=CARD_ID_PATTERN, description="Unique in the flow; steps.<id>.")
    card: str = Field(description="Card id, e.g. api_connector.get or object.get.")
    connection: str | None = Field(default=None, description="Connection name or id.")
    inputs: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["fail", "continue"] = "fail"
    retry: RetryPolicy | None = None
    timeout: float | None = Field(default=None, gt=0, le=3600)

    def options(self) -> CardOptions:
        """The card options this step runs with (the default retry policy when unset)."""
        return CardOptions(
            on_error=self.on_error, retry=self.retry or RetryPolicy(), timeout=self.timeout
        )


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
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"The flow file is not valid JSON: {exc}.") from None
    except (TooDeep, RecursionError):
        raise InvalidInput("The flow file nests too deeply.") from None
    except ValueError as exc:
        raise InvalidInput(f"The flow file is not valid JSON: {exc}.") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"The flow file is not valid YAML: {exc}.") from None


def dump_document(document: FlowDocument, fmt: Literal["yaml", "json"] = "yaml") -> str:
    data = document.model_dump(mode="json", exclude_defaults=True)  # tidy, re-importable
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
