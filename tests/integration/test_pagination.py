"""Pagination on Get, Post and Raw Request against a real paging API on loopback
(tests/support/upstream.py ``/pages/{style}``): each mode, the bounds that stop an API
that would page forever, and every page held to the first one's rules (auth,
allowed_hosts, network policy, retries)."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

import cardflow
from cardflow.app import Cardflow
from cardflow.cards.runner import CardResult
from cardflow.errors import InvalidInput
from cardflow.metrics import CARD_CALLS
from tests.conftest import RunningServer
from tests.support.upstream import Upstream


def _key() -> str:
    return secrets.token_hex(4)


def _paged(upstream: Upstream, path: str) -> list[dict[str, Any]]:
    return [r for r in upstream.requests if r["path"] == path]  # type: ignore[misc]


def _ids(result: CardResult) -> list[int]:
    assert result.ok, result.error
    assert result.outputs is not None
    return [item["id"] for item in result.outputs["items"]]


def _get(cf: Cardflow, url: str, pagination: dict[str, Any], **kwargs: Any) -> CardResult:
    return cf.test_card(
        "api_connector.get", inputs={"url": url, "pagination": pagination}, **kwargs
    )


# -- modes ------------------------------------------------------------------------------


def test_next_url_mode_follows_the_answers_next_url_with_the_connections_auth(
    cf: Cardflow, upstream: Upstream
) -> None:
    name = f"pages-{_key()}"
    cf.connections.create(name, "basic", {"username": "bot", "password": "pw"})
    key = _key()
    result = cf.test_card(
        "api_connector.get",
        connection=name,
        inputs={
            "url": f"{upstream.url}/pages/next?key={key}",
            "query": {"total": 25},
            "pagination": {"mode": "next_url", "next": "body.next", "items": "body.data"},
        },
    )
    assert _ids(result) == list(range(25))
    outputs = result.outputs
    assert outputs is not None
    assert outputs["pages"] == 3 and outputs["stopped_by"] == "last_page"
    # status_code, headers and body are the last page's
    assert outputs["status_code"] == 200
    assert [item["id"] for item in outputs["body"]["data"]] == list(range(20, 25))
    sent = [r for r in _paged(upstream, "/pages/next") if r["query"].get("key") == [key]]
    assert [r["query"].get("page") for r in sent] == [None, ["2"], ["3"]]
    expected = "Basic " + base64.b64encode(b"bot:pw").decode()
    for record in sent:  # every page carries the connection's auth
        assert [v for n, v in record["headers"] if n.lower() == "authorization"] == [expected]
    assert result.pages == 3


def test_next_url_may_be_nested_and_relative(cf: Cardflow, upstream: Upstream) -> None:
    result = _get(
        cf,
        f"{upstream.url}/pages/next?relative=1&total=12&size=5",
        {"mode": "next_url", "next": "body.links.next", "items": "body.data"},
    )
    assert _ids(result) == list(range(12))
    assert result.outputs is not None and result.outputs["pages"] == 3


def test_link_header_with_a_relative_url_is_resolved_against_the_request_url(
    cf: Cardflow, upstream: Upstream
) -> None:
    key = _key()
    result = _get(
        cf,
        f"{upstream.url}/pages/link?total=21&key={key}",
        {"mode": "link_header", "items": "body"},
    )
    assert _ids(result) == list(range(21))
    sent = [r for r in _paged(upstream, "/pages/link") if r["query"].get("key") == [key]]
    # rel="last" (listed first) is not followed; the relative next URL is, on the same host
    assert [r["query"].get("page") for r in sent] == [None, ["2"], ["3"]]
    assert result.outputs is not None and result.outputs["pages"] == 3


def test_increment_a_page_number_in_the_query(cf: Cardflow, upstream: Upstream) -> None:
    key = _key()
    result = _get(
        cf,
        f"{upstream.url}/pages/page?total=25&key={key}",
        {"mode": "increment", "parameter": "page", "items": "body.data"},
    )
    assert _ids(result) == list(range(25))
    sent = [r for r in _paged(upstream, "/pages/page") if r["query"].get("key") == [key]]
    # pages 1-3 have items; page 4 is empty and ends it
    assert [r["query"]["page"] for r in sent] == [["1"], ["2"], ["3"], ["4"]]
    assert result.outputs is not None and result.outputs["pages"] == 4


def test_increment_an_offset_in_a_post_body_steps_by_the_page_size(
    cf: Cardflow, upstream: Upstream
) -> None:
    key = _key()
    result = cf.test_card(
        "api_connector.post",
        inputs={
            "url": f"{upstream.url}/pages/offset?total=25&size=10&key={key}",
            "body": {"filter": "active"},
            "pagination": {
                "mode": "increment",
                "parameter": "offset",
                "counter": "offset",
                "send_in": "body",
                "items": "body.data",
                "stop_when": "body.has_more == `false`",
            },
        },
    )
    assert _ids(result) == list(range(25))
    sent = [r for r in _paged(upstream, "/pages/offset") if r["query"].get("key") == [key]]
    bodies = [json.loads(r["body"]) for r in sent]
    assert bodies == [{"filter": "active", "offset": n} for n in (0, 10, 20)]
    assert result.outputs is not None and result.outputs["stopped_by"] == "stop_when"


def test_cursor_from_the_answer_in_the_query_and_in_the_body(
    cf: Cardflow, upstream: Upstream
) -> None:
    key = _key()
    pagination = {
        "mode": "cursor",
        "cursor": "body.meta.next_cursor",
        "parameter": "cursor",
        "items": "body.data",
    }
    result = _get(cf, f"{upstream.url}/pages/cursor?total=23&key={key}", pagination)
    assert _ids(result) == list(range(23))
    sent = [r for r in _paged(upstream, "/pages/cursor") if r["query"].get("key") == [key]]
    assert [r["query"].get("cursor") for r in sent] == [None, ["c10"], ["c20"]]

    in_body = cf.test_card(
        "api_connector.post",
        inputs={
            "url": f"{upstream.url}/pages/cursor?total=15&key=b{key}",
            "pagination": {**pagination, "send_in": "body"},
        },
    )
    assert _ids(in_body) == list(range(15))
    sent = [r for r in _paged(upstream, "/pages/cursor") if r["query"].get("key") == [f"b{key}"]]
    assert sent[0]["body"] == ""  # the first page goes without a cursor
    assert [json.loads(r["body"]) for r in sent[1:]] == [{"cursor": "c10"}]


def test_raw_request_pages_too_and_its_items_come_from_its_text(
    cf: Cardflow, upstream: Upstream
) -> None:
    result = cf.test_card(
        "api_connector.raw_request",
        inputs={
            "url": f"{upstream.url}/pages/link?total=4&size=2",
            "method": "GET",
            "pagination": {"mode": "link_header", "items": "body"},
        },
    )
    assert result.ok, result.error
    assert result.outputs is not None
    # Raw Request's body is text: each page's text is one item
    assert [json.loads(text) for text in result.outputs["items"]] == [
        [{"id": 0}, {"id": 1}],
        [{"id": 2}, {"id": 3}],
    ]


def test_an_empty_first_page_gives_no_items(cf: Cardflow, upstream: Upstream) -> None:
    for pagination in (
        {"mode": "next_url", "next": "body.next", "items": "body.data"},
        {"mode": "increment", "parameter": "page", "items": "body.data"},
    ):
        style = "next" if pagination["mode"] == "next_url" else "page"
        result = _get(cf, f"{upstream.url}/pages/{style}?total=0", pagination)
        assert _ids(result) == []
        assert result.outputs is not None
        assert result.outputs["pages"] == 1 and result.outputs["stopped_by"] == "last_page"


# -- bounds -----------------------------------------------------------------------------


def test_an_api_that_pages_forever_is_stopped_by_max_pages(
    cf: Cardflow, upstream: Upstream
) -> None:
    key = _key()
    result = _get(
        cf,
        f"{upstream.url}/pages/next?forever=1&key={key}",
        {"mode": "next_url", "next": "body.next", "items": "body.data", "max_pages": 4},
    )
    assert _ids(result) == list(range(40))
    assert result.outputs is not None
    assert result.outputs["pages"] == 4 and result.outputs["stopped_by"] == "max_pages"
    assert len([r for r in _paged(upstream, "/pages/next") if r["query"].get("key") == [key]]) == 4


def test_an_api_that_pages_forever_is_stopped_by_max_items(
    cf: Cardflow, upstream: Upstream
) -> None:
    result = _get(
        cf,
        f"{upstream.url}/pages/cursor?forever=1",
        {
            "mode": "cursor",
            "cursor": "body.meta.next_cursor",
            "parameter": "cursor",
            "items": "body.data",
            "max_items": 25,
        },
    )
    assert _ids(result) == list(range(25))  # cut to exactly max_items
    assert result.outputs is not None
    assert result.outputs["pages"] == 3 and result.outputs["stopped_by"] == "max_items"


def test_an_api_that_pages_forever_is_stopped_by_the_byte_cap_over_all_pages(
    tmp_path: Path, upstream: Upstream
) -> None:
    """Each page is far below CARDFLOW_MAX_RESPONSE_BYTES; together they are not."""
    key = _key()
    with cardflow.open(home=tmp_path, max_response_bytes=50_000) as cf:
        result = cf.test_card(
            "api_connector.get",
            inputs={
                "url": f"{upstream.url}/pages/next?forever=1&pad=1000&key={key}",
                "pagination": {"mode": "next_url", "next": "body.next", "items": "body.data"},
            },
            options={"on_error": "continue"},
        )
        assert not result.ok
        assert result.error is not None and result.error["type"] == "response_too_large"
        assert "together" in result.error["message"]
        assert "CARDFLOW_MAX_RESPONSE_BYTES" in result.error["message"]
        sent = [r for r in _paged(upstream, "/pages/next") if r["query"].get("key") == [key]]
        assert 4 <= len(sent) <= 6  # ~10 kB a page: stopped around the 5th
        # on_error: continue keeps the pages read whole before the one over the cap
        assert result.outputs is not None
        assert result.outputs["pages"] == len(sent) - 1
        assert len(result.outputs["items"]) == 10 * (len(sent) - 1)
        assert result.pages == len(sent) - 1


def test_a_paginating_card_keeps_to_the_runs_wall_time(tmp_path: Path, upstream: Upstream) -> None:
    """An API that pages forever, 50 ms a page: a card tested alone stops at
    CARDFLOW_MAX_RUN_SECONDS as a flow's run does."""
    paging = {"mode": "next_url", "next": "body.next", "max_pages": 1000}
    url = f"{upstream.url}/pages/next?forever=1&size=1&delay=0.05"
    with cardflow.open(home=tmp_path, max_run_seconds=0.5) as cf:
        result = cf.test_card(
            "api_connector.get",
            inputs={"url": url, "pagination": paging},
            options={"on_error": "continue"},
        )
        assert not result.ok
        assert result.error is not None and result.error["type"] == "timeout"
        assert "CARDFLOW_MAX_RUN_SECONDS" in result.error["message"]
        assert result.outputs is not None and result.outputs["pages"] < 20

        flow = cf.flows.create(
            {
                "name": "slow paging",
                "trigger": {"type": "manual"},
                "cards": [
                    {
                        "id": "all",
                        "card": "api_connector.get",
                        "on_error": "continue",  # the run's limit is not the card's to catch
                        "inputs": {"url": url, "pagination": paging},
                    }
                ],
            }
        )
        run = cf.run_flow(flow.id)
        assert run.status == "failed"
        assert run.error is not None and run.error.type == "run_limit"


