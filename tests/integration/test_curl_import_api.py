"""POST /api/v1/cards/from-curl over a real server: the card, the proposal (the secret only in
this answer), 422 naming `command`, and the secret in no log line."""

from __future__ import annotations

import logging
from urllib.parse import quote, quote_plus

import httpx
import pytest

from tests.conftest import RunningServer
from tests.support.upstream import Upstream

SENTINEL = "s3cr3t-SENTINEL-curl-4d2e"


def test_from_curl_answers_the_card_and_a_connection_proposal(
    server: RunningServer, captured_logs: pytest.LogCaptureFixture
) -> None:
    command = (
        "curl https://api.example.com/v1/users?limit=5 \\\n"
        f"  -H 'Authorization: Bearer {SENTINEL}' \\\n"
        "  -H 'Accept: application/json'"
    )
    response = httpx.post(
        f"{server.url}/api/v1/cards/from-curl", json={"command": command}, headers=server.headers
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["card"] == {
        "card": "api_connector.get",
        "inputs": {
            "url": "https://api.example.com/v1/users",
            "query": {"limit": "5"},
            "headers": {"Accept": "application/json"},
        },
    }
    assert data["connection"] == {
        "name": "example.com - Bearer",
        "auth_type": "bearer",
        "config": {"token": SENTINEL},
        "allowed_hosts": ["api.example.com"],
        "secret_fields": ["token"],
        "to_fill": [],
    }
    assert data["warnings"] == []
    # The proposal is only this answer's: nothing stored, nothing logged.
    assert httpx.get(f"{server.url}/api/v1/connections", headers=server.headers).json() == []
    assert all(SENTINEL not in record.getMessage() for record in captured_logs.records)
    assert SENTINEL not in captured_logs.text

    # The proposal is what POST /connections takes (name, auth_type, config, allowed_hosts).
    created = httpx.post(
        f"{server.url}/api/v1/connections",
        json={**{k: data["connection"][k] for k in ("name", "auth_type", "config")},
              "allowed_hosts": data["connection"]["allowed_hosts"]},
        headers=server.headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert SENTINEL not in created.text


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("ls -la", "not a curl command"),
        (f"curl -H 'X-Api-Key: {SENTINEL}' 'https://api.example.com", "quote is not closed"),
        (f"curl -u me:{SENTINEL}", "no URL"),
        ("curl -X 'BAD METHOD' https://api.example.com", "not an HTTP method"),
    ],
)
def test_from_curl_bad_input_is_422_naming_command(
    server: RunningServer, caplog: pytest.LogCaptureFixture, command: str, says: str
) -> None:
    caplog.set_level(logging.DEBUG)
    response = httpx.post(
        f"{server.url}/api/v1/cards/from-curl", json={"command": command}, headers=server.headers
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_input" and error["field"] == "command"
    assert says in error["message"]
    assert SENTINEL not in response.text and SENTINEL not in caplog.text


def test_from_curl_needs_a_token(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/api/v1/cards/from-curl", json={"command": "curl x"})
    assert response.status_code == 401


def test_copy_as_curl_gives_the_command_with_placeholders_never_the_secret(
    server: RunningServer,
) -> None:
    created = httpx.post(
        f"{server.url}/api/v1/connections",
        json={"name": "Acme key", "auth_type": "custom",
              "config": {"header_name": "X-API-Key", "header_value": SENTINEL}},
        headers=server.headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    response = httpx.post(
        f"{server.url}/api/v1/cards/api_connector.get/curl",
        json={"connection": "Acme key", "inputs": {"url": "https://api.example.com/v1/items",
                                                    "query": {"page": 2}}},
        headers=server.headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json() == {
        "command": "curl 'https://api.example.com/v1/items?page=2' \\\n"
        "  -H 'X-API-Key: <header_value>'"
    }
    assert SENTINEL not in response.text
    missing = httpx.post(
        f"{server.url}/api/v1/cards/api_connector.get/curl",
        json={"connection": "nope", "inputs": {"url": "https://x.example"}},
        headers=server.headers,
    )
    assert missing.status_code == 404


def test_a_card_test_answers_its_request_as_curl_filled_in_with_placeholders(
    server: RunningServer, upstream: Upstream
) -> None:
    """Copy as cURL in a test result: the request as the test sent it — {{ }} filled in
    from the test data, the query connection's key a placeholder in place of the card's
    same-name parameter, and no secret in any form."""
    key = f"{SENTINEL}-k&="
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        created = api.post(
            "/api/v1/connections",
            json={"name": "Weather key", "auth_type": "query",
                  "config": {"param_name": "appid", "param_value": key},
                  "allowed_hosts": ["127.0.0.1"]},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        tested = api.post(
            "/api/v1/cards/api_connector.post/test",
            json={
                "connection": "Weather key",
                "inputs": {
                    "url": f"{upstream.url}/echo/{{{{ trigger.body.city }}}}",
                    "query": {"units": "metric", "appid": "typed-by-hand"},
                    "headers": {"X-Trace": "{{ steps.first.trace }}"},
                    "body": {"note": "{{ steps.first.note }}", "n": 2},
                },
                "context": {
                    "trigger": {"body": {"city": "Lyon"}},
                    # a value that happens to hold the secret: blanked in the command
                    "steps": {"first": {"trace": "t-42", "note": f"says {key}"}},
                },
            },
        )
    assert tested.status_code == 200, tested.text
    result = tested.json()
    assert result["ok"] is True, result
    assert result["curl"] == (
        f"curl -X POST '{upstream.url}/echo/Lyon?units=metric&appid=<param_value>' \\\n"
        "  -H 'X-Trace: t-42' \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        """  --data-raw '{"note": "says [redacted]", "n": 2}'"""
    )
    for form in (key, quote(key, safe=""), quote_plus(key), SENTINEL):
        assert form not in tested.text
    # Close sends nothing: no command
    closed = httpx.post(
        f"{server.url}/api/v1/cards/api_connector.close/test",
        json={"inputs": {"status_code": 200}},
        headers=server.headers,
    )
    assert closed.status_code == 200, closed.text
    assert "curl" not in closed.json()
