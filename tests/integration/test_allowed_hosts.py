"""Connections bound to hosts, over a real server: a card calling a host its connection does
not allow fails with host_not_allowed before anything is sent (redirects included), and the
list cannot be widened — nor a token URL moved — without entering the secrets again.

"Another host" is either another name for the same server (``localhost`` for 127.0.0.1) or
a second loopback address (127.0.0.2): both servers record every request that reaches them,
so "nothing was sent" is checked where it happened.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cardflow.cli import app as cli_app
from tests.conftest import RunningServer
from tests.support.oauth_server import OAuthServer
from tests.support.upstream import Upstream

PASSWORD = "allowed-hosts-SENTINEL-pw"
NEW_PASSWORD = "allowed-hosts-SENTINEL-pw2"
CLIENT_SECRET = "allowed-hosts-SENTINEL-cs"
OTHER_HOST = "127.0.0.2"


class Recorder:
    """A plain HTTP server on 127.0.0.2 that answers 200 and records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        lock = threading.Lock()
        sink = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    sink.append({"path": self.path, "headers": dict(self.headers), "body": body})
                payload = b'{"reached": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((OTHER_HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{OTHER_HOST}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def other() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.close()


@pytest.fixture(scope="module")
def target() -> Iterator[Upstream]:
    """This module's own upstream, so its request log holds only this module's calls."""
    with Upstream() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_logs(target: Upstream, other: Recorder) -> None:
    target.reset()
    other.requests.clear()


@pytest.fixture
def settings_kwargs(settings_kwargs: dict[str, object]) -> dict[str, object]:
    # The CLI changes connections behind the server's back: no cached config.
    return {**settings_kwargs, "config_cache_seconds": 0}


def _api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def _create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/connections", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _basic(client: httpx.Client, name: str, hosts: list[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "auth_type": "basic",
        "config": {"username": "bot", "password": PASSWORD},
    }
    if hosts is not None:
        body["allowed_hosts"] = hosts
    return _create(client, body)


