"""Views write JSON as cardflow always has: isoformat times, errors' keys as they were."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cardflow.access.api_tokens import ApiTokenView
from cardflow.runs.service import RunError
from cardflow.views import ErrorDetail


def compact(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


def test_times_are_written_with_isoformat() -> None:
    at = datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC)
    token = ApiTokenView(id="tok_1", name="ci", created_at=at, user_id="usr_1", user_name="owner")
    assert token.model_dump_json() == compact(
        {
            "id": "tok_1",
            "name": "ci",
            "created_at": "2024-05-01T12:00:00.000005+00:00",
            "user_id": "usr_1",
            "user_name": "owner",
            "role": None,
        }
    )
    assert token.model_dump()["created_at"] == at  # Python callers get the datetime


def test_errors_keep_their_keys_and_their_order() -> None:
    examples = [
        {"type": "interrupted", "message": "cardflow stopped while this run was going."},
        {"type": "invalid_input", "message": "inputs.text: not JSON.", "field": "inputs.text"},
        {
            "type": "upstream_status",
            "message": "HTTP 500",
            "status_code": 500,
            "retryable": False,
            "headers": {"content-type": "text/plain"},
            "body_excerpt": "oops",
        },
        {"type": "internal_error", "message": "incident 1234", "status_code": None},
    ]
    for error in examples:
        assert ErrorDetail.model_validate(error).model_dump_json() == compact(error)
        assert RunError.model_validate(error).model_dump_json() == compact(error)
    failed_card = {"card": "parse", "type": "invalid_input", "message": "m", "field": "inputs.text"}
    assert RunError.model_validate(failed_card).model_dump_json() == compact(failed_card)
