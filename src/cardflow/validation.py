"""Turn pydantic validation errors into InvalidInput errors that name the field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cardflow.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def field_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    parts = [prefix] if prefix else []
    parts.extend(str(part) for part in loc if part != "[key]")
    return ".".join(parts)


def invalid_input(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """The first error, with its field path (``config.password``, ``inputs.url``)."""
    first = exc.errors(include_url=False, include_input=False)[0]
    field = field_path(prefix, tuple(first["loc"])) or prefix or None
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing" or (
        # an empty string where at least one character is needed: a required value left out
        first["type"] == "string_too_short" and first.get("ctx", {}).get("min_length") == 1
    ):
        message = "this field is required"
    elif first["type"] == "extra_forbidden":
        message = "unknown field"
    more = exc.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return InvalidInput(f"{field}: {message}{suffix}" if field else message + suffix, field=field)


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc, prefix) from None
