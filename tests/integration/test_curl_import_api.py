"""POST /api/v1/cards/from-curl over a real server: the card, the proposal (the secret only in
this answer), 422 naming `command`, and the secret in no log line."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.conftest import RunningServer

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
