"""``cardflow connection authorize`` and OAuth connections on the command line.

The provider's side is played by writing to the database from a thread, as the server's
/oauth/callback would, while the command waits.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from typer.testing import Result

from cardflow.app import Cardflow
from cardflow.cli import authorize
from cardflow.credentials.token_endpoint import TokenResponse
from cardflow.store.models import OAuthState
from tests.unit.cli.helpers import SENTINEL, Invoke, assert_no_secret, create_basic, opened

PUBLIC_URL = "http://127.0.0.1:8765"
REDIRECT_URI = f"{PUBLIC_URL}/oauth/callback"
AUTHORIZE_URL = "https://id.example.com/oauth/authorize"
NAME = "Acme - OAuth - me"


@pytest.fixture
def run(invoke: Invoke) -> Invoke:
    """``invoke`` with CARDFLOW_PUBLIC_URL set, as a deployment would have it."""

    def call(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return invoke(*args, input=input, env={"CARDFLOW_PUBLIC_URL": PUBLIC_URL, **(env or {})})

    return call


def create_oauth(run: Invoke, *sets: str, authorize_url: str = AUTHORIZE_URL) -> Result:
    result = run(
        "connection", "create", NAME, "--type", "oauth",
        "--set", f"authorize_url={authorize_url}",
        "--set", "token_url=https://id.example.com/oauth/token",
        "--set", "client_id=app-123",
        *[arg for item in sets for arg in ("--set", item)],
        "--secret-stdin", "client_secret",
        input=SENTINEL + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_no_secret(result)
    return result


def url_lines(result: Result, prefix: str = AUTHORIZE_URL) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(prefix)]


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


@contextmanager
def provider_acts(home: Path, act: Callable[[Cardflow, str], None]) -> Iterator[None]:
    """Once the command has begun an authorization, ``act`` on the connection from another
    thread (as the server would), while the command waits."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with opened(home) as cf:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    with cf.db.session() as session:
                        connection_id = session.scalar(select(OAuthState.connection_id))
                    if connection_id is not None:
                        break
                    time.sleep(0.1)
                else:
                    raise AssertionError("the command never began an authorization")
                time.sleep(1)  # let the command poll at least once
                act(cf, connection_id)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        yield
    finally:
        thread.join(30)
    assert not errors, errors


def tokens_arrive(cf: Cardflow, connection_id: str) -> None:
    token = TokenResponse(
        access_token="at-1",
        token_type="Bearer",
        expires_at=time.time() + 3600,
        refresh_token="rt-1",
        scope=None,
        obtained_at=time.time(),
    )
    cf.token_store.replace(connection_id, token)


# -- creating and showing -------------------------------------------------------------------


def test_create_oauth_needs_authorization_and_shows_the_redirect_uri(
    run: Invoke, home: Path
) -> None:
    created = create_oauth(
        run, "scope=a b", "pkce=false", "token_auth_method=client_secret_post"
    ).stdout
    assert "needs_authorization" in created
    assert REDIRECT_URI in created
    assert f"cardflow connection authorize '{NAME}'" in created

    data = json.loads(run("connection", "show", NAME, "--json").stdout)
    assert data["status"] == "needs_authorization"
    assert data["redirect_uri"] == REDIRECT_URI
    assert data["config"]["scope"] == "a b"
    assert data["config"]["pkce"] is False
    assert data["config"]["token_auth_method"] == "client_secret_post"
    assert data["config"]["client_secret"] == {"set": True}
    shown = run("connection", "show", NAME)
    assert "redirect URI" in shown.stdout and REDIRECT_URI in shown.stdout
    assert_no_secret(shown)
    with opened(home) as cf:
        config = cf.connections.load(NAME).config
        assert config.client_secret == SENTINEL  # type: ignore[attr-defined]

    create_basic(run)
    basic = run("connection", "show", "JIRA - Basic - bot")
    assert "redirect URI" not in basic.stdout
    assert (
        json.loads(run("connection", "show", "JIRA - Basic - bot", "--json").stdout)["redirect_uri"]
        is None
    )


