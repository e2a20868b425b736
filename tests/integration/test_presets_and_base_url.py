"""Provider presets over REST, and a connection's base_url: a card's relative URL reaches
the real loopback upstream under it, and nothing in the URL can take it elsewhere."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.support.upstream import Upstream

TOKEN = "base-url-SENTINEL-token"


def _api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def _bearer(client: httpx.Client, base_url: str | None, hosts: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"API - {secrets.token_hex(3)}",
        "auth_type": "bearer",
        "config": {"token": TOKEN},
        "allowed_hosts": hosts,
    }
    if base_url is not None:
        body["base_url"] = base_url
    response = client.post("/api/v1/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _test(client: httpx.Client, connection: str | None, **inputs: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/cards/api_connector.get/test", json={"connection": connection, "inputs": inputs}
    )
    assert response.status_code in (200, 422), response.text
    answer: dict[str, Any] = response.json()
    return answer


def _error_field(answer: dict[str, Any]) -> str | None:
    error = answer.get("error") or {}
    return error.get("field")


# -- presets -----------------------------------------------------------------------------


def test_presets_are_listed_searched_and_filled(server: RunningServer) -> None:
    with _api(server) as client:
        every = client.get("/api/v1/connection-presets").json()
        assert len(every) >= 30
        github = next(p for p in every if p["id"] == "github")
        assert github["auth_type"] == "oauth" and github["base_url"] == "https://api.github.com"
        assert github["docs_url"].startswith("https://docs.github.com/")
        assert github["test_request"] == {"method": "GET", "path": "/user"}

        okta = client.get("/api/v1/connection-presets", params={"q": "okta custom"}).json()
        assert {p["id"] for p in okta} == {"okta-custom", "okta-service"}
        too_long = client.get("/api/v1/connection-presets", params={"q": "x" * 201})
        assert too_long.status_code == 422

        one = client.get("/api/v1/connection-presets/okta-custom").json()
        assert [p["name"] for p in one["placeholders"]] == ["okta_domain", "auth_server_id"]
        assert client.get("/api/v1/connection-presets/nope").json()["error"]["type"] == (
            "preset_not_found"
        )

        filled = client.post(
            "/api/v1/connection-presets/okta-custom/fill",
            json={"params": {"okta_domain": "acme.okta.com", "auth_server_id": "aus9"}},
        )
        assert filled.status_code == 200, filled.text
        assert filled.json()["config"]["token_url"] == "https://acme.okta.com/oauth2/aus9/v1/token"
        assert filled.json()["allowed_hosts"] == ["acme.okta.com"]

        missing = client.post("/api/v1/connection-presets/okta-custom/fill", json={})
        assert missing.status_code == 422
        assert missing.json()["error"]["field"] == "preset_params.okta_domain"
        assert "okta_domain (Okta domain" in missing.json()["error"]["message"]
        for hostile in ("evil.example/x", "a@evil.example", "acme.okta.com:1"):
            bad = client.post(
                "/api/v1/connection-presets/okta/fill", json={"params": {"okta_domain": hostile}}
            )
            assert bad.status_code == 422
            assert bad.json()["error"]["field"] == "preset_params.okta_domain"


def test_a_connection_is_created_from_a_preset(server: RunningServer) -> None:
    with _api(server) as client:
        response = client.post(
            "/api/v1/connections",
            json={
                "name": "Okta - acme",
                "preset": "okta-custom",
                "preset_params": {"okta_domain": "acme.okta.com"},
                "config": {"client_id": "0oa1", "client_secret": "preset-SENTINEL-secret"},
            },
        )
        assert response.status_code == 201, response.text
        view = response.json()
        assert view["auth_type"] == "oauth" and view["status"] == "needs_authorization"
        assert view["config"]["authorize_url"] == (
            "https://acme.okta.com/oauth2/default/v1/authorize"
        )
        assert view["config"]["scope"] == "openid profile email offline_access"
        assert view["config"]["client_secret"] == {"set": True}
        assert view["allowed_hosts"] == ["acme.okta.com"]
        assert view["base_url"] == "https://acme.okta.com"
        assert "preset-SENTINEL-secret" not in response.text

        missing = client.post(
            "/api/v1/connections",
            json={"name": "Okta - b", "preset": "okta", "config": {"client_id": "x"}},
        )
        assert missing.status_code == 422
        assert missing.json()["error"]["field"] == "preset_params.okta_domain"
        wrong = client.post(
            "/api/v1/connections",
            json={"name": "x", "preset": "stripe", "auth_type": "basic"},
        )
        assert wrong.json()["error"]["field"] == "auth_type"
        orphan = client.post(
            "/api/v1/connections",
            json={"name": "x", "auth_type": "none", "preset_params": {"a": "b"}},
        )
        assert orphan.json()["error"]["field"] == "preset_params"
        no_type = client.post("/api/v1/connections", json={"name": "x"})
        assert no_type.json()["error"]["field"] == "auth_type"


# -- base_url -----------------------------------------------------------------------------


def test_a_relative_url_is_sent_under_the_base_url(
    server: RunningServer, upstream: Upstream
) -> None:
    with _api(server) as client:
        connection = _bearer(client, f"{upstream.url}/echo/api/", ["127.0.0.1"])
        assert connection["base_url"] == f"{upstream.url}/echo/api"
        for url, path in (("/user", "/echo/api/user"), ("repos/a/b", "/echo/api/repos/a/b")):
            answer = _test(client, connection["id"], url=url, query={"per_page": 5})
            assert answer["ok"], answer
            echoed = answer["outputs"]["body"]
            assert echoed["path"] == path and echoed["query"] == {"per_page": ["5"]}
            # the token went (shown redacted: the test result is redacted like run data)
            assert ["Authorization", "Bearer [redacted]"] in echoed["headers"]
            sent = upstream.requests[-1]
            assert sent["path"] == path and ["Authorization", f"Bearer {TOKEN}"] in sent["headers"]
        # an absolute URL still works as it is
        whole = _test(client, connection["id"], url=f"{upstream.url}/echo/whole")
        assert whole["ok"] and whole["outputs"]["body"]["path"] == "/echo/whole"


@pytest.mark.parametrize(
    "url",
    ["../x", "/echo/../../json", "%2e%2e/json", "/a/%2E%2E/%2e%2e/json", "//127.0.0.1/echo"],
)
def test_a_relative_url_cannot_leave_the_base_url(
    server: RunningServer, upstream: Upstream, url: str
) -> None:
    with _api(server) as client:
        connection = _bearer(client, f"{upstream.url}/echo/api", ["127.0.0.1"])
        before = len(upstream.requests)
        answer = _test(client, connection["id"], url=url)
        assert not answer.get("ok")
        assert _error_field(answer) == "inputs.url"
        assert len(upstream.requests) == before  # nothing was sent


def test_a_relative_url_needs_a_connection_with_a_base_url(
    server: RunningServer, upstream: Upstream
) -> None:
    with _api(server) as client:
        without = _bearer(client, None, ["127.0.0.1"])
        answer = _test(client, without["id"], url="/user")
        assert _error_field(answer) == "inputs.url"
        assert "no base_url" in answer["error"]["message"]
        alone = _test(client, None, url="/user")
        assert _error_field(alone) == "inputs.url"

        # a flow with such a card: refused at save without a connection, saved with one
        card = {"id": "me", "card": "api_connector.get", "inputs": {"url": "/user"}}
        document = {
            "name": f"flow {secrets.token_hex(3)}",
            "trigger": {"type": "manual"},
            "cards": [card],
        }
        refused = client.post("/api/v1/flows", json=document)
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "cards.0.inputs.url"
        connection = _bearer(client, f"{upstream.url}/echo", ["127.0.0.1"])
        card["connection"] = connection["name"]
        saved = client.post("/api/v1/flows", json=document)
        assert saved.status_code == 201, saved.text


def test_base_url_is_checked_and_changed(server: RunningServer, upstream: Upstream) -> None:
    with _api(server) as client:
        for base_url in ("ftp://127.0.0.1/x", "127.0.0.1/x", "https://u:p@127.0.0.1/"):
            bad = client.post(
                "/api/v1/connections",
                json={"name": "b", "auth_type": "none", "base_url": base_url},
            )
            assert bad.status_code == 422 and bad.json()["error"]["field"] == "base_url"
        other_host = client.post(
            "/api/v1/connections",
            json={
                "name": "b",
                "auth_type": "bearer",
                "config": {"token": TOKEN},
                "allowed_hosts": ["api.example.com"],
                "base_url": upstream.url,
            },
        )
        assert other_host.status_code == 422
        assert other_host.json()["error"]["field"] == "base_url"
        assert "not among the connection's allowed_hosts" in other_host.json()["error"]["message"]

        connection = _bearer(client, None, ["127.0.0.1"])
        path = f"/api/v1/connections/{connection['id']}"
        changed = client.patch(path, json={"base_url": f"{upstream.url}/echo"})
        assert changed.status_code == 200 and changed.json()["base_url"] == f"{upstream.url}/echo"
        assert _test(client, connection["id"], url="/now")["outputs"]["body"]["path"] == "/echo/now"
        # narrowing allowed_hosts so that base_url's host is out is refused
        narrowed = client.patch(
            path, json={"allowed_hosts": ["api.example.com"], "config": {"token": TOKEN}}
        )
        assert narrowed.status_code == 422 and narrowed.json()["error"]["field"] == "base_url"
        cleared = client.patch(path, json={"base_url": ""})
        assert cleared.json()["base_url"] is None
        assert _error_field(_test(client, connection["id"], url="/now")) == "inputs.url"


def test_copy_as_curl_and_pagination_with_a_relative_url(
    server: RunningServer, upstream: Upstream
) -> None:
    with _api(server) as client:
        connection = _bearer(client, f"{upstream.url}/echo/api", ["127.0.0.1"])
        curl = client.post(
            "/api/v1/cards/api_connector.get/curl",
            json={"connection": connection["id"], "inputs": {"url": "/user", "query": {"a": 1}}},
        )
        assert curl.status_code == 200, curl.text
        command = curl.json()["command"]
        assert f"{upstream.url}/echo/api/user?a=1" in command and TOKEN not in command
        # a test result's Copy as cURL: the whole URL the test sent to
        tested = _test(client, connection["id"], url="/user", query={"a": 1})
        assert tested["ok"], tested
        assert f"{upstream.url}/echo/api/user?a=1" in tested["curl"] and TOKEN not in tested["curl"]

        pages = _bearer(client, upstream.url, ["127.0.0.1"])
        answer = _test(
            client,
            pages["id"],
            url="/pages/link?total=5&size=2",
            pagination={"mode": "link_header", "items": "body"},
        )
        assert answer["ok"], answer
        assert [item["id"] for item in answer["outputs"]["items"]] == [0, 1, 2, 3, 4]
        assert answer["outputs"]["pages"] == 3
