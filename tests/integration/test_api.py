"""REST API v1 over a real uvicorn server on loopback."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from cardflow.server.asgi import create_app
from tests.conftest import RunningServer
from tests.support.upstream import Upstream

SENTINEL = "pw-SENTINEL-91c2"


def api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def test_every_api_route_needs_a_token(server: RunningServer) -> None:
    spec = create_app(server.cf).openapi()
    routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, operations in spec["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    ]
    assert len(routes) >= 8
    with httpx.Client(base_url=server.url) as anonymous:
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer cf_wrong"}, {"Authorization": "Basic x"}):
                response = anonymous.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers)
                assert response.json()["error"]["type"] == "unauthorized"


def test_healthz_and_docs_need_no_token(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/docs").status_code == 200
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "/api/v1/connections" in spec["paths"]


def test_connection_crud_keeps_secrets_write_only(server: RunningServer) -> None:
    with api(server) as client:
        created = client.post(
            "/api/v1/connections",
            json={
                "name": "Svc - Basic - bot",
                "auth_type": "basic",
                "config": {"username": "bot", "password": SENTINEL},
            },
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["config"] == {"username": "bot", "password": {"set": True}}
        assert body["status"] == "ready"
        cid = body["id"]
        for response in (
            client.get("/api/v1/connections"),
            client.get(f"/api/v1/connections/{cid}"),
            client.get("/api/v1/connections/Svc - Basic - bot"),
        ):
            assert response.status_code == 200
            assert SENTINEL not in response.text
        patched = client.patch(f"/api/v1/connections/{cid}", json={"config": {"username": "bot2"}})
        assert patched.status_code == 200
        assert patched.json()["config"] == {"username": "bot2", "password": {"set": True}}
        assert server.cf.connections.load(cid).config.password == SENTINEL  # type: ignore[attr-defined]
        echoed = client.patch(
            f"/api/v1/connections/{cid}", json={"config": {"password": {"set": True}}}
        )
        assert echoed.status_code == 200
        assert server.cf.connections.load(cid).config.password == SENTINEL  # type: ignore[attr-defined]
        assert client.delete(f"/api/v1/connections/{cid}").status_code == 200
        gone = client.get(f"/api/v1/connections/{cid}")
        assert gone.status_code == 404
        assert gone.json()["error"]["type"] == "connection_not_found"


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"name": "a", "auth_type": "oauth2000", "config": {}}, 422, "auth_type"),
        ({"name": "", "auth_type": "none"}, 422, "name"),
        ({"auth_type": "none"}, 422, "name"),
        ({"name": 5, "auth_type": "none"}, 422, "name"),
        ({"name": "a", "auth_type": "basic", "config": {}}, 422, "config.username"),
        ({"name": "a", "auth_type": "basic", "config": "x"}, 422, "config"),
        (
            {"name": "a", "auth_type": "custom", "config": {"header_name": "X-Key"}},
            422,
            "config.header_value",
        ),
        (
            {
                "name": "a",
                "auth_type": "custom",
                "config": {"header_name": "X:Key", "header_value": "v"},
            },
            422,
            "config.header_name",
        ),
        (
            {
                "name": "a",
                "auth_type": "custom",
                "config": {"header_name": "X-Key", "header_value": "v\r\nEvil: 1"},
            },
            422,
            "config.header_value",
        ),
        (
            {
                "name": "a",
                "auth_type": "client_credentials",
                "config": {
                    "token_url": "file:///etc/passwd",
                    "client_id": "c",
                    "client_secret": "s",
                },
            },
            422,
            "config.token_url",
        ),
        (
            {
                "name": "a",
                "auth_type": "client_credentials",
                "config": {"token_url": "http://127.0.0.1/t", "client_id": "c"},
            },
            422,
            "config.client_secret",
        ),
        (
            {
                "name": "a",
                "auth_type": "client_credentials",
                "config": {
                    "token_url": "http://127.0.0.1/t",
                    "client_id": "c",
                    "client_secret": "s",
                    "token_auth_method": "jwt",
                },
            },
            422,
            "config.token_auth_method",
        ),
        ({"name": "a", "auth_type": "none", "extra": 1}, 422, "extra"),
    ],
)
def test_bad_connection_input_names_the_field(
    server: RunningServer, payload: dict[str, Any], status: int, field: str
) -> None:
    with api(server) as client:
        response = client.post("/api/v1/connections", json=payload)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_input"
    assert error["field"] == field
    assert error["message"]
    assert "Traceback" not in response.text


def test_duplicate_name_is_a_conflict(server: RunningServer) -> None:
    with api(server) as client:
        payload = {"name": "dup", "auth_type": "none"}
        assert client.post("/api/v1/connections", json=payload).status_code == 201
        second = client.post("/api/v1/connections", json=payload)
        assert second.status_code == 409
        assert second.json()["error"] == {
            "type": "conflict",
            "message": "A connection named 'dup' already exists.",
            "field": "name",
        }
        other = client.post("/api/v1/connections", json={"name": "dup2", "auth_type": "none"})
        rename = client.patch(f"/api/v1/connections/{other.json()['id']}", json={"name": "dup"})
        assert rename.status_code == 409


def test_invalid_json_body(server: RunningServer) -> None:
    with api(server) as client:
        response = client.post(
            "/api/v1/connections", content=b"{nope", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_input"


def test_card_test_endpoint(server: RunningServer, upstream: Upstream) -> None:
    with api(server) as client:
        client.post(
            "/api/v1/connections",
            json={
                "name": "key",
                "auth_type": "custom",
                "config": {"header_name": "api_key", "header_value": SENTINEL},
            },
        )
        response = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"connection": "key", "inputs": {"url": f"{upstream.url}/json"}},
        )
        assert response.status_code == 200
        result = response.json()
        # PRODUCT.md's fields, plus "answer" (what a Return / Close card would answer) and,
        # for a request card, "curl" (the request as sent, its secret as a placeholder)
        assert set(result) == {"ok", "outputs", "error", "duration_ms", "run_id", "answer", "curl"}
        assert result["curl"].startswith("curl ") and SENTINEL not in result["curl"]
        assert result["ok"] is True and result["answer"] is None
        assert result["outputs"]["status_code"] == 200
        assert result["outputs"]["body"] == {"hello": "world", "n": 1}
        assert result["outputs"]["headers"]["content-type"].startswith("application/json")
        run = client.get(f"/api/v1/runs/{result['run_id']}").json()
        assert run["status"] == "succeeded"
        assert run["cards"][0]["card"] == "api_connector.get"
        assert run["cards"][0]["status_code"] == 200
        assert any(r["id"] == result["run_id"] for r in client.get("/api/v1/runs").json())

        failed = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"connection": "key", "inputs": {"url": f"{upstream.url}/status/503"}},
        ).json()
        assert failed["ok"] is False
        assert failed["error"]["type"] == "upstream_status"
        assert failed["error"]["status_code"] == 503
        assert client.get(f"/api/v1/runs/{failed['run_id']}").json()["status"] == "failed"


@pytest.mark.parametrize(
    ("path", "payload", "status", "type_", "field"),
    [
        ("/api/v1/cards/nope/test", {}, 404, "card_not_found", "card_id"),
        (
            "/api/v1/cards/api_connector.get/test",
            {"connection": "missing", "inputs": {"url": "http://127.0.0.1:9/"}},
            404,
            "connection_not_found",
            "connection",
        ),
        (
            "/api/v1/cards/api_connector.get/test",
            {"inputs": {"url": "javascript:alert(1)"}},
            422,
            "invalid_input",
            "inputs.url",
        ),
        (
            "/api/v1/cards/api_connector.get/test",
            {"inputs": {"url": "http://x/", "headers": {"X": "a\nb"}}},
            422,
            "invalid_input",
            "inputs.headers.X",
        ),
        (
            "/api/v1/cards/api_connector.get/test",
            {"inputs": {"url": "http://x/"}, "timeout": -1},
            422,
            "invalid_input",
            "timeout",
        ),
        (
            "/api/v1/cards/api_connector.raw_request/test",
            {"inputs": {"url": "http://x/", "method": "GE T"}},
            422,
            "invalid_input",
            "inputs.method",
        ),
        ("/api/v1/runs/run_nope", None, 404, "run_not_found", "run_id"),
    ],
)
def test_card_and_run_errors(
    server: RunningServer, path: str, payload: Any, status: int, type_: str, field: str
) -> None:
    with api(server) as client:
        response = client.post(path, json=payload) if payload is not None else client.get(path)
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == type_
    assert response.json()["error"]["field"] == field


def test_server_keeps_serving_after_hostile_upstreams(
    server: RunningServer, upstream: Upstream
) -> None:
    with api(server) as client:
        for path in ("/big?mib=50", "/reset", "/bad-json"):
            response = client.post(
                "/api/v1/cards/api_connector.get/test",
                json={"inputs": {"url": upstream.url + path}},
            )
            assert response.status_code == 200
            assert response.json()["ok"] is False
        hang = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"inputs": {"url": f"{upstream.url}/hang"}, "timeout": 0.3},
        ).json()
        assert hang["error"]["type"] == "timeout"
        assert client.get("/api/v1/connections").status_code == 200
