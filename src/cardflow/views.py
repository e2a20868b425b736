"""What every view of a resource shares.

Each resource has one view, a pydantic model (``ConnectionView``, ``FlowView``,
``RunView``, ``ApiTokenView``, …): its service returns it, the REST API answers with it
(so /openapi.json describes it) and the CLI prints it (``model_dump(mode="json")``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema


def _iso(value: datetime) -> str:
    return value.isoformat()


# As JSON: datetime.isoformat(), as cardflow has always written times
# ("2024-05-01T12:00:00.123456+00:00"; pydantic's own form would end in "Z").
Timestamp = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def omitted_when_none(value: object) -> bool:
    """For ``Field(exclude_if=…)``: a key left out rather than written as null."""
    return value is None


class View(BaseModel):
    """A resource as cardflow shows it: read-only."""

    model_config = ConfigDict(frozen=True)


class ErrorDetail(View):
    """What went wrong: a stable ``type``, a message in words and, when one field is at
    fault, its path. A card's failure adds ``status_code`` and ``retryable`` (and, when
    known, ``headers`` and ``body_excerpt``); some errors add other details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["invalid_input"])
    message: str
    field: str | None = Field(
        default=None,
        exclude_if=omitted_when_none,
        description="The field at fault (config.password, cards.2.inputs.url); absent if none.",
    )