def test_the_items_of_all_pages_together_are_bounded(tmp_path: Path, upstream: Upstream) -> None:
    """Each page's items fit CARDFLOW_MAX_EXPRESSION_VALUE_BYTES; two pages' do not."""
    with cardflow.open(home=tmp_path, max_expression_value_bytes=20_000) as cf:
        result = _get(
            cf,
            f"{upstream.url}/pages/next?forever=1&pad=1000",
            {"mode": "next_url", "next": "body.next", "items": "body.data"},
        )
        assert not result.ok
        assert result.error is not None and result.error["type"] == "invalid_input"
        assert result.error["field"] == "inputs.pagination.items"
        assert "of 2 pages" in result.error["message"]
        assert "CARDFLOW_MAX_EXPRESSION_VALUE_BYTES" in result.error["message"]


def test_stop_when_is_evaluated_on_each_page(cf: Cardflow, upstream: Upstream) -> None:
    result = _get(
        cf,
        f"{upstream.url}/pages/next?forever=1",
        {
            "mode": "next_url",
            "next": "body.next",
            "items": "body.data[].id",
            "stop_when": "contains(body.data[].id, `17`)",
        },
    )
    assert result.ok, result.error
    assert result.outputs is not None
    assert result.outputs["items"] == list(range(20))
    assert result.outputs["stopped_by"] == "stop_when" and result.outputs["pages"] == 2


