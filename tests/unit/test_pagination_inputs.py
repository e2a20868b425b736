"""The pagination input of Get, Post and Raw Request: what is refused, and how the error
names the field; the Link header parser."""

from __future__ import annotations

from typing import Any

import pytest

from cardflow.cards.base import CardLimits
from cardflow.cards.pagination import next_link
from cardflow.cards.registry import CARDS
from cardflow.cards.runner import validate_inputs
from cardflow.errors import InvalidInput
from cardflow.flows.model import load_document
from cardflow.flows.validate import check_flow

URL = "https://api.example.com/v1/users"


def _refused(card: str, pagination: Any, **inputs: Any) -> InvalidInput:
    spec = CARDS[card]
    with pytest.raises(InvalidInput) as raised:
        parsed = validate_inputs(spec, {"url": URL, **inputs, "pagination": pagination})
        assert spec.check is not None
        spec.check(parsed, CardLimits(max_pages=500))
    return raised.value


@pytest.mark.parametrize(
    ("pagination", "field", "words"),
    [
        ({"mode": "pages"}, "inputs.pagination.mode", "'pages' is not a mode"),
        ({"next": "body.next"}, "inputs.pagination.mode", "required"),
        ({"mode": "next_url"}, "inputs.pagination.next", "required"),
        ({"mode": "cursor", "parameter": "c"}, "inputs.pagination.cursor", "required"),
        ({"mode": "next_url", "next": ""}, "inputs.pagination.next", "required"),
        ({"mode": "next_url", "next": "body.[["}, "inputs.pagination.next", "not a valid"),
        (
            {"mode": "link_header", "items": "body.data | "},
            "inputs.pagination.items",
            "not a valid",
        ),
        ({"mode": "link_header", "max_pages": 0}, "inputs.pagination.max_pages", "greater"),
        ({"mode": "link_header", "max_pages": 501}, "inputs.pagination.max_pages", "MAX_PAGES"),
        ({"mode": "link_header", "max_items": 5}, "inputs.pagination", "set items too"),
        ({"mode": "link_header", "page": 2}, "inputs.pagination.page", "unknown field"),
        ({"mode": "increment", "parameter": "page"}, "inputs.pagination", "items"),
        ("body.next", "inputs.pagination", "dictionary"),
    ],
)
def test_bad_pagination_is_refused_naming_the_field(
    pagination: Any, field: str, words: str
) -> None:
    error = _refused("api_connector.get", pagination)
    assert error.field == field
    assert words in error.message


def test_a_body_parameter_needs_a_card_with_a_json_object_body() -> None:
    cursor = {"mode": "cursor", "cursor": "body.next", "parameter": "c", "send_in": "body"}
    for card, inputs in (
        ("api_connector.get", {}),
        ("api_connector.raw_request", {"method": "POST", "body": "<x/>"}),
        ("api_connector.post", {"body": ["a list"]}),
    ):
        error = _refused(card, cursor, **inputs)
        assert error.field == "inputs.pagination.send_in", card
    spec = CARDS["api_connector.post"]
    for body in (None, {"q": 1}):
        parsed = validate_inputs(spec, {"url": URL, "body": body, "pagination": cursor})
        assert spec.check is not None
        spec.check(parsed, CardLimits())


def test_no_pagination_and_null_are_the_same_single_request() -> None:
    spec = CARDS["api_connector.get"]
    assert validate_inputs(spec, {"url": URL}).pagination is None  # type: ignore[attr-defined]
    assert validate_inputs(spec, {"url": URL, "pagination": None}).pagination is None  # type: ignore[attr-defined]


def test_a_flow_is_checked_for_a_pagination_written_as_it_is() -> None:
    document = load_document(
        {
            "name": "x",
            "cards": [
                {
                    "id": "users",
                    "card": "api_connector.get",
                    "inputs": {"url": URL, "pagination": {"mode": "next_url", "max_pages": 0}},
                }
            ],
        }
    )
    with pytest.raises(InvalidInput) as raised:
        check_flow(document, lambda ref: True)
    assert raised.value.field is not None
    assert raised.value.field.startswith("cards.0.inputs.pagination.")


@pytest.mark.parametrize(
    ("values", "target"),
    [
        (['<https://a.test/x?page=2>; rel="next"'], "https://a.test/x?page=2"),
        (['<https://a.test/x?page=9>; rel="last", </p?page=3>; rel=next'], "/p?page=3"),
        (['</a>; title="x, y"; rel="prev", </b>; REL="Prev Next"'], "/b"),
        (['</a>; rel="last"', '</b>; rel="next"'], "/b"),
        (['<https://a.test/x>; rel="last"'], None),
        (["not a link header"], None),
        ([], None),
    ],
)
def test_next_link_reads_rfc_8288_link_headers(values: list[str], target: str | None) -> None:
    assert next_link(values) == target
