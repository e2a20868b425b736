"""``cardflow serve``, ``keys rotate``, ``db upgrade``, settings errors and help texts."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import pytest

from tests.unit.cli.helpers import SENTINEL, Invoke, assert_no_secret, create_basic, opened


def test_keys_rotate_keeps_secrets_readable(invoke: Invoke, home: Path) -> None:
    create_basic(invoke)
    result = invoke("keys", "rotate", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["connections"] == 1
    text = invoke("keys", "rotate")
    assert text.exit_code == 0 and "Rotated to data key" in text.stdout
    with opened(home) as cf:
        assert cf.connections.load("JIRA - Basic - bot").config.password == SENTINEL  # type: ignore[attr-defined]
    assert SENTINEL.encode() not in (home / "cardflow.db").read_bytes()


def test_db_upgrade_prints_the_database(invoke: Invoke, home: Path) -> None:
    result = invoke("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "cardflow.db" in result.stdout
    assert json.loads(invoke("db", "upgrade", "--json").stdout)["upgraded"] is True


def test_db_upgrade_failure_never_shows_the_password(invoke: Invoke) -> None:
    url = f"postgresql://cardflow:{SENTINEL}@127.0.0.1:9/cardflow"
    result = invoke("db", "upgrade", "--json", env={"CARDFLOW_DATABASE_URL": url})
    assert result.exit_code == 1
    assert "error:" in result.stderr and "Traceback" not in result.output
    assert json.loads(result.stdout)["error"]["type"] == "configuration"
    assert_no_secret(result)


def test_bad_setting_is_a_clean_error(invoke: Invoke) -> None:
    result = invoke("connection", "list", env={"CARDFLOW_DEFAULT_TIMEOUT": "-1"})
    assert result.exit_code == 1
    assert "CARDFLOW_DEFAULT_TIMEOUT" in result.stderr


def test_serve_prints_url_and_first_start_hint(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    fake = types.ModuleType("cardflow.server.asgi")

    def create_app(cf: Any = None, *, settings: Any = None, worker: bool = True) -> str:
        seen["settings"] = settings
        seen["worker"] = worker
        return "the-app"

    fake.create_app = create_app  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "cardflow.server.asgi", fake)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))

    result = invoke("serve", "--port", "9123")
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:9123" in result.stdout
    assert "cardflow token create --name NAME" in result.stdout
    # first start: a one-time login link for the web app, at the public URL
    assert "Log in to the web app" in result.stdout
    assert "http://127.0.0.1:9123/login?token=" in result.stdout  # public URL follows --port
    assert seen["app"] == "the-app" and seen["settings"].port == 9123
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 9123)

    assert invoke("token", "create", "--name", "ci").exit_code == 0
    again = invoke("serve", "--json", env={"CARDFLOW_HOST": "::1"})
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data == {
        "url": "http://[::1]:8080",
        "public_url": "http://[::1]:8080",  # unset, it follows host and port
        "api_token_exists": True,
        "login_url": None,  # printed on first start only; later: cardflow login-link
    }

    link = invoke("login-link", "--json")
    assert link.exit_code == 0, link.output
    assert json.loads(link.stdout)["url"].startswith("http://127.0.0.1:8080/login?token=")
    plain = invoke("login-link")
    assert plain.exit_code == 0 and plain.stdout.strip().startswith("http://127.0.0.1:8080/login")


def test_every_command_has_help_with_an_example(invoke: Invoke) -> None:
    commands = [
        ("serve",), ("token", "create"), ("token", "list"), ("token", "revoke"),
        ("connection", "create"), ("connection", "list"), ("connection", "show"),
        ("connection", "update"), ("connection", "delete"), ("card", "test"),
        ("run", "list"), ("run", "show"), ("keys", "rotate"), ("db", "upgrade"), ("login-link",),
        ("audit", "list"),
    ]  # fmt: skip
    for command in commands:
        result = invoke(*command, "--help")
        assert result.exit_code == 0, command
        assert "Example" in result.stdout and "--json" in result.stdout, command
