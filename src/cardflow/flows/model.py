"""The flow document: one schema for YAML, JSON and the REST API."""

from __future__ import annotations

import json
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cardflow.cards.base import CardOptions, RetryPolicy
from cardflow.errors import InvalidInput
from cardflow.validation import validate

CARD_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
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


def load_document(data: Any) -> FlowDocument:
    """Validate the shape of a flow document (a dict already parsed from YAML or JSON)."""
    if not isinstance(data, dict):
        raise InvalidInput("A flow document must be an object.", field=None)
    return validate(FlowDocument, data)


def parse_text(text: str, *, filename: str = "") -> Any:
    """YAML or JSON text to data (JSON is YAML, but its errors read better as JSON)."""
    try:
        if filename.endswith(".json") or text.lstrip().startswith("{"):
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"The flow file is not valid JSON: {exc}.") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"The flow file is not valid YAML: {exc}.") from None


def dump_document(document: FlowDocument, fmt: Literal["yaml", "json"] = "yaml") -> str:
    data = document.model_dump(mode="json", exclude_defaults=True)  # tidy, re-importable
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
