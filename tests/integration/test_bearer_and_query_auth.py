"""Bearer and query connections over a real server (issue 13): the token or the key reaches
the upstream as the auth type says, the connection's query parameter wins over the card's,
``allowed_hosts`` holds, and a redirect to another origin carries neither; a redirect that
would take the key along in another form is not followed.

The secrets everywhere else (database, every answer, the log, run history):
test_secret_sentinels.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from yarl import URL

from tests.conftest import RunningServer
from tests.support.upstream import EchoRecord, Upstream

TOKEN = "bearer-SENTINEL-tok/+="
KEY = "query-SENTINEL key&+/é"
# the key as it goes in a URL (yarl: a space as +) and as it may come back
KEY_IN_URL = URL("http://h/").with_query(k=KEY).raw_query_string[2:]
KEY_FORMS = (KEY, KEY_IN_URL, quote(KEY, safe=""), quote_plus(KEY), json.dumps(KEY)[1:-1])
REDACTED = "[redacted]"


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Upstream]:
    """Another origin: the same loopback address, another port."""
    with Upstream() as other:
        yield other


def _api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def _create(
    client: httpx.Client, name: str, auth_type: str, config: dict[str, Any], hosts: list[str]
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/connections",
        json={"name": name, "auth_type": auth_type, "config": config, "allowed_hosts": hosts},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _test(client: httpx.Client, connection: str, url: str, **inputs: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/cards/api_connector.get/test",
        json={"connection": connection, "inputs": {"url": url, **inputs}},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _new(upstream: Upstream, before: int) -> list[EchoRecord]:
    return upstream.requests[before:]


def _no_key(text: str) -> None:
    for form in KEY_FORMS:
        assert form not in text, form


def _query_connection(client: httpx.Client, name: str, hosts: list[str]) -> dict[str, Any]:
    return _create(client, name, "query", {"param_name": "api_key", "param_value": KEY}, hosts)


def test_a_bearer_connection_sends_its_token_and_shows_it_only_as_set(
    server: RunningServer, upstream: Upstream
) -> None:
    with _api(server) as client:
        created = _create(
            client, "Svc - token", "bearer", {"token": TOKEN}, [f"127.0.0.1:{upstream.port}"]
        )
        assert created["config"] == {"token": {"set": True}}
        before = len(upstream.requests)
        result = _test(client, "Svc - token", f"{upstream.url}/echo/bearer")
        assert result["ok"], result
        [sent] = _new(upstream, before)
        assert [v for k, v in sent["headers"] if k.lower() == "authorization"] == [
            f"Bearer {TOKEN}"
        ]
        assert ["Authorization", f"Bearer {REDACTED}"] in result["outputs"]["body"]["headers"]
        refused = client.patch(
            f"/api/v1/connections/{created['id']}", json={"config": {"token": f"Bearer {TOKEN}"}}
        )
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "config.token"
        everything = [
            json.dumps(result),
            client.get("/api/v1/connections").text,
            refused.text,
        ]
    assert all(TOKEN not in text for text in everything)


def test_a_query_connection_sends_its_key_once_whatever_the_card_says(
    server: RunningServer, upstream: Upstream
) -> None:
    with _api(server) as client:
        created = _query_connection(client, "Weather - key", [f"127.0.0.1:{upstream.port}"])
        assert created["config"] == {"param_name": "api_key", "param_value": {"set": True}}
        before = len(upstream.requests)
        # the URL and the card's query name the parameter too: the connection's wins
        result = _test(
            client,
            "Weather - key",
            f"{upstream.url}/echo/query?api_key=typed&x=1",
            query={"api_key": "from-the-card", "y": "2 3"},
        )
        assert result["ok"], result
        [sent] = _new(upstream, before)
        assert sent["query"] == {"x": ["1"], "y": ["2 3"], "api_key": [KEY]}
        assert sent["raw_path"].endswith(f"&api_key={KEY_IN_URL}")
        # the echo comes back with the key blanked, as read back and as sent
        echoed = result["outputs"]["body"]
        assert echoed["query"]["api_key"] == [REDACTED]
        assert echoed["raw_path"].endswith(f"&api_key={REDACTED}")
        _no_key(json.dumps(result, ensure_ascii=False))
        _no_key(json.dumps(result))
        _no_key(client.get(f"/api/v1/connections/{created['id']}").text)


def test_a_query_connection_calls_only_its_allowed_hosts(
    server: RunningServer, upstream: Upstream, elsewhere: Upstream
) -> None:
    with _api(server) as client:
        _query_connection(client, "Bound key", [f"127.0.0.1:{upstream.port}"])
        elsewhere.reset()
        for url in (
            f"{elsewhere.url}/echo",
            f"{upstream.url}/redirect?to={quote(elsewhere.url + '/echo', safe='')}",
        ):
            result = _test(client, "Bound key", url)
            assert not result["ok"] and result["error"]["type"] == "host_not_allowed", result
            _no_key(json.dumps(result))
        assert elsewhere.requests == []  # nothing was sent there


def test_a_redirect_to_another_origin_never_carries_the_query_key(
    server: RunningServer, upstream: Upstream, elsewhere: Upstream
) -> None:
    with _api(server) as client:
        # both origins allowed (any port): the redirect is followed, the key stays behind
        _query_connection(client, "Roaming key", ["127.0.0.1"])
        _create(client, "Roaming token", "bearer", {"token": TOKEN}, ["127.0.0.1"])
        there = quote(f"{elsewhere.url}/echo/landed", safe="")
        elsewhere.reset()
        # the upstream's Location repeats the query it was called with, key included
        followed = _test(client, "Roaming key", f"{upstream.url}/redirect?to={there}&echo=query")
        assert followed["ok"], followed
        [landed] = elsewhere.requests
        assert landed["path"] == "/echo/landed"
        assert "api_key" not in landed["query"] and landed["query"]["echo"] == ["query"]
        # … or holds it inside another parameter: not followed at all
        refused = _test(client, "Roaming key", f"{upstream.url}/redirect?to={there}&echo=next")
        assert not refused["ok"], refused
        assert "key in the URL; not followed" in refused["error"]["message"]
        _no_key(json.dumps(refused))
        assert len(elsewhere.requests) == 1
        # the Bearer token does not follow either
        bearer = _test(client, "Roaming token", f"{upstream.url}/redirect?to={there}")
        assert bearer["ok"], bearer
        assert not [k for k, _ in elsewhere.requests[-1]["headers"] if k.lower() == "authorization"]

        # a redirect on the origin gets the key again (the Location has a query of its own)
        before = len(upstream.requests)
        same = _test(client, "Roaming key", f"{upstream.url}/redirect?to=/echo/again%3Fpage%3D2")
        assert same["ok"], same
        assert [r["query"] for r in _new(upstream, before)][-1] == {
            "page": ["2"],
            "api_key": [KEY],
        }
        # a redirect not followed (300): its Location repeating the key is blanked
        shown = _test(client, "Roaming key", f"{upstream.url}/redirect?code=300&echo=query")
        assert shown["error"]["status_code"] == 300, shown
        assert shown["error"]["headers"]["location"].endswith(f"api_key={REDACTED}")
        _no_key(json.dumps(shown))


@pytest.mark.parametrize(
    ("auth_type", "config", "field"),
    [
        ("query", {"param_name": "api key", "param_value": "k"}, "config.param_name"),
        ("query", {"param_name": "a&b", "param_value": "k"}, "config.param_name"),
        ("query", {"param_name": "api_key"}, "config.param_value"),
        ("query", {"param_value": "k"}, "config.param_name"),
        ("bearer", {}, "config.token"),
        ("bearer", {"token": "abc\n"}, "config.token"),
    ],
)
def test_a_bad_config_is_refused_by_field(
    server: RunningServer, auth_type: str, config: dict[str, Any], field: str
) -> None:
    with _api(server) as client:
        response = client.post(
            "/api/v1/connections", json={"name": "x", "auth_type": auth_type, "config": config}
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
