"""Test connection (issue 13): a connection's ``test_request`` sent with its auth, over REST
(``POST /api/v1/connections/{ref}/test``) and the CLI (``cardflow connection test``),
against the test upstream's ``/protected/{key}`` (200 only with the expected header) and
the real Digest server; on SQLite and PostgreSQL.

A 401 is reported and recorded as the connection's rejection (a later success clears it);
a host outside ``allowed_hosts`` is refused before anything is sent; an OAuth connection
not authorized yet says so; no test request is a 422 naming ``test_request``. The answer
never carries the response body or a secret.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cardflow import cli
from tests.conftest import MASTER_KEY, RunningServer
from tests.support.digest_server import DigestServer
from tests.support.upstream import Upstream

PASSWORD = "probe-SENTINEL-pw/+é"
BODY_MARK = "secret-ish body"  # in /protected's answer: never in a test result


def _api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _protected(upstream: Upstream) -> str:
    """A fresh /protected URL that takes bot:PASSWORD."""
    key = secrets.token_hex(4)
    upstream.protect(key, "Authorization", _basic("bot", PASSWORD))
    return f"{upstream.url}/protected/{key}"


def _create(client: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "auth_type": "basic", **fields}
    body.setdefault("config", {"username": "bot", "password": PASSWORD})
    response = client.post("/api/v1/connections", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _test(client: httpx.Client, ref: str) -> dict[str, Any]:
    response = client.post(f"/api/v1/connections/{ref}/test")
    assert response.status_code == 200, response.text
    assert PASSWORD not in response.text and BODY_MARK not in response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_test_request_is_sent_with_the_connections_auth(
    server: RunningServer, upstream: Upstream
) -> None:
    url = _protected(upstream)
    host = f"127.0.0.1:{upstream.port}"
    with _api(server) as client:
        created = _create(
            client,
            "Svc",
            allowed_hosts=[host],
            test_request={"method": "get", "url": url},
        )
        assert created["test_request"] == {"method": "GET", "url": url}
        before = len(upstream.requests)
        result = _test(client, created["id"])
        assert result["ok"] is True and result["status_code"] == 200, result
        assert isinstance(result["elapsed_ms"], float) and result["error"] is None
        assert "the connection works" in result["message"]
        assert result["request"] == {"method": "GET", "url": url}
        [sent] = upstream.requests[before:]
        assert ["Authorization", _basic("bot", PASSWORD)] in sent["headers"]

        # HEAD too, by name; a PATCH without test_request keeps it, null removes it
        client.patch(f"/api/v1/connections/{created['id']}", json={"name": "Svc 2"})
        assert _test(client, "Svc 2")["ok"]
        changed = client.patch(
            f"/api/v1/connections/{created['id']}",
            json={"test_request": {"method": "HEAD", "url": url}},
        )
        assert changed.json()["test_request"]["method"] == "HEAD"
        assert _test(client, "Svc 2")["status_code"] == 200
        assert upstream.requests[-1]["method"] == "HEAD"
        removed = client.patch(f"/api/v1/connections/{created['id']}", json={"test_request": None})
        assert removed.json()["test_request"] is None
        missing = client.post(f"/api/v1/connections/{created['id']}/test")
    assert missing.status_code == 422, missing.text
    error = missing.json()["error"]
    assert error["field"] == "test_request" and "Set one" in error["message"]


def test_a_401_says_the_credentials_were_rejected_and_is_recorded(
    server: RunningServer, upstream: Upstream
) -> None:
    url = _protected(upstream)
    with _api(server) as client:
        created = _create(
            client,
            "Wrong",
            config={"username": "bot", "password": "not-it"},
            allowed_hosts=[f"127.0.0.1:{upstream.port}"],
            test_request={"url": url},
        )
        result = _test(client, "Wrong")
        assert (result["ok"], result["status_code"], result["error"]) == (False, 401, None)
        assert "rejected the connection's credentials" in result["message"]
        shown = client.get(f"/api/v1/connections/{created['id']}").json()
        assert shown["rejected"]["status_code"] == 401
        # the right password: the test passes and the rejection is cleared
        client.patch(
            f"/api/v1/connections/{created['id']}", json={"config": {"password": PASSWORD}}
        )
        assert _test(client, "Wrong")["ok"]
        assert client.get(f"/api/v1/connections/{created['id']}").json()["rejected"] is None


def test_a_host_outside_allowed_hosts_is_refused_before_sending(
    server: RunningServer, upstream: Upstream
) -> None:
    with _api(server) as client:
        _create(
            client,
            "Bound",
            allowed_hosts=["api.example.com"],
            test_request={"url": _protected(upstream)},
        )
        before = len(upstream.requests)
        result = _test(client, "Bound")
    assert (result["ok"], result["status_code"], result["elapsed_ms"]) == (False, None, None)
    assert result["error"] == "host_not_allowed"
    assert "allowed" in result["message"] and "Bound" in result["message"]
    assert len(upstream.requests) == before  # nothing was sent


def test_an_oauth_connection_not_authorized_yet_says_so(
    server: RunningServer, upstream: Upstream
) -> None:
    with _api(server) as client:
        response = client.post(
            "/api/v1/connections",
            json={
                "name": "OAuth",
                "auth_type": "oauth",
                "config": {
                    "authorize_url": "https://id.example.com/authorize",
                    "token_url": "https://id.example.com/token",
                    "client_id": "c",
                    "client_secret": "s3cret-client",
                },
                "test_request": {"url": f"{upstream.url}/echo"},
            },
        )
        assert response.status_code == 201, response.text
        before = len(upstream.requests)
        result = _test(client, "OAuth")
    assert (result["ok"], result["error"]) == (False, "needs_authorization")
    assert result["message"].startswith("Not authorized yet")
    assert len(upstream.requests) == before


def test_a_digest_connection_tests_against_the_real_server(server: RunningServer) -> None:
    with DigestServer("ada", PASSWORD) as digest, _api(server) as client:
        client.post(
            "/api/v1/connections",
            json={
                "name": "Intranet",
                "auth_type": "digest",
                "config": {"username": "ada", "password": PASSWORD},
                "allowed_hosts": [f"127.0.0.1:{digest.port}"],
                "test_request": {"url": f"{digest.url}/hidden/SHA-256"},
            },
        ).raise_for_status()
        result = _test(client, "Intranet")
        assert result["ok"] and result["status_code"] == 200, result
        assert len(digest.requests) == 2  # the challenge, then its answer


@pytest.mark.parametrize(
    ("test_request", "field"),
    [
        ({"url": "ftp://example.com/x"}, "test_request.url"),
        ({"url": "/relative/path"}, "test_request.url"),
        ({"url": "https://example.com/#frag"}, "test_request.url"),
        ({"url": "https://example.com/" + "a" * 2048}, "test_request.url"),
        ({"method": "TRACE", "url": "https://example.com/"}, "test_request.method"),
        ({"method": "GET"}, "test_request.url"),
        ({"url": "https://example.com/", "body": "x"}, "test_request.body"),
        ("GET https://example.com/", "test_request"),
    ],
)
def test_a_bad_test_request_is_refused_by_field(
    server: RunningServer, test_request: Any, field: str
) -> None:
    with _api(server) as client:
        response = client.post(
            "/api/v1/connections",
            json={"name": "x", "auth_type": "none", "test_request": test_request},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field
        created = _create(client, "y", test_request={"url": "https://example.com/"})
        patched = client.patch(
            f"/api/v1/connections/{created['id']}", json={"test_request": test_request}
        )
    assert patched.status_code == 422 and patched.json()["error"]["field"] == field


def test_the_cli_tests_a_connection_and_exits_non_zero_unless_ok(
    settings_kwargs: dict[str, object], upstream: Upstream
) -> None:
    env = {"CARDFLOW_HOME": str(settings_kwargs["home"]), "CARDFLOW_MASTER_KEY": MASTER_KEY}
    if "database_url" in settings_kwargs:
        env["CARDFLOW_DATABASE_URL"] = str(settings_kwargs["database_url"])
    runner = CliRunner()
    url = _protected(upstream)
    created = runner.invoke(
        cli.app,
        [
            "connection",
            "create",
            "Svc",
            "--type",
            "basic",
            "--set",
            "username=bot",
            "--secret-stdin",
            "password",
            "--allowed-host",
            f"127.0.0.1:{upstream.port}",
            "--test-request",
            url,
        ],
        input=PASSWORD + "\n",
        env=env,
    )
    assert created.exit_code == 0, created.output
    assert f"GET {url}" in created.stdout
    ok = runner.invoke(cli.app, ["connection", "test", "Svc"], env={**env, "COLUMNS": "200"})
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.stdout and "200" in ok.stdout and "the connection works" in ok.stdout
    as_json = runner.invoke(cli.app, ["connection", "test", "Svc", "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["status_code"] == 200

    wrong = f"POST {url.replace('/protected/', '/protected/nope-')}"
    changed = runner.invoke(
        cli.app, ["connection", "update", "Svc", "--test-request", wrong], env=env
    )
    assert changed.exit_code == 0, changed.output
    failed = runner.invoke(cli.app, ["connection", "test", "Svc", "--json"], env=env)
    assert failed.exit_code == 1, failed.output
    answer = json.loads(failed.stdout)
    assert (answer["ok"], answer["status_code"]) == (False, 401)
    assert upstream.requests[-1]["method"] == "POST"

    removed = runner.invoke(cli.app, ["connection", "update", "Svc", "--no-test-request"], env=env)
    assert removed.exit_code == 0, removed.output
    none = runner.invoke(cli.app, ["connection", "test", "Svc"], env=env)
    assert none.exit_code != 0 and "test_request" in none.output
    for result in (created, ok, as_json, changed, failed, removed, none):
        assert PASSWORD not in result.output and BODY_MARK not in result.output


# -- test requests under a base_url, and a preset's -----------------------------------------


def test_a_presets_test_request_is_a_path_under_the_base_url(
    server: RunningServer, upstream: Upstream
) -> None:
    """github-token gives GET /user under https://api.github.com: the connection keeps it
    as a path, so it follows the base_url when that moves (here to the local upstream;
    nothing is ever sent to GitHub)."""
    token = "ghp_" + secrets.token_hex(16)
    upstream.protect("user", "Authorization", f"Bearer {token}")
    local = f"127.0.0.1:{upstream.port}"
    with _api(server) as client:
        created = client.post(
            "/api/v1/connections",
            json={"name": "GitHub", "preset": "github-token", "config": {"token": token}},
        )
        assert created.status_code == 201, created.text
        view = created.json()
        assert view["base_url"] == "https://api.github.com"
        assert view["test_request"] == {"method": "GET", "url": "/user"}
        # a test_request given with the preset wins over the preset's
        mine = client.post(
            "/api/v1/connections",
            json={
                "name": "GitHub 2",
                "preset": "github-token",
                "config": {"token": token},
                "test_request": {"method": "HEAD", "url": "/rate_limit"},
            },
        ).json()
        assert mine["test_request"] == {"method": "HEAD", "url": "/rate_limit"}

        moved = client.patch(
            f"/api/v1/connections/{view['id']}",
            json={
                "allowed_hosts": [local],
                "base_url": f"{upstream.url}/protected",
                "config": {"token": token},  # allowing a new host needs the secret again
            },
        )
        assert moved.status_code == 200, moved.text
        before = len(upstream.requests)
        result = _test(client, "GitHub")
        assert result["ok"] and result["status_code"] == 200, result
        assert result["request"] == {"method": "GET", "url": "/user"}
        assert f"{upstream.url}/protected/user" in result["message"]
        [sent] = upstream.requests[before:]
        assert sent["path"] == "/protected/user"
        assert ["Authorization", f"Bearer {token}"] in sent["headers"]
        assert token not in json.dumps(result)

        # an absolute test request still works beside the base_url
        client.patch(
            f"/api/v1/connections/{view['id']}",
            json={"test_request": {"url": f"{upstream.url}/protected/user"}},
        ).raise_for_status()
        assert _test(client, "GitHub")["ok"]


def test_a_relative_test_request_needs_a_base_url_and_stays_under_it(
    server: RunningServer, upstream: Upstream
) -> None:
    local = f"127.0.0.1:{upstream.port}"
    with _api(server) as client:
        # a path on a connection without a base_url: 422 naming test_request.url
        response = client.post(
            "/api/v1/connections",
            json={"name": "x", "auth_type": "none", "test_request": {"url": "/me"}},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "test_request.url"
        assert "base_url" in response.json()["error"]["message"]
        created = _create(
            client,
            "Based",
            allowed_hosts=[local],
            base_url=f"{upstream.url}/protected",
            test_request={"url": "me"},
        )
        assert created["test_request"]["url"] == "me"
        # a path that would leave the base_url is refused like a card's
        for bad in ("/../echo", "/%2e%2e/echo", "//evil.example/x", "\\\\evil.example"):
            refused = client.patch(
                f"/api/v1/connections/{created['id']}", json={"test_request": {"url": bad}}
            )
            assert refused.status_code == 422, (bad, refused.text)
            assert refused.json()["error"]["field"] == "test_request.url", bad
        # removing the base_url under a path test request: 422, the connection unchanged
        removed = client.patch(f"/api/v1/connections/{created['id']}", json={"base_url": ""})
        assert removed.status_code == 422, removed.text
        assert removed.json()["error"]["field"] == "test_request.url"
        kept = client.get(f"/api/v1/connections/{created['id']}").json()
        assert kept["base_url"] == f"{upstream.url}/protected"
        # removed together with the test request: fine
        both = client.patch(
            f"/api/v1/connections/{created['id']}",
            json={"base_url": "", "test_request": None},
        )
        assert both.status_code == 200, both.text
        assert (both.json()["base_url"], both.json()["test_request"]) == (None, None)


def test_the_cli_creates_from_a_preset_with_its_test_request(
    settings_kwargs: dict[str, object], upstream: Upstream
) -> None:
    env = {"CARDFLOW_HOME": str(settings_kwargs["home"]), "CARDFLOW_MASTER_KEY": MASTER_KEY}
    if "database_url" in settings_kwargs:
        env["CARDFLOW_DATABASE_URL"] = str(settings_kwargs["database_url"])
    runner = CliRunner()
    token = "ghp_" + secrets.token_hex(16)
    upstream.protect("user", "Authorization", f"Bearer {token}")
    created = runner.invoke(
        cli.app,
        ["connection", "create", "GH", "--preset", "github-token", "--secret-stdin", "token"],
        input=token + "\n",
        env={**env, "COLUMNS": "200"},
    )
    assert created.exit_code == 0, created.output
    assert "GET /user" in created.stdout and "https://api.github.com" in created.stdout
    moved = runner.invoke(
        cli.app,
        [
            "connection",
            "update",
            "GH",
            "--allowed-host",
            f"127.0.0.1:{upstream.port}",
            "--base-url",
            f"{upstream.url}/protected",
            "--secret-stdin",
            "token",
        ],
        input=token + "\n",
        env=env,
    )
    assert moved.exit_code == 0, moved.output
    tested = runner.invoke(cli.app, ["connection", "test", "GH", "--json"], env=env)
    assert tested.exit_code == 0, tested.output
    assert json.loads(tested.stdout)["status_code"] == 200
    # --test-request with --preset replaces the preset's; a path needs a base URL
    mine = runner.invoke(
        cli.app,
        [
            "connection",
            "create",
            "GH 2",
            "--preset",
            "github-token",
            "--secret-stdin",
            "token",
            "--test-request",
            "HEAD /rate_limit",
            "--json",
        ],
        input=token + "\n",
        env=env,
    )
    assert mine.exit_code == 0, mine.output
    assert json.loads(mine.stdout)["test_request"] == {"method": "HEAD", "url": "/rate_limit"}
    no_base = runner.invoke(
        cli.app,
        ["connection", "create", "N", "--type", "none", "--test-request", "GET /me"],
        env=env,
    )
    assert no_base.exit_code != 0 and "test_request.url" in no_base.output
    for result in (created, moved, tested, mine, no_base):
        assert token not in result.output