# -- every page as the first ------------------------------------------------------------


def test_a_next_url_on_another_host_is_refused_by_allowed_hosts(
    cf: Cardflow, upstream: Upstream
) -> None:
    name = f"bound-{_key()}"
    cf.connections.create(
        name,
        "basic",
        {"username": "bot", "password": "pw"},
        allowed_hosts=[f"127.0.0.1:{upstream.port}"],
    )
    key = _key()
    result = cf.test_card(
        "api_connector.get",
        connection=name,
        inputs={
            "url": f"{upstream.url}/pages/next?next_host=localhost&key={key}",
            "pagination": {"mode": "next_url", "next": "body.next", "items": "body.data"},
        },
        options={"on_error": "continue"},
    )
    assert not result.ok
    assert result.error is not None and result.error["type"] == "host_not_allowed"
    assert f"localhost:{upstream.port}" in result.error["message"]
    # localhost is this very server: only the first page reached it
    sent = [r for r in _paged(upstream, "/pages/next") if r["query"].get("key") == [key]]
    assert len(sent) == 1
    assert result.outputs is not None and result.outputs["pages"] == 1
    assert [item["id"] for item in result.outputs["items"]] == list(range(10))


def test_a_next_url_into_a_denied_network_is_refused(tmp_path: Path, upstream: Upstream) -> None:
    with cardflow.open(home=tmp_path, deny_networks="127.0.0.2/32") as cf:
        result = _get(
            cf,
            f"{upstream.url}/pages/next?next_host=127.0.0.2",
            {"mode": "next_url", "next": "body.next"},
        )
        assert not result.ok
        assert result.error is not None and result.error["type"] == "network_denied"