def test_create_oauth_refuses_a_pkce_that_is_not_a_boolean(run: Invoke) -> None:
    result = run(
        "connection", "create", NAME, "--type", "oauth",
        "--set", f"authorize_url={AUTHORIZE_URL}", "--set", "token_url=https://id.example.com/t",
        "--set", "client_id=a", "--set", "pkce=maybe", "--secret-stdin", "client_secret",
        input="x\n",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "config.pkce must be true or false" in result.stderr


# -- the authorize URL ----------------------------------------------------------------------


def test_authorize_no_wait_prints_a_provider_url_with_pkce(run: Invoke, home: Path) -> None:
    extra = "?prompt=consent&access_type=offline"
    create_oauth(run, "scope=read write", authorize_url=AUTHORIZE_URL + extra)
    result = run("connection", "authorize", NAME, "--no-wait")
    assert result.exit_code == 0, result.output
    assert REDIRECT_URI in result.stdout
    assert "cardflow serve" in result.stdout and PUBLIC_URL in result.stdout
    [url] = url_lines(result)
    assert url.startswith(AUTHORIZE_URL + "?")
    params = query(url)
    assert params["prompt"] == ["consent"] and params["access_type"] == ["offline"]
    assert params["response_type"] == ["code"]
    assert params["client_id"] == ["app-123"]
    assert params["redirect_uri"] == [REDIRECT_URI]
    assert params["scope"] == ["read write"]
    assert params["code_challenge_method"] == ["S256"]
    assert len(params["code_challenge"][0]) == 43  # base64url of a SHA-256, unpadded
    [state] = params["state"]

    # The state printed is the one stored, bound to this connection: the callback knows it.
    with opened(home) as cf:
        outcome = asyncio.run(cf.authorizations.complete({"state": state, "error": "x"}))
        assert outcome.connection is not None and outcome.connection.name == NAME
        assert outcome.title == "The provider refused the authorization"

    [again] = url_lines(run("connection", "authorize", NAME, "--no-wait"))
    assert query(again)["state"] != [state]  # a fresh state each time


def test_authorize_without_pkce_and_a_comma_separated_scope(run: Invoke) -> None:
    create_oauth(run, "scope=a,b", "pkce=false")
    [url] = url_lines(run("connection", "authorize", NAME, "--no-wait"))
    params = query(url)
    assert params["scope"] == ["a,b"]
    assert "code_challenge" not in params and "code_challenge_method" not in params
    assert params["state"][0]


def test_authorize_no_wait_json_is_one_line(run: Invoke) -> None:
    created = json.loads(
        run(
            "connection", "create", NAME, "--type", "oauth",
            "--set", f"authorize_url={AUTHORIZE_URL}", "--set", "token_url=https://id.example.com/t",
            "--set", "client_id=a", "--secret-stdin", "client_secret", "--json", input="x\n",
        ).stdout
    )  # fmt: skip
    result = run("connection", "authorize", NAME, "--no-wait", "--json")
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    data = json.loads(line)
    assert set(data) == {"authorize_url", "redirect_uri", "connection_id"}
    assert data["connection_id"] == created["id"]
    assert data["redirect_uri"] == REDIRECT_URI
    assert data["authorize_url"].startswith(AUTHORIZE_URL + "?")


def test_authorize_refuses_a_connection_that_is_not_oauth(run: Invoke) -> None:
    create_basic(run)
    result = run("connection", "authorize", "JIRA - Basic - bot", "--no-wait")
    assert result.exit_code == 2
    assert "basic connection" in result.stderr and "only oauth" in result.stderr
    assert "Traceback" not in result.output
    as_json = run("connection", "authorize", "JIRA - Basic - bot", "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["type"] == "invalid_input"
    missing = run("connection", "authorize", "ghost", "--json")
    assert missing.exit_code == 2
    assert json.loads(missing.stdout)["error"]["type"] == "connection_not_found"


# -- waiting --------------------------------------------------------------------------------


def test_authorize_times_out_saying_what_to_do(run: Invoke) -> None:
    create_oauth(run)
    result = run("connection", "authorize", NAME, "--timeout", "1")
    assert result.exit_code == 1
    assert len(url_lines(result)) == 1
    assert "No authorization arrived" in result.stderr and "within 1 s" in result.stderr
    assert f"cardflow connection authorize '{NAME}' again" in result.stderr

    as_json = run("connection", "authorize", NAME, "--timeout", "1", "--json")
    assert as_json.exit_code == 1
    first, second = (json.loads(line) for line in as_json.stdout.splitlines())
    assert set(first) == {"authorize_url", "redirect_uri", "connection_id"}
    assert second["status"] == "timeout" and second["connection_id"] == first["connection_id"]


def test_an_earlier_authorization_does_not_count(run: Invoke, home: Path) -> None:
    create_oauth(run)
    with opened(home) as cf:
        tokens_arrive(cf, cf.connections.get(NAME).id)
        assert cf.connections.get(NAME).status == "ready"
    result = run("connection", "authorize", NAME, "--timeout", "1")
    assert result.exit_code == 1
    assert "No authorization arrived" in result.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_authorize_waits_until_the_connection_is_ready(
    run: Invoke, home: Path, as_json: bool
) -> None:
    create_oauth(run)
    args = ["connection", "authorize", NAME, "--timeout", "30"] + (["--json"] if as_json else [])
    with provider_acts(home, tokens_arrive):
        result = run(*args)
    assert result.exit_code == 0, result.output
    if as_json:
        first, second = (json.loads(line) for line in result.stdout.splitlines())
        assert second == {
            "status": "ready",
            "connection_id": first["connection_id"],
            "message": f"Connection {NAME!r} is ready.",
        }
    else:
        assert f"Connection {NAME!r} is ready" in result.stdout
    assert json.loads(run("connection", "show", NAME, "--json").stdout)["status"] == "ready"


def test_authorize_stops_when_the_connection_fails(run: Invoke, home: Path) -> None:
    create_oauth(run)

    def rejected(cf: Cardflow, connection_id: str) -> None:
        cf.token_store.grant_refused(
            connection_id, "invalid_client: bad secret", needs_authorization=False
        )

    with provider_acts(home, rejected):
        result = run("connection", "authorize", NAME, "--timeout", "30")
    assert result.exit_code == 1
    assert "invalid_client: bad secret" in result.stderr
    assert "cardflow connection update" in result.stderr


def test_authorize_stops_when_the_connection_is_changed(run: Invoke, home: Path) -> None:
    create_oauth(run)

    def edited(cf: Cardflow, connection_id: str) -> None:
        cf.connections.update(connection_id, config={"scope": "other"})

    with provider_acts(home, edited):
        result = run("connection", "authorize", NAME, "--timeout", "30", "--json")
    assert result.exit_code == 1
    assert "was changed while waiting" in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["status"] == "changed"


def test_ctrl_c_while_waiting_exits_130(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    create_oauth(run)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(authorize, "_pause", interrupted)
    result = run("connection", "authorize", NAME)
    assert result.exit_code == 130
    assert "Stopped waiting" in result.stderr
    assert "Traceback" not in result.output and "Aborted" not in result.output


def test_authorize_help_has_an_example(run: Invoke) -> None:
    result = run("connection", "authorize", "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout and "--json" in result.stdout
    assert "--no-wait" in result.stdout and "--timeout" in result.stdout