def _call(client: httpx.Client, connection: str, url: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/cards/api_connector.get/test",
        json={"connection": connection, "inputs": {"url": url}},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _refused(result: dict[str, Any]) -> None:
    assert result["ok"] is False, result
    assert result["error"]["type"] == "host_not_allowed", result["error"]
    assert "Nothing was sent" in result["error"]["message"]


def _authorization(record: Any) -> str | None:
    headers = record["headers"]
    pairs = headers.items() if isinstance(headers, dict) else headers
    return next((value for name, value in pairs if name.lower() == "authorization"), None)


def _basic_header(password: str) -> str:
    return "Basic " + base64.b64encode(f"bot:{password}".encode()).decode()


# -- calls -----------------------------------------------------------------------------


def test_a_card_calling_another_host_sends_nothing(
    server: RunningServer, target: Upstream, other: Recorder, upstream: Upstream
) -> None:
    with _api(server) as client:
        bound = _basic(client, "bound", [f"127.0.0.1:{target.port}"])
        assert bound["allowed_hosts"] == [f"127.0.0.1:{target.port}"]
        assert bound["warnings"] == []

        # Another name for the same server: nothing reaches it.
        refused = _call(client, "bound", f"http://localhost:{target.port}/echo")
        _refused(refused)
        assert f"localhost:{target.port}" in refused["error"]["message"]
        assert target.requests == []
        # The same address with another port (another upstream there) is refused too.
        seen = len(upstream.requests)
        _refused(_call(client, "bound", f"{upstream.url}/echo"))
        assert len(upstream.requests) == seen
        # Another loopback address: nothing reaches it.
        _refused(_call(client, "bound", f"{other.url}/echo"))
        assert other.requests == []
        # The failed call is in the run history with the same error.
        run = client.get(f"/api/v1/runs/{refused['run_id']}").json()
        assert run["status"] == "failed"
        assert "host_not_allowed" in json.dumps(run)

        # The allowed host gets the request, with the credentials.
        allowed = _call(client, "bound", f"{target.url}/echo")
        assert allowed["ok"] is True, allowed
        assert [r["path"] for r in target.requests] == ["/echo"]
        assert _authorization(target.requests[0]) == _basic_header(PASSWORD)

        # Control: a connection allowed on 127.0.0.2 does reach the recorder, so the empty
        # logs above mean something.
        _basic(client, "other-bound", [OTHER_HOST])
        assert _call(client, "other-bound", f"{other.url}/x")["ok"] is True
        assert [r["path"] for r in other.requests] == ["/x"]
        assert _authorization(other.requests[0]) == _basic_header(PASSWORD)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_to_a_host_not_allowed_is_not_followed(
    server: RunningServer, target: Upstream, other: Recorder, code: int
) -> None:
    with _api(server) as client:
        _basic(client, "bound", [f"127.0.0.1:{target.port}"])
        for to in (f"{other.url}/echo", f"http://localhost:{target.port}/echo"):
            target.reset()
            result = _call(client, "bound", f"{target.url}/redirect?code={code}&to={to}")
            _refused(result)
            assert [r["path"] for r in target.requests] == ["/redirect"]  # the first hop only
        assert other.requests == []
        # Control: a redirect that stays on the allowed host is followed.
        target.reset()
        followed = _call(client, "bound", f"{target.url}/redirect?code={code}&to=/echo")
        assert followed["ok"] is True, followed
        assert [r["path"] for r in target.requests] == ["/redirect", "/echo"]


def test_a_flow_card_calling_another_host_fails_the_run(
    server: RunningServer, target: Upstream, other: Recorder
) -> None:
    with _api(server) as client:
        _basic(client, "bound", [f"127.0.0.1:{target.port}"])
        flow = {
            "name": "relay",
            "trigger": {"type": "api_endpoint", "alias": "relay", "security": "none"},
            "cards": [
                {
                    "id": "call",
                    "card": "api_connector.get",
                    "connection": "bound",
                    "inputs": {"url": "{{ trigger.body.url }}"},
                }
            ],
        }
        assert client.post("/api/v1/flows", json=flow).status_code == 201
    answer = httpx.post(f"{server.url}/invoke/relay", json={"url": f"{other.url}/steal"})
    assert answer.status_code == 500, answer.text
    assert answer.json()["error"]["type"] == "host_not_allowed"
    assert answer.json()["error"]["card"] == "call"
    assert other.requests == []
    ok = httpx.post(f"{server.url}/invoke/relay", json={"url": f"{target.url}/echo"})
    assert ok.status_code == 200, ok.text
    assert [r["path"] for r in target.requests] == ["/echo"]


def test_client_credentials_token_url_is_not_bound_by_allowed_hosts(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    """The token URL is guarded by needing the secret to move it, not by allowed_hosts; a card
    to a host not allowed fails before even a token is fetched."""
    oauth_server.add_client("svc", CLIENT_SECRET, "client_secret_post", scope="read")
    api_host = f"localhost:{oauth_server.port}"  # the token URL says 127.0.0.1
    with _api(server) as client:
        created = _create(
            client,
            {
                "name": "cc",
                "auth_type": "client_credentials",
                "config": {
                    "token_url": oauth_server.token_url,
                    "client_id": "svc",
                    "client_secret": CLIENT_SECRET,
                    "scope": "read",
                },
                "allowed_hosts": [api_host],
            },
        )
        assert created["allowed_hosts"] == [api_host]
        _refused(_call(client, "cc", f"{oauth_server.url}/api/me"))
        assert oauth_server.token_requests == 0  # refused before the token was fetched
        me = _call(client, "cc", f"http://{api_host}/api/me")
        assert me["ok"] is True, me
        assert oauth_server.token_requests == 1  # fetched from 127.0.0.1, not in the list


@pytest.mark.parametrize("code", [307, 308])
def test_a_token_request_is_never_redirected(
    server: RunningServer, other: Recorder, code: int
) -> None:
    """A token endpoint answering 307/308 would have the POST, client secret included,
    re-sent wherever it points: cardflow does not follow, and says what to fix."""
    redirector = ThreadingHTTPServer(("127.0.0.1", 0), _redirect_handler(code, other.url))
    thread = threading.Thread(target=redirector.serve_forever, daemon=True)
    thread.start()
    try:
        token_url = f"http://127.0.0.1:{redirector.server_address[1]}/token"
        with _api(server) as client:
            _create(
                client,
                {
                    "name": "cc-redirected",
                    "auth_type": "client_credentials",
                    "config": {
                        "token_url": token_url,
                        "client_id": "svc",
                        "client_secret": CLIENT_SECRET,
                        "token_auth_method": "client_secret_post",
                    },
                },
            )
            result = _call(client, "cc-redirected", f"{other.url}/api")
    finally:
        redirector.shutdown()
        redirector.server_close()
        thread.join(timeout=10)
    assert result["ok"] is False, result
    message = result["error"]["message"]
    assert f"answered {code}" in message and "never redirected" in message, message
    assert f"{other.url}/elsewhere" in message and "leak" not in message
    assert other.requests == []  # neither the token request nor the card call went there


def _redirect_handler(code: int, target: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(code)
            self.send_header("Location", f"{target}/elsewhere?leak=1")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# -- changing the list -------------------------------------------------------------------


def test_widening_needs_the_secrets_entered_again(server: RunningServer, target: Upstream) -> None:
    here, there = f"127.0.0.1:{target.port}", f"localhost:{target.port}"
    with _api(server) as client:
        view = _basic(client, "bound", [here])

        for hosts in ([here, there], [there], ["*.example.com"], [here.split(":")[0]], []):
            for config in (None, {"password": {"set": True}}, {"username": "bot"}):
                body: dict[str, Any] = {"allowed_hosts": hosts}
                if config is not None:
                    body["config"] = config
                refused = client.patch(f"/api/v1/connections/{view['id']}", json=body)
                assert refused.status_code == 422, (hosts, config, refused.text)
                error = refused.json()["error"]
                assert error["type"] == "invalid_input"
                assert error["field"] == "config.password", error
                assert "allowed_hosts" in error["message"]
        after = client.get("/api/v1/connections/bound").json()
        assert after["allowed_hosts"] == [here]
        assert after["updated_at"] == view["updated_at"]  # nothing was changed
        _refused(_call(client, "bound", f"http://{there}/echo"))
        assert target.requests == []

        # With the secret entered again, widening works, and the new secret is what is sent.
        widened = client.patch(
            "/api/v1/connections/bound",
            json={"allowed_hosts": [here, there], "config": {"password": NEW_PASSWORD}},
        )
        assert widened.status_code == 200, widened.text
        assert widened.json()["allowed_hosts"] == [here, there]
        assert _call(client, "bound", f"http://{there}/echo")["ok"] is True
        assert _authorization(target.requests[-1]) == _basic_header(NEW_PASSWORD)

        # Narrowing needs nothing, and takes effect at once.
        narrowed = client.patch("/api/v1/connections/bound", json={"allowed_hosts": [there]})
        assert narrowed.status_code == 200, narrowed.text
        assert narrowed.json()["allowed_hosts"] == [there]
        target.reset()
        _refused(_call(client, "bound", f"http://{here}/echo"))
        assert target.requests == []
        # The same list written differently is not a widening either.
        same = client.patch(
            "/api/v1/connections/bound",
            json={"allowed_hosts": [there.upper(), there.replace(":", ".:")]},
        )
        assert same.status_code == 200, same.text
        assert same.json()["allowed_hosts"] == [there]

        # "Any host" needs the secret too, and then carries a warning.
        anyhost = client.patch(
            "/api/v1/connections/bound",
            json={"allowed_hosts": [], "config": {"password": NEW_PASSWORD}},
        )
        assert anyhost.status_code == 200, anyhost.text
        assert anyhost.json()["allowed_hosts"] == []
        assert any("allowed_hosts" in w for w in anyhost.json()["warnings"])
        # From any host, any list is a narrowing.
        rebound = client.patch("/api/v1/connections/bound", json={"allowed_hosts": [here]})
        assert rebound.status_code == 200 and rebound.json()["warnings"] == []


def test_a_custom_header_connection_is_held_to_the_same_rule(server: RunningServer) -> None:
    with _api(server) as client:
        _create(
            client,
            {
                "name": "key",
                "auth_type": "custom",
                "config": {"header_name": "api_key", "header_value": PASSWORD},
                "allowed_hosts": ["api.example.com"],
            },
        )
        refused = client.patch("/api/v1/connections/key", json={"allowed_hosts": ["*.evil.test"]})
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "config.header_value"
        ok = client.patch(
            "/api/v1/connections/key",
            json={"allowed_hosts": ["*.evil.test"], "config": {"header_value": NEW_PASSWORD}},
        )
        assert ok.status_code == 200 and ok.json()["allowed_hosts"] == ["*.evil.test"]


def test_moving_a_token_or_authorize_url_needs_the_secret_again(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    token_url, authorize_url = oauth_server.token_url, oauth_server.authorize_url
    elsewhere = f"http://localhost:{oauth_server.port}"
    with _api(server) as client:
        _create(
            client,
            {
                "name": "cc",
                "auth_type": "client_credentials",
                "config": {"token_url": token_url, "client_id": "svc", "client_secret": "s"},
                "allowed_hosts": ["api.example.com"],
            },
        )
        _create(
            client,
            {
                "name": "oauth",
                "auth_type": "oauth",
                "config": {
                    "authorize_url": authorize_url,
                    "token_url": token_url,
                    "client_id": "app",
                    "client_secret": "s",
                },
                "allowed_hosts": ["api.example.com"],
            },
        )

        def patch(name: str, config: dict[str, Any]) -> httpx.Response:
            return client.patch(f"/api/v1/connections/{name}", json={"config": config})

        moves = [
            f"{elsewhere}/oauth/token",  # another host
            token_url.replace(str(oauth_server.port), str(oauth_server.port + 1)),  # port
            token_url.replace("http://", "https://"),  # scheme
        ]
        for name in ("cc", "oauth"):
            for moved in moves:
                refused = patch(name, {"token_url": moved})
                assert refused.status_code == 422, (name, moved, refused.text)
                assert refused.json()["error"]["field"] == "config.client_secret"
                assert "token_url" in refused.json()["error"]["message"]
            assert client.get(f"/api/v1/connections/{name}").json()["config"]["token_url"] == (
                token_url
            )
            # Another path on the same origin is not somewhere new.
            path_only = patch(name, {"token_url": f"{oauth_server.url}/v2/token"})
            assert path_only.status_code == 200, path_only.text
            # With the secret, the token URL may move.
            moved_ok = patch(name, {"token_url": moves[0], "client_secret": "s2"})
            assert moved_ok.status_code == 200, moved_ok.text
            assert moved_ok.json()["config"]["token_url"] == moves[0]

        refused = patch("oauth", {"authorize_url": f"{elsewhere}/oauth/authorize"})
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "config.client_secret"
        assert "authorize_url" in refused.json()["error"]["message"]
        path_only = patch("oauth", {"authorize_url": f"{oauth_server.url}/v2/authorize?x=1"})
        assert path_only.status_code == 200, path_only.text


# -- the view and validation ----------------------------------------------------------------


def test_an_empty_list_means_any_host_with_a_warning(
    server: RunningServer, target: Upstream
) -> None:
    with _api(server) as client:
        unbound = _basic(client, "unbound", None)
        assert unbound["allowed_hosts"] == []
        assert len(unbound["warnings"]) == 1 and "any host" in unbound["warnings"][0]
        assert _basic(client, "explicit", [])["warnings"] == unbound["warnings"]
        # Without secrets there is nothing to warn about.
        public = _create(client, {"name": "public", "auth_type": "none"})
        assert public["allowed_hosts"] == [] and public["warnings"] == []
        listed = {c["name"]: c for c in client.get("/api/v1/connections").json()}
        assert listed["unbound"]["warnings"] == unbound["warnings"]
        assert listed["public"]["warnings"] == []
        # Any host really is any host.
        assert _call(client, "unbound", f"http://localhost:{target.port}/echo")["ok"] is True
        assert len(target.requests) == 1


def test_invalid_patterns_are_refused_naming_allowed_hosts(server: RunningServer) -> None:
    bad = [
        "*",
        "*.",
        "*.com",
        "a*b.com",
        "http://x",
        "api.example.com/path",
        "user@api.example.com",
        "api example.com",
        "a\x01b.com",
        "a\x7fb.com",
        "api.example.com:99999",
        "",
    ]
    with _api(server) as client:
        _basic(client, "bound", ["api.example.com"])
        for entry in bad:
            created = client.post(
                "/api/v1/connections",
                json={
                    "name": "x",
                    "auth_type": "basic",
                    "config": {"username": "u", "password": "p"},
                    "allowed_hosts": ["ok.example.com", entry],
                },
            )
            assert created.status_code == 422, (entry, created.text)
            assert created.json()["error"]["field"] == "allowed_hosts", (entry, created.text)
            # Even with the secret given (so no re-entry rule can be what refuses it).
            patched = client.patch(
                "/api/v1/connections/bound",
                json={"allowed_hosts": [entry], "config": {"password": "p"}},
            )
            assert patched.status_code == 422, (entry, patched.text)
            assert patched.json()["error"]["field"] == "allowed_hosts", (entry, patched.text)
        not_a_list = client.post(
            "/api/v1/connections",
            json={"name": "x", "auth_type": "none", "allowed_hosts": "api.example.com"},
        )
        assert not_a_list.status_code == 422
        assert not_a_list.json()["error"]["field"] == "allowed_hosts"
        names = [c["name"] for c in client.get("/api/v1/connections").json()]
        assert names == ["bound"]
        assert client.get("/api/v1/connections/bound").json()["allowed_hosts"] == [
            "api.example.com"
        ]


# -- the CLI on the server's database ------------------------------------------------------


def test_cli_sets_shows_and_guards_allowed_hosts(
    server: RunningServer, target: Upstream, backend: str
) -> None:
    settings = server.cf.settings
    env = {
        "CARDFLOW_HOME": str(settings.home),
        "CARDFLOW_MASTER_KEY": settings.master_key.get_secret_value(),  # type: ignore[union-attr]
        "CARDFLOW_PUBLIC_URL": settings.public_url,
        "PW": PASSWORD,
        "PW2": NEW_PASSWORD,
    }
    if settings.database_url:
        env["CARDFLOW_DATABASE_URL"] = settings.database_url
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(cli_app, list(args), env=env)

    here, there = f"127.0.0.1:{target.port}", f"localhost:{target.port}"
    created = cli(
        "connection", "create", "cli", "--type", "basic", "--set", "username=bot",
        "--secret-env", "password=PW", "--allowed-host", here, "--allowed-host", "*.Example.com",
        "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["allowed_hosts"] == [here, "*.example.com"]
    with _api(server) as client:
        assert client.get("/api/v1/connections/cli").json()["allowed_hosts"] == [
            here,
            "*.example.com",
        ]
        _refused(_call(client, "cli", f"http://{there}/echo"))
        assert target.requests == []

    shown = cli("connection", "show", "cli")
    assert shown.exit_code == 0 and f"{here}, *.example.com" in shown.stdout
    assert "warning" not in shown.stdout

    # Widening without the secret: refused, saying which secret and how to give it.
    widen = cli("connection", "update", "cli", "--allowed-host", there)
    assert widen.exit_code == 2
    assert "config.password" in widen.stderr
    assert "--secret-env password=" in widen.stderr and "--secret-stdin password" in widen.stderr
    as_json = cli("connection", "update", "cli", "--allowed-host", there, "--json")
    assert json.loads(as_json.stdout)["error"]["field"] == "config.password"
    assert cli("connection", "update", "cli", "--any-host").exit_code == 2
    with _api(server) as client:
        assert client.get("/api/v1/connections/cli").json()["allowed_hosts"] == [
            here,
            "*.example.com",
        ]

    widened = cli(
        "connection", "update", "cli", "--allowed-host", there, "--secret-env", "password=PW2",
        "--json",
    )  # fmt: skip
    assert widened.exit_code == 0, widened.output
    assert json.loads(widened.stdout)["allowed_hosts"] == [there]
    with _api(server) as client:
        assert _call(client, "cli", f"http://{there}/echo")["ok"] is True
    assert _authorization(target.requests[-1]) == _basic_header(NEW_PASSWORD)

    # Clearing the list: with the secret, then a warning in show, list and --json.
    cleared = cli("connection", "update", "cli", "--any-host", "--secret-env", "password=PW2")
    assert cleared.exit_code == 0, cleared.output
    assert "any host" in cleared.stdout and "warning" in cleared.stdout
    listed = cli("connection", "list")
    assert listed.exit_code == 0 and "any host (!)" in listed.stdout
    assert "warning" in listed.stdout
    data = json.loads(cli("connection", "list", "--json").stdout)
    assert data[0]["allowed_hosts"] == [] and data[0]["warnings"]

    # Bad patterns, and both options at once: refused before anything is asked or stored.
    for args in (
        ("connection", "create", "bad", "--type", "basic", "--set", "username=u",
         "--allowed-host", "http://x"),
        ("connection", "create", "bad", "--type", "basic", "--set", "username=u",
         "--allowed-host", "*"),
        ("connection", "update", "cli", "--allowed-host", "a b.com", "--secret-env", "password=PW"),
        ("connection", "update", "cli", "--allowed-host", "x.com", "--any-host"),
    ):  # fmt: skip
        result = cli(*args, "--json")
        assert result.exit_code == 2, (args, result.output)
        assert json.loads(result.stdout)["error"]["field"] == "allowed_hosts"
        assert "Traceback" not in result.output
    with _api(server) as client:
        assert [c["name"] for c in client.get("/api/v1/connections").json()] == ["cli"]
        assert client.get("/api/v1/connections/cli").json()["allowed_hosts"] == []
    assert PASSWORD not in widen.output + widened.output + cleared.output
