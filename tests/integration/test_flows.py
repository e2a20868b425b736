"""Flows end to end over HTTP: a real cardflow server, a real loopback upstream."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.support.upstream import Upstream


def api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def create_flow(server: RunningServer, document: dict[str, Any]) -> dict[str, Any]:
    with api(server) as client:
        response = client.post("/api/v1/flows", json=document)
    assert response.status_code == 201, response.text
    return response.json()


def endpoint(alias: str, cards: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": f"flow {alias}",
        "trigger": {"type": "api_endpoint", "alias": alias, "security": "none"},
        "cards": cards,
        **extra,
    }


def wait_for_run(server: RunningServer, run_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with api(server) as client:
        while True:
            run = client.get(f"/api/v1/runs/{run_id}")
            if run.status_code == 200 and run.json()["status"] not in ("queued", "running"):
                return dict(run.json())
            assert time.monotonic() < deadline, run.text
            time.sleep(0.05)


def test_close_answers_while_the_flow_goes_on(server: RunningServer, upstream: Upstream) -> None:
    create_flow(
        server,
        endpoint(
            "ack",
            [
                {
                    "id": "ack",
                    "card": "api_connector.close",
                    "inputs": {
                        "status_code": 200,
                        "body": {"accepted": True, "run": "{{ flow.run_id }}"},
                    },
                },
                {
                    "id": "slow",
                    "card": "api_connector.get",
                    "inputs": {"url": f"{upstream.url}/slow?seconds=1.5"},
                },
            ],
        ),
    )
    response = httpx.post(f"{server.url}/invoke/ack", json={}, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] is True
    with api(server) as client:
        during = client.get(f"/api/v1/runs/{body['run']}").json()
    # going on (the slow card had not finished when the caller got its answer): in this
    # process (SQLite), or handed to a worker (PostgreSQL)
    assert during["status"] in ("queued", "running")
    run = wait_for_run(server, body["run"])
    assert run["status"] == "succeeded"
    assert [c["id"] for c in run["cards"]] == ["ack", "slow"]
    assert run["cards"][1]["status_code"] == 200
    assert run["cards"][1]["duration_ms"] >= 1400


def test_close_in_a_run_nobody_waits_on_records_what_a_caller_would_have_got(
    server: RunningServer,
) -> None:
    """Run now and respond-async: no caller, so Close answers no one, and the run succeeds
    with the response a caller would have had (it used to fail: "no caller waiting")."""
    flow = create_flow(
        server,
        endpoint(
            "ack-later",
            [
                {
                    "id": "ack",
                    "card": "api_connector.close",
                    "inputs": {"status_code": 200, "body": {"got": "{{ trigger.body.n }}"}},
                },
                {"id": "done", "card": "flow.return", "inputs": {"n": "{{ trigger.body.n }}"}},
            ],
            save_data=True,
        ),
    )
    with api(server) as client:
        manual = client.post(f"/api/v1/flows/{flow['id']}/runs", json={"inputs": {"n": 7}})
        assert manual.status_code == 201, manual.text
        run = wait_for_run(server, manual.json()["id"])
        accepted = httpx.post(
            f"{server.url}/invoke/ack-later",
            json={"n": 8},
            headers={"Prefer": "respond-async"},
            timeout=30,
        )
        assert accepted.status_code == 202, accepted.text
        later = wait_for_run(server, accepted.json()["run_id"])
    for got, value in ((run, 7), (later, 8)):
        assert got["status"] == "succeeded", json.dumps(got)
        close = got["cards"][0]
        assert close["status"] == "succeeded"
        assert close["outputs"]["answered"] is False
        assert close["outputs"]["response"]["status_code"] == 200
        assert close["outputs"]["response"]["body"] == {"got": value}
    # a caller that waits still gets it, and Close says so
    answer = httpx.post(f"{server.url}/invoke/ack-later", json={"n": 9}, timeout=30)
    assert (answer.status_code, answer.json()) == (200, {"got": 9})


def test_a_body_sent_as_json_that_is_not_json_is_refused_naming_where(
    server: RunningServer,
) -> None:
    create_flow(
        server,
        endpoint(
            "strict",
            [{"id": "r", "card": "flow.return", "inputs": {"email": "{{ trigger.body.email }}"}}],
        ),
    )
    broken = '{"email": "a@example.com",\n "name": }'
    answer = httpx.post(
        f"{server.url}/invoke/strict",
        content=broken,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == "body"
    assert "not valid JSON" in error["message"] and "line 2, column 10" in error["message"]
    # the same text sent as text is passed on as text, and valid JSON still works
    as_text = httpx.post(
        f"{server.url}/invoke/strict",
        content=broken,
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert as_text.status_code == 200, as_text.text
    fine = httpx.post(f"{server.url}/invoke/strict", json={"email": "a@example.com"}, timeout=30)
    assert fine.json() == {"email": "a@example.com"}


def test_save_checks_every_input_written_as_a_plain_value(server: RunningServer) -> None:
    """A value the card would refuse at every run is refused when the flow is saved,
    naming card and field; a {{ }} value waits for run time."""
    cases = [
        (
            {"id": "ack", "card": "api_connector.close", "inputs": {"status_code": 202}},
            "cards.0.inputs.status_code",
            "Card 'ack': inputs.status_code: must be 200, or from 400 to 599",
        ),
        (
            {"id": "pick", "card": "object.get", "inputs": {"object": {}, "path": "users[?active"}},
            "cards.0.inputs.path",
            "Card 'pick': inputs.path: not a valid JMESPath expression",
        ),
        (
            {
                "id": "pick",
                "card": "object.get",
                "inputs": {"object": {}, "path": "a", "on_missing": "sometimes"},
            },
            "cards.0.inputs.on_missing",
            "Card 'pick': inputs.on_missing:",
        ),
    ]
    with api(server) as client:
        for card, field, words in cases:
            answer = client.post("/api/v1/flows", json=endpoint("literal", [card]))
            assert answer.status_code == 422, answer.text
            error = answer.json()["error"]
            assert error["field"] == field, error
            assert error["message"].startswith(words), error
        later = endpoint(
            "literal",
            [
                {
                    "id": "ack",
                    "card": "api_connector.close",
                    "inputs": {"status_code": "{{ trigger.body.code }}"},
                },
                {"id": "pick", "card": "object.get", "inputs": {"object": {}, "path": "a.b"}},
            ],
        )
        assert client.post("/api/v1/flows", json=later).status_code == 201


def test_save_names_every_problem_at_once(server: RunningServer) -> None:
    """Four problems in three cards (one nested in a For Each): one answer names them all,
    in order, the first also as the error's message and field; a card id that is no card
    is worded as Test this card words it."""
    cards = [
        {"id": "ack", "card": "api_connector.close", "inputs": {"status_code": 202}},
        {
            "id": "each",
            "card": "list.for_each",
            "inputs": {
                "list": [1],
                "cards": [{"id": "inner", "card": "text.compose", "inputs": {}}],
            },
        },
        {"id": "nope", "card": "no.such", "inputs": {}},
        {"id": "ret", "card": "flow.return", "inputs": {"x": "{{ steps.later.y }}"}},
    ]
    with api(server) as client:
        answer = client.post("/api/v1/flows", json=endpoint("many", cards))
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        fields = [e["field"] for e in error["errors"]]
        assert fields == [
            "cards.0.inputs.status_code",
            "cards.1.inputs.cards.0.inputs.template",
            "cards.2.card",
            "cards.3.inputs.x",
        ]
        assert (error["field"], error["message"]) == (
            error["errors"][0]["field"],
            error["errors"][0]["message"],
        )
        unknown = error["errors"][2]["message"]
        tested = client.post("/api/v1/cards/no.such/test", json={"inputs": {}}).json()["error"]
        assert unknown == f"Card 'nope': {tested['message']}"
        assert tested["message"].startswith("There is no card 'no.such'; the cards are ")
        # one problem: no "errors" list, as before
        one = client.post("/api/v1/flows", json=endpoint("one", cards[:1])).json()["error"]
        assert "errors" not in one and one["field"] == "cards.0.inputs.status_code"


def test_a_broken_expression_is_explained_as_a_sentence_pointing_at_the_character(
    server: RunningServer,
) -> None:
    with api(server) as client:
        for template, reason in (
            ("Hi {{ steps.x[ }}", "not a valid expression: it ends too early (after character 8)."),
            ("Hi {{ user name }}", "not a valid expression: unexpected “name” at character 6."),
        ):
            answer = client.post(
                "/api/v1/flows",
                json=endpoint(
                    "words", [{"id": "a", "card": "text.compose", "inputs": {"template": template}}]
                ),
            )
            assert answer.status_code == 422, answer.text
            message = answer.json()["error"]["message"]
            assert message.endswith(reason), message
            assert "for expression" not in message and "jmespath" not in message.lower()


def test_get_then_return_with_typed_expressions(server: RunningServer, upstream: Upstream) -> None:
    create_flow(
        server,
        endpoint(
            "lookup",
            [
                {
                    "id": "user",
                    "card": "api_connector.get",
                    "inputs": {
                        "url": f"{upstream.url}/echo",
                        "query": {"id": "{{ trigger.body.id }}"},
                    },
                },
                {
                    "id": "done",
                    "card": "flow.return",
                    "inputs": {
                        "id": "{{ steps.user.body.query.id[0] }}",
                        "whole": "{{ trigger.body }}",
                        "count": "{{ trigger.body.n }}",
                        "text": "n={{ trigger.body.n }} tags={{ trigger.body.tags }}",
                        "missing": "{{ trigger.body.nope }}",
                    },
                },
            ],
        ),
    )
    response = httpx.post(
        f"{server.url}/invoke/lookup", json={"id": "u-1", "n": 3, "tags": ["a", "b"]}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": "u-1",
        "whole": {"id": "u-1", "n": 3, "tags": ["a", "b"]},
        "count": 3,
        "text": 'n=3 tags=["a","b"]',
        "missing": None,
    }


def test_return_raw(server: RunningServer) -> None:
    create_flow(
        server,
        endpoint(
            "raw",
            [
                {
                    "id": "out",
                    "card": "flow.return_raw",
                    "inputs": {
                        "status_code": 418,
                        "headers": {"Content-Type": "text/xml"},
                        "body": "<teapot>{{ trigger.query.name }}</teapot>",
                    },
                }
            ],
        ),
    )
    response = httpx.get(f"{server.url}/invoke/raw", params={"name": "earl"})
    assert response.status_code == 418
    assert response.headers["content-type"] == "text/xml"
    assert response.text == "<teapot>earl</teapot>"


def test_flow_without_return_answers_run_id_and_status(server: RunningServer) -> None:
    create_flow(
        server,
        endpoint("plain", [{"id": "c", "card": "flow.continue_if", "inputs": {"condition": True}}]),
    )
    response = httpx.post(f"{server.url}/invoke/plain")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"run_id", "status"} and body["status"] == "succeeded"


def test_failing_card_gives_500_with_run_id(server: RunningServer, upstream: Upstream) -> None:
    create_flow(
        server,
        endpoint(
            "broken",
            [
                {
                    "id": "bad",
                    "card": "api_connector.get",
                    "inputs": {"url": f"{upstream.url}/status/502"},
                }
            ],
        ),
    )
    response = httpx.post(f"{server.url}/invoke/broken")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["card"] == "bad"
    assert body["error"]["type"] == "upstream_status"
    run = wait_for_run(server, body["run_id"])
    assert run["status"] == "failed"
    assert run["cards"][0]["status_code"] == 502


def test_on_error_continue_lets_later_cards_see_the_error(
    server: RunningServer, upstream: Upstream
) -> None:
    create_flow(
        server,
        endpoint(
            "tolerant",
            [
                {
                    "id": "bad",
                    "card": "api_connector.get",
                    "on_error": "continue",
                    "inputs": {"url": f"{upstream.url}/status/404"},
                },
                {
                    "id": "out",
                    "card": "flow.return",
                    "inputs": {
                        "status": "{{ steps.bad.status_code }}",
                        "error": "{{ steps.bad.error.type }}",
                    },
                },
            ],
        ),
    )
    assert httpx.post(f"{server.url}/invoke/tolerant").json() == {
        "status": 404,
        "error": "upstream_status",
    }


def test_client_token_rules(server: RunningServer) -> None:
    flow = create_flow(
        server,
        {
            "name": "secured",
            "trigger": {"type": "api_endpoint", "alias": "secured", "security": "client_token"},
            "cards": [{"id": "out", "card": "flow.return", "inputs": {"ok": True}}],
        },
    )
    token = flow["client_token"]
    assert token and flow["invoke_url"] == f"{server.url}/invoke/secured"
    url = flow["invoke_url"]
    assert httpx.post(url).status_code == 401
    assert httpx.post(url, params={"clientToken": "wrong"}).status_code == 401
    assert httpx.post(url, headers={"x-api-client-token": token[:-1]}).status_code == 401
    assert httpx.post(url, params={"clientToken": token}).json() == {"ok": True}
    assert httpx.get(url, headers={"x-api-client-token": token}).json() == {"ok": True}
    both = httpx.post(url, params={"clientToken": token}, headers={"x-api-client-token": token})
    assert both.status_code == 422
    assert "not both" in both.json()["error"]["message"]
    with api(server) as client:
        renewed = client.post(f"/api/v1/flows/{flow['id']}/client-token").json()["client_token"]
    assert renewed != token
    assert httpx.post(url, params={"clientToken": token}).status_code == 401
    assert httpx.post(url, params={"clientToken": renewed}).status_code == 200


def test_unknown_alias_and_disabled_flow(server: RunningServer) -> None:
    assert httpx.post(f"{server.url}/invoke/nothing-here").status_code == 404
    doc = endpoint(
        "off", [{"id": "out", "card": "flow.return", "inputs": {"ok": True}}], enabled=False
    )
    create_flow(server, doc)
    assert httpx.post(f"{server.url}/invoke/off").status_code == 404


def test_prefer_respond_async_and_endpoint_timeout(
    server: RunningServer, upstream: Upstream
) -> None:
    create_flow(
        server,
        endpoint(
            "slowflow",
            [
                {
                    "id": "slow",
                    "card": "api_connector.get",
                    "inputs": {"url": f"{upstream.url}/slow?seconds=1"},
                }
            ],
        ),
    )
    create_flow(
        server,
        endpoint(
            "slowerflow",
            [
                {
                    "id": "slow",
                    "card": "api_connector.get",
                    "inputs": {"url": f"{upstream.url}/slow?seconds=3"},
                }
            ],
        ),
    )
    # answered before the run ends (its state says so), not after a wall-clock bound
    quick = httpx.post(f"{server.url}/invoke/slowerflow", headers={"Prefer": "respond-async"})
    assert quick.status_code == 202
    with api(server) as client:
        shown = client.get(f"/api/v1/runs/{quick.json()['run_id']}").json()
    assert shown["status"] in ("queued", "running"), shown
    assert wait_for_run(server, quick.json()["run_id"])["status"] == "succeeded"

    server.cf.settings.endpoint_timeout = 0.3
    timed_out = httpx.post(f"{server.url}/invoke/slowflow")
    assert timed_out.status_code == 202
    assert set(timed_out.json()) == {"run_id"}
    assert wait_for_run(server, timed_out.json()["run_id"])["status"] == "succeeded"


def test_caller_disconnect_does_not_cancel_the_run(
    server: RunningServer, upstream: Upstream
) -> None:
    flow = create_flow(
        server,
        endpoint(
            "outlive",
            [
                {
                    "id": "slow",
                    "card": "api_connector.get",
                    "inputs": {"url": f"{upstream.url}/slow?seconds=1"},
                }
            ],
        ),
    )
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/invoke/outlive", timeout=0.2)
    deadline = time.monotonic() + 10
    with api(server) as client:
        while True:
            runs = client.get("/api/v1/runs", params={"flow_id": flow["id"]}).json()
            if runs and runs[0]["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert runs[0]["status"] == "succeeded"


def test_loops_and_branches(server: RunningServer) -> None:
    create_flow(
        server,
        endpoint(
            "shape",
            [
                {
                    "id": "each",
                    "card": "list.for_each",
                    "inputs": {
                        "list": "{{ trigger.body.users }}",
                        "cards": [
                            {
                                "id": "pick",
                                "card": "object.construct",
                                "inputs": {"name": "{{ loop.item.name }}", "i": "{{ loop.index }}"},
                            }
                        ],
                    },
                },
                {
                    "id": "vip",
                    "card": "branch.if_else",
                    "inputs": {
                        "condition": "{{ trigger.body.vip }}",
                        "then": [
                            {"id": "gold", "card": "object.construct", "inputs": {"tier": "gold"}}
                        ],
                        "else": [
                            {
                                "id": "std",
                                "card": "object.construct",
                                "inputs": {"tier": "standard"},
                            }
                        ],
                    },
                },
                {
                    "id": "out",
                    "card": "flow.return",
                    "inputs": {
                        "names": "{{ steps.each.output[*].pick.output.name }}",
                        "branch": "{{ steps.vip.branch }}",
                        "tier": "{{ values(steps.vip.outputs)[0].output.tier }}",
                    },
                },
            ],
        ),
    )
    body = {"users": [{"name": "ada"}, {"name": "alan"}], "vip": False}
    assert httpx.post(f"{server.url}/invoke/shape", json=body).json() == {
        "names": ["ada", "alan"],
        "branch": "else",
        "tier": "standard",
    }


def test_continue_if_ends_the_run_successfully(server: RunningServer) -> None:
    create_flow(
        server,
        endpoint(
            "gate",
            [
                {
                    "id": "gate",
                    "card": "flow.continue_if",
                    "inputs": {"condition": "{{ trigger.body.go }}"},
                },
                {"id": "out", "card": "flow.return", "inputs": {"went": True}},
            ],
        ),
    )
    assert httpx.post(f"{server.url}/invoke/gate", json={"go": True}).json() == {"went": True}
    stopped = httpx.post(f"{server.url}/invoke/gate", json={"go": False}).json()
    assert stopped["status"] == "succeeded"
    run = wait_for_run(server, stopped["run_id"])
    assert [c["id"] for c in run["cards"]] == ["gate"]


def test_manual_run_and_export(server: RunningServer) -> None:
    flow = create_flow(
        server,
        {
            "name": "by hand",
            "cards": [
                {
                    "id": "echo",
                    "card": "object.construct",
                    "inputs": {"got": "{{ trigger.body.x }}"},
                }
            ],
            "save_data": True,
        },
    )
    with api(server) as client:
        run = client.post(f"/api/v1/flows/{flow['id']}/runs", json={"inputs": {"x": 42}})
        assert run.status_code == 201, run.text
        assert run.json()["status"] == "succeeded"
        assert run.json()["cards"][0]["outputs"] == {"output": {"got": 42}}
        exported = client.get(f"/api/v1/flows/{flow['id']}/export").text
        assert "name: by hand" in exported
        as_json = client.get(f"/api/v1/flows/{flow['id']}/export", params={"format": "json"}).json()
        assert as_json["cards"][0]["id"] == "echo"


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        ({"name": "x", "cards": [{"id": "a", "card": "nope.card"}]}, "cards.0.card", "no card"),
        (
            {
                "name": "x",
                "cards": [
                    {
                        "id": "a",
                        "card": "api_connector.get",
                        "connection": "ghost",
                        "inputs": {"url": "http://x/"},
                    }
                ],
            },
            "cards.0.connection",
            "no connection",
        ),
        (
            {
                "name": "x",
                "cards": [
                    {"id": "a", "card": "object.construct"},
                    {"id": "a", "card": "object.construct"},
                ],
            },
            "cards.1.id",
            "used by another card",
        ),
        (
            {
                "name": "x",
                "cards": [
                    {
                        "id": "a",
                        "card": "object.construct",
                        "inputs": {"v": "{{ steps.b.output }}"},
                    },
                    {"id": "b", "card": "object.construct"},
                ],
            },
            "cards.0.inputs.v",
            "runs later",
        ),
        (
            {
                "name": "x",
                "cards": [
                    {"id": "a", "card": "object.construct", "inputs": {"v": "{{ steps.zzz }}"}}
                ],
            },
            "cards.0.inputs.v",
            "no card 'zzz'",
        ),
        (
            {
                "name": "x",
                "cards": [
                    {
                        "id": "a",
                        "card": "object.get",
                        "inputs": {"object": {}, "path": "x", "v": "{{ a[ }}"},
                    }
                ],
            },
            "cards.0.inputs.v",
            "",
        ),
        (
            {"name": "x", "cards": [{"id": "c", "card": "api_connector.close", "inputs": {}}]},
            "cards.0.card",
            "API-endpoint",
        ),
        (
            {"name": "x", "cards": [{"id": "g", "card": "api_connector.get", "inputs": {}}]},
            "cards.0.inputs.url",
            "required",
        ),
        ({"name": "x", "trigger": {"type": "api_endpoint"}, "cards": []}, "trigger.alias", "alias"),
        ({"name": "x", "cards": [{"id": "bad-id", "card": "object.construct"}]}, "cards.0.id", ""),
        (
            {
                "name": "x",
                "cards": [
                    {
                        "id": "l",
                        "card": "list.for_each",
                        "inputs": {"list": [], "cards": [{"id": "n", "card": "nope"}]},
                    }
                ],
            },
            "cards.0.inputs.cards.0.card",
            "no card",
        ),
        (
            {
                "name": "x",
                "cards": [
                    {
                        "id": "l",
                        "card": "list.for_each",
                        "inputs": {
                            "list": [],
                            "cards": [
                                {
                                    "id": "b",
                                    "card": "branch.if_else",
                                    "inputs": {"condition": True, "else": [{"id": "n"}]},
                                }
                            ],
                        },
                    }
                ],
            },
            "cards.0.inputs.cards.0.inputs.else.0.card",
            "required",
        ),
        (
            {
                "name": "x",
                "cards": [{"id": "b", "card": "branch.if_else", "inputs": {"then": {}}}],
            },
            "cards.0.inputs.then",
            "must be a list of cards",
        ),
    ],
)
def test_invalid_flows_name_card_and_field(
    server: RunningServer, document: dict[str, Any], field: str, words: str
) -> None:
    with api(server) as client:
        response = client.post("/api/v1/flows", json=document)
        imported = client.post("/api/v1/flows/import", json={"content": json.dumps(document)})
    for answer in (response, imported):
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["type"] == "invalid_input"
        assert error["field"] == field
        assert words in error["message"]


def test_card_test_names_a_nested_card_that_does_not_parse(server: RunningServer) -> None:
    with api(server) as client:
        response = client.post(
            "/api/v1/cards/list.for_each/test",
            json={"inputs": {"list": [1], "cards": [{"id": "n", "card": "object.get", "x": 1}]}},
        )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "inputs.cards.0.x"
    assert error["message"] == "inputs.cards.0.x: unknown field"


def test_duplicate_alias_and_connection_in_use(server: RunningServer) -> None:
    server.cf.connections.create("svc", "none", {})
    doc = endpoint(
        "dup",
        [
            {
                "id": "g",
                "card": "api_connector.get",
                "connection": "svc",
                "inputs": {"url": "http://127.0.0.1:9/"},
            }
        ],
    )
    create_flow(server, doc)
    with api(server) as client:
        again = client.post("/api/v1/flows", json={**doc, "name": "other"})
        assert again.status_code == 409 and again.json()["error"]["field"] == "trigger.alias"
        refused = client.delete("/api/v1/connections/svc")
        assert refused.status_code == 409
        assert refused.json()["error"]["type"] == "connection_in_use"
        assert "flow dup" in refused.json()["error"]["message"]


def test_saved_data_is_redacted(server: RunningServer, upstream: Upstream) -> None:
    server.cf.connections.create(
        "key", "custom", {"header_name": "X-Secret-Key", "header_value": "SENTINEL-hv-123"}
    )
    server.cf.connections.create("basic", "basic", {"username": "u", "password": "SENTINEL-pw-456"})
    flow = create_flow(
        server,
        {
            "name": "redact",
            "trigger": {"type": "api_endpoint", "alias": "redact", "security": "client_token"},
            "save_data": True,
            "cards": [
                {
                    "id": "a",
                    "card": "api_connector.get",
                    "connection": "key",
                    "inputs": {"url": f"{upstream.url}/echo"},
                },
                {
                    "id": "b",
                    "card": "api_connector.get",
                    "connection": "basic",
                    "inputs": {
                        "url": f"{upstream.url}/echo",
                        "headers": {"Cookie": "sid=SENTINEL-cookie"},
                    },
                },
                {
                    "id": "c",
                    "card": "object.construct",
                    "inputs": {"password": "{{ trigger.body.password }}", "api_token": "x"},
                },
            ],
        },
    )
    response = httpx.post(
        f"{server.url}/invoke/redact",
        params={"clientToken": flow["client_token"]},
        json={"password": "SENTINEL-body-pw"},
    )
    run = wait_for_run(server, response.json()["run_id"])
    assert run["status"] == "succeeded", run
    text = str(run)
    for secret in (
        "SENTINEL-hv-123",
        "SENTINEL-pw-456",
        "SENTINEL-cookie",
        "SENTINEL-body-pw",
        flow["client_token"],
    ):
        assert secret not in text, secret
    import base64

    assert base64.b64encode(b"u:SENTINEL-pw-456").decode() not in text
    assert run["cards"][0]["outputs"]["status_code"] == 200  # the rest is kept
    assert run["trigger_data"]["query"] == {}  # the client token is not trigger data
    assert run["cards"][2]["outputs"]["output"]["password"] == "[redacted]"


def test_xml_from_raw_request_parsed_and_returned(
    server: RunningServer, upstream: Upstream
) -> None:
    create_flow(
        server,
        endpoint(
            "soap",
            [
                {
                    "id": "raw",
                    "card": "api_connector.raw_request",
                    "inputs": {"url": f"{upstream.url}/xml", "method": "GET"},
                },
                {"id": "xml", "card": "xml.parse", "inputs": {"text": "{{ steps.raw.body }}"}},
                {
                    "id": "out",
                    "card": "flow.return",
                    "inputs": {
                        "card": '{{ steps.xml.output."soap:Envelope"."soap:Body"'
                        ".GetCardResponse.Card }}"
                    },
                },
            ],
        ),
    )
    response = httpx.post(f"{server.url}/invoke/soap")
    assert response.status_code == 200, response.text
    assert response.json() == {"card": {"Id": "42", "Name": "hello"}}


@pytest.mark.parametrize(
    "payload",
    [
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
        '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><l>&d;</l>',
    ],
)
def test_xxe_and_billion_laughs_are_refused(server: RunningServer, payload: str) -> None:
    create_flow(
        server,
        endpoint(
            "parse",
            [
                {"id": "xml", "card": "xml.parse", "inputs": {"text": "{{ trigger.raw }}"}},
                {
                    "id": "out",
                    "card": "flow.return",
                    "inputs": {"parsed": "{{ steps.xml.output }}"},
                },
            ],
        ),
    )
    response = httpx.post(
        f"{server.url}/invoke/parse", content=payload, headers={"Content-Type": "text/xml"}
    )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["card"] == "xml" and error["type"] == "invalid_input"
    assert "root:" not in response.text and "aaaaaaaaaa" * 10 not in response.text


def test_stale_running_runs_are_failed_on_start(cf: Any) -> None:
    from datetime import UTC, datetime

    from cardflow.server.asgi import create_app
    from cardflow.store.models import Run

    with cf.db.session() as session:
        session.add(
            Run(id="run_stale", trigger="manual", status="running", started_at=datetime.now(UTC))
        )
    from fastapi import FastAPI

    app: FastAPI = create_app(cf)

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            pass

    import asyncio

    asyncio.run(lifespan())
    run = cf.runs.get("run_stale")
    assert run.status == "failed"
    assert run.error is not None and run.error.type == "interrupted"


def test_shutdown_ends_or_hands_back_unfinished_runs(
    cf: Any, upstream: Upstream, server_port: int
) -> None:
    from tests.conftest import serving

    cf.settings.shutdown_grace = 0.2
    with serving(cf, server_port) as running:
        create_flow(
            running,
            endpoint(
                "long",
                [
                    {
                        "id": "slow",
                        "card": "api_connector.get",
                        "inputs": {"url": f"{upstream.url}/slow?seconds=5"},
                    }
                ],
            ),
        )
        accepted = httpx.post(f"{running.url}/invoke/long", headers={"Prefer": "respond-async"})
        assert accepted.status_code == 202
        time.sleep(0.2)
    run = cf.runs.get(accepted.json()["run_id"])
    if cf.db.is_sqlite:  # runs live in the process: one that stops ends them
        assert run.status == "failed"
        assert run.error is not None and run.error.type == "interrupted"
        assert run.ended_at is not None
    else:  # queued: the worker gave it back, for the next worker to go on with
        assert run.status == "queued", run
        assert [event.type for event in run.events] == ["handed_back"]
        assert run.ended_at is None
        assert cf.run_states.load(run.id) is not None


def test_run_history_retention(cf: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from cardflow.store.models import Run

    old = datetime.now(UTC) - timedelta(days=31)
    with cf.db.session() as session:
        session.add(Run(id="run_old", trigger="manual", status="succeeded", started_at=old))
        session.add(Run(id="run_old_failed", trigger="manual", status="failed", started_at=old))
        session.add(Run(id="run_old_queued", trigger="manual", status="queued", started_at=old))
        session.add(
            Run(id="run_new", trigger="manual", status="succeeded", started_at=datetime.now(UTC))
        )
    for run_id in ("run_old_failed", "run_old_queued"):
        cf.run_states.save(run_id, {"next": 0}, 0)  # a retry point; a queued run's progress
    removed = cf.runs.prune(datetime.now(UTC) - timedelta(days=cf.settings.run_retention_days))
    assert removed == 2
    assert sorted(r.id for r in cf.runs.list()) == ["run_new", "run_old_queued"]
    assert cf.run_states.run_ids() == ["run_old_queued"]  # the retry point went with its run


def test_the_builders_test_state_is_kept_bounded_and_goes_with_the_flow(
    server: RunningServer,
) -> None:
    flow = create_flow(server, endpoint("kept", [{"id": "r", "card": "flow.return", "inputs": {}}]))
    url = f"/api/v1/flows/{flow['id']}/test-state"
    with api(server) as client:
        assert client.get(url).json() == {"sample": "", "results": {}, "updated_at": None}
        saved = client.put(url, json={"sample": '{"a": 1}', "results": {"r": {"ok": True}}})
        assert saved.status_code == 200, saved.text
        again = client.get(url).json()
        assert again["sample"] == '{"a": 1}' and again["results"] == {"r": {"ok": True}}
        huge = client.put(url, json={"sample": "", "results": {"r": "x" * 5_000_000}})
        assert huge.status_code in (413, 422), huge.text
        assert client.put("/api/v1/flows/flw_nope/test-state", json={}).status_code == 404
        assert client.put(url, json={"nope": 1}).status_code == 422
        assert client.delete(f"/api/v1/flows/{flow['id']}").status_code == 204
        assert client.get(url).status_code == 404