def test_a_429_on_page_3_is_retried_by_the_cards_retry_policy(
    cf: Cardflow, upstream: Upstream
) -> None:
    key = _key()
    result = _get(
        cf,
        f"{upstream.url}/pages/page?total=40&fail_page=3&key={key}",
        {"mode": "increment", "parameter": "page", "items": "body.data"},
    )
    assert _ids(result) == list(range(40))
    sent = [r for r in _paged(upstream, "/pages/page") if r["query"].get("key") == [key]]
    assert [r["query"]["page"] for r in sent] == [["1"], ["2"], ["3"], ["3"], ["4"], ["5"]]
    assert upstream.calls(f"{key}:3", "pages") == 2


def test_a_429_on_page_3_without_retries_fails_with_the_pages_before(
    cf: Cardflow, upstream: Upstream
) -> None:
    result = _get(
        cf,
        f"{upstream.url}/pages/page?total=40&fail_page=3&key={_key()}",
        {"mode": "increment", "parameter": "page", "items": "body.data"},
        options={"retry": {"count": 0}, "on_error": "continue"},
    )
    assert not result.ok
    assert result.error is not None and result.error["status_code"] == 429
    assert result.outputs is not None
    assert result.outputs["status_code"] == 429 and result.outputs["pages"] == 3
    assert [item["id"] for item in result.outputs["items"]] == list(range(20))


# -- records, metrics, API --------------------------------------------------------------


def test_a_flow_run_records_one_card_with_its_page_count(cf: Cardflow, upstream: Upstream) -> None:
    before = CARD_CALLS.labels("api_connector.get", "127.0.0.1", "2xx")._value.get()
    flow = cf.flows.create(
        {
            "name": f"paging-{_key()}",
            "trigger": {"type": "manual"},
            "save_data": True,
            "cards": [
                {
                    "id": "users",
                    "card": "api_connector.get",
                    "inputs": {
                        "url": f"{upstream.url}/pages/next?total=25",
                        "pagination": {
                            "mode": "next_url",
                            "next": "body.next",
                            "items": "body.data[].id",
                            # the flow's {{ }}: filled in once, before the card runs
                            "max_items": "{{ trigger.body.limit }}",
                        },
                    },
                },
                {
                    "id": "count",
                    "card": "object.construct",
                    "inputs": {"n": "{{ length(steps.users.items) }}"},
                },
            ],
        }
    )
    run = cf.run_flow(flow.id, {"limit": 15})
    assert run.status == "succeeded", run.error
    assert [card.id for card in run.cards] == ["users", "count"]
    assert run.cards[0].pages == 2 and run.cards[0].status_code == 200
    assert run.cards[1].pages is None
    assert cf.runs.get(run.id).cards[0].pages == 2
    users = run.cards[0].outputs
    assert users is not None
    assert users["items"] == list(range(15)) and users["stopped_by"] == "max_items"
    assert run.cards[1].outputs == {"output": {"n": 15}}
    # each page is one call in the metrics
    after = CARD_CALLS.labels("api_connector.get", "127.0.0.1", "2xx")._value.get()
    assert after - before == 2


def test_max_pages_over_the_setting_is_refused_naming_the_field(
    server: RunningServer, upstream: Upstream
) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        response = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={
                "inputs": {
                    "url": f"{upstream.url}/pages/next",
                    "pagination": {"mode": "next_url", "next": "body.next", "max_pages": 5000},
                }
            },
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["field"] == "inputs.pagination.max_pages"
        assert "CARDFLOW_MAX_PAGES" in error["message"]

        bad_mode = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"inputs": {"url": f"{upstream.url}/pages/next", "pagination": {"mode": "x"}}},
        )
        assert bad_mode.status_code == 422
        assert bad_mode.json()["error"]["field"] == "inputs.pagination.mode"

        card = client.get("/api/v1/cards").json()
        get = next(c for c in card if c["id"] == "api_connector.get")
        assert "pagination" in get["inputs"]["properties"]
        assert {"items", "pages", "stopped_by"} <= set(get["outputs"])


@pytest.mark.parametrize("card", ["api_connector.put", "api_connector.patch"])
def test_cards_without_pagination_refuse_the_input(cf: Cardflow, card: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        cf.test_card(
            card,
            inputs={
                "url": "http://127.0.0.1:9/x",
                "pagination": {"mode": "link_header"},
            },
        )
    assert caught.value.field == "inputs.pagination"
