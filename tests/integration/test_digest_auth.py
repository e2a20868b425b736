"""Digest connections (issue 13) against a real Digest server: httpbin, the PyPI package
(tests/support/digest_server.py), with MD5 and SHA-256.

A first call takes the 401 challenge and answers it once; later calls to the same origin
answer the kept challenge at once (one round trip); a wrong password ends as the 401 after
exactly one answer, and is recorded as the connection's rejection. The password everywhere
else (database, answers, log, run history): test_secret_sentinels.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.support.digest_server import DigestServer

USER = "ada"
PASSWORD = "s3cret-digest-pw"  # httpbin takes it from its URL: no character a path encodes


@pytest.fixture(scope="module")
def digest_server() -> Iterator[DigestServer]:
    with DigestServer() as server:
        yield server


def _api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def _create(client: httpx.Client, name: str, password: str, port: int) -> dict[str, Any]:
    response = client.post(
        "/api/v1/connections",
        json={
            "name": name,
            "auth_type": "digest",
            "config": {"username": USER, "password": password},
            "allowed_hosts": [f"127.0.0.1:{port}"],
        },
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _test(client: httpx.Client, connection: str, url: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/cards/api_connector.get/test",
        json={"connection": connection, "inputs": {"url": url}},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_a_digest_connection_answers_the_challenge_once_then_reuses_it(
    server: RunningServer, digest_server: DigestServer, algorithm: str
) -> None:
    url = f"{digest_server.url}/digest-auth/auth/{USER}/{PASSWORD}/{algorithm}"
    with _api(server) as client:
        created = _create(client, f"Intranet {algorithm}", PASSWORD, digest_server.port)
        assert created["config"] == {"username": USER, "password": {"set": True}}
        digest_server.reset()
        first = _test(client, f"Intranet {algorithm}", url)
        assert first["ok"], first
        assert first["outputs"]["body"] == {"authenticated": True, "user": USER}
        # the challenge, then its answer
        (_, none), (_, answer) = digest_server.requests
        assert none is None
        assert answer is not None and answer.startswith(f'Digest username="{USER}"')
        assert f"algorithm={algorithm}," in answer and "qop=auth," in answer
        assert ' response="' in answer and f'uri="/digest-auth/auth/{USER}/' in answer
        # the kept challenge is answered at once: one request, the nonce count goes up
        digest_server.reset()
        again = _test(client, f"Intranet {algorithm}", url)
        assert again["ok"], again
        [(_, reused)] = digest_server.requests
        assert reused is not None and "nc=00000002" in reused
        shown = client.get(f"/api/v1/connections/{created['id']}").json()
        assert shown["rejected"] is None


def test_a_wrong_password_ends_as_the_401_after_one_answer(
    server: RunningServer, digest_server: DigestServer
) -> None:
    url = f"{digest_server.url}/digest-auth/auth/{USER}/{PASSWORD}/SHA-256"
    with _api(server) as client:
        created = _create(client, "Intranet wrong", "not-the-password", digest_server.port)
        for _ in range(2):  # without a kept challenge, then with the one the 401 brought
            digest_server.reset()
            result = _test(client, "Intranet wrong", url)
            assert not result["ok"], result
            assert result["error"]["type"] == "upstream_status"
            assert result["error"]["status_code"] == 401
            assert len(digest_server.requests) == 2  # one answer, never a loop
            assert digest_server.requests[-1][1] is not None
        shown = client.get(f"/api/v1/connections/{created['id']}").json()
        assert shown["rejected"]["status_code"] == 401


def test_a_digest_connection_calls_only_its_allowed_hosts(
    server: RunningServer, digest_server: DigestServer
) -> None:
    with _api(server) as client:
        _create(client, "Intranet bound", PASSWORD, digest_server.port + 1)
        digest_server.reset()
        result = _test(client, "Intranet bound", f"{digest_server.url}/digest-auth/auth/a/b")
        assert result["error"]["type"] == "host_not_allowed", result
        assert digest_server.requests == []


def test_the_new_connection_form_offers_digest(server: RunningServer) -> None:
    with _api(server) as client:
        types = {t["name"]: t for t in client.get("/api/v1/auth-types").json()}
    fields = {f["name"]: f for f in types["digest"]["fields"]}
    assert types["digest"]["title"] == "Digest"
    assert fields["username"]["required"] and not fields["username"]["secret"]
    assert fields["password"]["required"] and fields["password"]["secret"]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"password": "p"}, "config.username"),
        ({"username": "", "password": "p"}, "config.username"),
        ({"username": 'a"b', "password": "p"}, "config.username"),
        ({"username": "Zoë", "password": "p"}, "config.username"),
        ({"username": "ada"}, "config.password"),
        ({"username": "ada", "password": "p\nq"}, "config.password"),
        ({"username": "ada", "password": "p", "realm": "x"}, "config.realm"),
    ],
)
def test_a_bad_digest_config_is_refused_by_field(
    server: RunningServer, config: dict[str, Any], field: str
) -> None:
    with _api(server) as client:
        response = client.post(
            "/api/v1/connections", json={"name": "x", "auth_type": "digest", "config": config}
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
