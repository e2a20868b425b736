"""The library's public surface is pinned: changing it is a deliberate act."""

from __future__ import annotations

import cardflow


def test_public_names() -> None:
    assert sorted(cardflow.__all__) == [
        "CardOptions",
        "CardResult",
        "Cardflow",
        "CardflowError",
        "ConnectionView",
        "RetryPolicy",
        "Settings",
        "open",
    ]
    for name in cardflow.__all__:
        assert hasattr(cardflow, name)


def test_error_types_are_stable() -> None:
    from cardflow import errors

    expected = {
        "InvalidInput": "invalid_input",
        "MissingConnections": "invalid_input",  # a 422 with error.missing_connections
        "ConnectionNotFound": "connection_not_found",
        "CardNotFound": "card_not_found",
        "Conflict": "conflict",
        "ConnectionInUse": "connection_in_use",
        "Unauthorized": "unauthorized",
        "UpstreamStatusError": "upstream_status",
        "UpstreamTimeout": "timeout",
        "NetworkDenied": "network_denied",
        "NeedsAuthorization": "needs_authorization",
        "TokenRequestFailed": "token_request_failed",
        "TokenRejected": "token_rejected",
        "ResponseTooLarge": "response_too_large",
    }
    for cls_name, type_ in expected.items():
        cls = getattr(errors, cls_name)
        assert issubclass(cls, errors.CardflowError)
        assert cls.type == type_
