"""cardflow's exceptions: one tree, each class carrying a stable ``type`` string.

    CardflowError
    ├── ConfigurationError          bad settings, missing or wrong master key
    ├── InvalidInput                a field of a request is wrong (names the field)
    │   └── MissingConnections      a flow's cards name connections that do not exist
    ├── NotFound
    │   ├── ConnectionNotFound
    │   ├── CardNotFound
    │   ├── PresetNotFound
    │   └── RunNotFound
    ├── Conflict
    │   └── ConnectionInUse
    ├── PayloadTooLarge             a request body over CARDFLOW_MAX_REQUEST_BYTES
    ├── InvalidBody                 a request body that cannot be read (too deep, not JSON)
    ├── Unauthorized                missing or wrong API token, session or login link
    ├── LoopDetected                flows calling cardflow's own URLs nested too deep
    ├── Busy                        too many runs waiting: try again after Retry-After
    ├── Forbidden                   a web session's request without its CSRF token
    └── CardFailed                  a card ran and failed
        ├── UpstreamStatusError     non-2xx answer
        ├── UpstreamTimeout
        ├── UpstreamConnectionError
        ├── ResponseTooLarge
        ├── TooManyRedirects
        ├── NetworkDenied           outbound policy refused the address
        ├── HostNotAllowed          the connection's allowed_hosts exclude the host
        ├── InvalidResponse         e.g. a JSON content type with a body that is not JSON
        ├── TokenRequestFailed      token endpoint unreachable, 5xx, bad answer (retryable)
        ├── TokenRejected           the token endpoint said no (invalid_client, …)
        └── NeedsAuthorization      the grant is gone; the user must re-authorize

HTTP and database library errors are translated into these at the boundary.

``RunAborted`` stands apart: a run went over one of its limits (cards executed, wall
time) and stops whatever its cards' ``on_error`` says, so no card may catch it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class CardflowError(Exception):
    """Root of every error cardflow raises on purpose."""

    type: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.field is not None:
            data["field"] = self.field
        return data


class ConfigurationError(CardflowError):
    type = "configuration"


class InvalidInput(CardflowError):
    """A field is wrong. When a check found several problems at once (a flow's cards), the
    first is the message and field, and ``problems`` holds all of them, in order."""

    type = "invalid_input"
    http_status = 422
    problems: tuple[InvalidInput, ...] = ()

    @classmethod
    def of_all(cls, problems: list[InvalidInput]) -> InvalidInput:
        first = problems[0]
        if len(problems) == 1:
            return first
        combined = cls(first.message, field=first.field)
        combined.problems = tuple(problems)
        return combined

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.problems:
            data["errors"] = [
                {"message": p.message, **({"field": p.field} if p.field is not None else {})}
                for p in self.problems
            ]
        return data


class MissingConnections(InvalidInput):
    """A flow's cards name connections that are not here: every one of them, each with the
    cards using it (``missing``: ``[{"name", "cards": [{"id", "field"}]}]``), so a client can
    offer to map each to an existing connection. ``field`` is the first card's."""

    def __init__(
        self, message: str, *, missing: list[dict[str, Any]], field: str | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.missing = missing

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["missing_connections"] = self.missing
        return data


class NotFound(CardflowError):
    type = "not_found"
    http_status = 404


class ConnectionNotFound(NotFound):
    type = "connection_not_found"


class CardNotFound(NotFound):
    type = "card_not_found"


class PresetNotFound(NotFound):
    type = "preset_not_found"


class RunNotFound(NotFound):
    type = "run_not_found"


class Conflict(CardflowError):
    type = "conflict"
    http_status = 409


class ConnectionInUse(Conflict):
    type = "connection_in_use"


class PayloadTooLarge(InvalidInput):
    type = "payload_too_large"
    http_status = 413


class InvalidBody(InvalidInput):
    type = "invalid_body"
    http_status = 400


class LoopDetected(CardflowError):
    type = "loop_detected"
    http_status = 508


class Busy(CardflowError):
    """Too much work is waiting; ``retry_after`` says when to try again (seconds)."""

    type = "busy"
    http_status = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unauthorized(CardflowError):
    type = "unauthorized"
    http_status = 401


class Forbidden(CardflowError):
    type = "forbidden"
    http_status = 403


class CardFailed(CardflowError):
    """A card ran and failed; ``retryable`` says whether running it again may help."""

    type = "card_failed"
    http_status = 502
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        body_excerpt: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.status_code = status_code
        self.headers = dict(headers) if headers is not None else None
        self.body_excerpt = body_excerpt
        self.outputs: dict[str, Any] | None = None

    def with_outputs(self, outputs: dict[str, Any]) -> CardFailed:
        """Attach the card's outputs, returned anyway when the card's on_error is continue."""
        self.outputs = outputs
        return self

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["status_code"] = self.status_code
        data["retryable"] = self.retryable
        if self.headers is not None:
            data["headers"] = self.headers
        if self.body_excerpt is not None:
            data["body_excerpt"] = self.body_excerpt
        return data


class UpstreamStatusError(CardFailed):
    type = "upstream_status"


class UpstreamTimeout(CardFailed):
    type = "timeout"
    retryable = True


class UpstreamConnectionError(CardFailed):
    type = "connection_error"
    retryable = True


class ResponseTooLarge(CardFailed):
    type = "response_too_large"


class TooManyRedirects(CardFailed):
    type = "too_many_redirects"


class NetworkDenied(CardFailed):
    type = "network_denied"


class HostNotAllowed(CardFailed):
    type = "host_not_allowed"


class InvalidResponse(CardFailed):
    type = "invalid_response"


class TokenRequestFailed(CardFailed):
    type = "token_request_failed"
    retryable = True


class NeedsAuthorization(CardFailed):
    type = "needs_authorization"


class TokenRejected(CardFailed):
    """The token endpoint refused the request (``invalid_client``, ``invalid_scope``, …)."""

    type = "token_rejected"


class RunAborted(Exception):
    """A run went over a run-wide limit: it ends failed, whatever its cards say."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error = {"type": error_type, "message": message}


# The errors kept for work that did not end by itself: each written here only.
INTERRUPTED: dict[str, Any] = {
    "type": "interrupted",
    "message": "cardflow stopped while this run was going.",
}


def internal_error(incident: str) -> dict[str, Any]:
    """The error kept for work that failed unexpectedly (the server log has the traceback,
    under ``incident``)."""
    return {
        "type": "internal_error",
        "message": f"cardflow hit an unexpected error (incident {incident}); "
        "the server log has the details.",
    }
