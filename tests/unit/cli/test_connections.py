"""``cardflow connection``: create, list, show, update and delete; secrets never echoed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cardflow.cli import _common
from tests.unit.cli.helpers import SENTINEL, Invoke, assert_no_secret, create_basic, opened


def test_create_basic_from_env_and_load(invoke: Invoke, home: Path) -> None:
    result = create_basic(invoke)
    assert_no_secret(result)
    assert "password" in result.stdout and "set" in result.stdout
    with opened(home) as cf:
        loaded = cf.connections.load("JIRA - Basic - bot")
        assert (loaded.config.username, loaded.config.password) == ("bot", SENTINEL)  # type: ignore[attr-defined]


def test_create_custom_from_stdin_strips_only_the_newline(invoke: Invoke, home: Path) -> None:
    secret = f"  {SENTINEL} "
    result = invoke(
        "connection", "create", "Acme - key", "--type", "custom", "--set", "header_name=api_key",
        "--secret-stdin", "header_value", "--json", input=secret + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["config"] == {"header_name": "api_key", "header_value": {"set": True}}
    assert_no_secret(result, SENTINEL)
    with opened(home) as cf:
        assert cf.connections.load("Acme - key").config.header_value == secret  # type: ignore[attr-defined]


def test_create_bearer_and_query_with_auth_type_secrets_never_echoed(
    invoke: Invoke, home: Path
) -> None:
    key = f"{SENTINEL} &+/"
    query = invoke(
        "connection", "create", "Weather - key", "--auth-type", "query",
        "--set", "param_name=appid", "--secret-stdin", "param_value",
        "--allowed-host", "api.weather.example", "--json", input=key + "\n",
    )  # fmt: skip
    assert query.exit_code == 0, query.output
    config = json.loads(query.stdout)["config"]
    assert config == {"param_name": "appid", "param_value": {"set": True}}
    bearer = invoke(
        "connection", "create", "Svc - token", "--type", "bearer", "--secret-env", "token=TOK",
        env={"TOK": SENTINEL + "-tok"},
    )  # fmt: skip
    assert bearer.exit_code == 0, bearer.output
    assert "token" in bearer.stdout and "set" in bearer.stdout
    refused = invoke("connection", "create", "X", "--type", "bearer", "--set", "token=abc")
    assert refused.exit_code != 0 and "never taken from a command-line argument" in refused.output
    shown = [
        invoke("connection", "show", "Weather - key"),
        invoke("connection", "show", "Svc - token", "--json"),
        invoke("connection", "list"),
        invoke("connection", "list", "--json"),
    ]
    for result in (query, bearer, *shown):
        assert result.exit_code == 0, result.output
        assert_no_secret(result, SENTINEL)
    with opened(home) as cf:
        assert cf.connections.load("Weather - key").config.param_value == key  # type: ignore[attr-defined]
        assert cf.connections.load("Svc - token").config.token == SENTINEL + "-tok"  # type: ignore[attr-defined]
        cf.db.dispose()
    stored = b"".join(p.read_bytes() for p in home.glob("*.db*"))
    assert stored and SENTINEL.encode() not in stored  # encrypted at rest


def test_create_none_and_client_credentials(invoke: Invoke, home: Path) -> None:
    assert invoke("connection", "create", "Public", "--type", "none").exit_code == 0
    result = invoke(
        "connection", "create", "Svc - CC", "--type", "client_credentials",
        "--set", "token_url=https://id.example.com/token", "--set", "client_id=app",
        "--set", "scope=read write", "--secret-stdin", "client_secret", "--json",
        input=SENTINEL + "\r\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_no_secret(result)
    config = json.loads(result.stdout)["config"]
    assert config["client_secret"] == {"set": True} and config["scope"] == "read write"
    with opened(home) as cf:
        loaded = cf.connections.load("Svc - CC").config
        assert loaded.client_secret == SENTINEL  # type: ignore[attr-defined]
        assert cf.connections.get("Public").auth_type == "none"


def test_basic_without_password_is_allowed_without_a_terminal(invoke: Invoke) -> None:
    result = invoke(
        "connection", "create", "B", "--type", "basic", "--set", "username=bot", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["config"]["password"] == {"set": False}
    assert "not set" in invoke("connection", "show", "B").stdout


def test_secret_in_set_is_refused_and_not_echoed(invoke: Invoke, home: Path) -> None:
    result = invoke(
        "connection", "create", "B", "--type", "basic", "--set", "username=bot",
        "--set", f"password={SENTINEL}", "--json",
    )  # fmt: skip
    assert result.exit_code == 2
    assert_no_secret(result)
    assert "--secret-stdin password" in result.stderr
    assert "--secret-env password=" in result.stderr
    assert json.loads(result.stdout)["error"]["field"] == "config.password"
    with opened(home) as cf:
        assert cf.connections.list() == []


def test_set_without_equals_is_refused_without_echoing_it(invoke: Invoke) -> None:
    result = invoke("connection", "create", "B", "--type", "basic", "--set", SENTINEL)
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr
    assert_no_secret(result)


def test_missing_secret_without_terminal_says_how_to_pass_it(invoke: Invoke) -> None:
    result = invoke("connection", "create", "C", "--type", "custom", "--set", "header_name=X-Key")
    assert result.exit_code == 2
    assert "config.header_value" in result.stderr
    assert "--secret-stdin header_value" in result.stderr
    assert "Traceback" not in result.output


def test_missing_secret_is_asked_for_on_a_terminal(
    invoke: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_common, "stdin_is_tty", lambda: True)
    result = invoke(
        "connection", "create", "C", "--type", "custom", "--set", "header_name=X-Key",
        input=SENTINEL + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_no_secret(result)  # hidden input is not echoed
    with opened(home) as cf:
        assert cf.connections.load("C").config.header_value == SENTINEL  # type: ignore[attr-defined]


def test_secret_env_naming_a_missing_variable(invoke: Invoke) -> None:
    result = invoke(
        "connection", "create", "B", "--type", "basic", "--set", "username=bot",
        "--secret-env", "password=NOT_SET_ANYWHERE",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "NOT_SET_ANYWHERE" in result.stderr


def test_secret_option_for_a_non_secret_field_is_refused(invoke: Invoke) -> None:
    result = invoke(
        "connection", "create", "B", "--type", "basic", "--secret-env", "username=PW",
        env={"PW": SENTINEL},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "not a secret field" in result.stderr
    assert_no_secret(result)


def test_invalid_secret_is_refused_without_echoing_it(invoke: Invoke) -> None:
    result = invoke(
        "connection", "create", "C", "--type", "custom", "--set", "header_name=X-Key",
        "--secret-env", "header_value=V", env={"V": f"{SENTINEL}\r\nX-Evil: 1"},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "config.header_value" in result.stderr
    assert_no_secret(result)


def test_unknown_auth_type(invoke: Invoke) -> None:
    result = invoke("connection", "create", "X", "--type", "kerberos", "--json")
    assert result.exit_code == 2
    assert "auth_type" in result.stderr
    assert json.loads(result.stdout)["error"]["field"] == "auth_type"


def test_unknown_config_field_names_it(invoke: Invoke) -> None:
    result = invoke("connection", "create", "X", "--type", "none", "--set", "colour=blue")
    assert result.exit_code == 2
    assert "config.colour" in result.stderr


def test_duplicate_connection_name_is_a_conflict(invoke: Invoke) -> None:
    create_basic(invoke)
    result = invoke(
        "connection", "create", "JIRA - Basic - bot", "--type", "basic", "--set", "username=x"
    )
    assert result.exit_code == 2
    assert "already exists" in result.stderr


def test_show_and_list_never_print_the_secret(invoke: Invoke) -> None:
    created = json.loads(
        invoke(
            "connection", "create", "Acme", "--type", "custom", "--set", "header_name=api_key",
            "--secret-env", "header_value=V", "--json", env={"V": SENTINEL},
        ).stdout
    )  # fmt: skip
    create_basic(invoke)
    for args in (
        ("connection", "show", "Acme"),
        ("connection", "show", created["id"], "--json"),
        ("connection", "list"),
        ("connection", "list", "--json"),
        ("--json", "connection", "list"),
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert_no_secret(result)
        if "--json" in args:
            json.loads(result.stdout)
    shown = invoke("connection", "show", "Acme").stdout
    assert "api_key" in shown and "set" in shown
    listed = json.loads(invoke("connection", "list", "--json").stdout)
    assert [c["name"] for c in listed] == ["Acme", "JIRA - Basic - bot"]
    assert listed[0]["config"]["header_value"] == {"set": True}


def test_show_unknown_connection(invoke: Invoke) -> None:
    result = invoke("connection", "show", "nope", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["type"] == "connection_not_found"


def test_update_keeps_the_secret_when_not_given(invoke: Invoke, home: Path) -> None:
    create_basic(invoke)
    result = invoke(
        "connection", "update", "JIRA - Basic - bot", "--name", "JIRA - bot2",
        "--set", "username=bot2", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["config"] == {"username": "bot2", "password": {"set": True}}
    with opened(home) as cf:
        config = cf.connections.load("JIRA - bot2").config
        assert (config.username, config.password) == ("bot2", SENTINEL)  # type: ignore[attr-defined]


def test_update_replaces_the_secret_from_stdin(invoke: Invoke, home: Path) -> None:
    create_basic(invoke)
    result = invoke(
        "connection", "update", "JIRA - Basic - bot", "--secret-stdin", "password",
        input="new-" + SENTINEL + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_no_secret(result, "new-" + SENTINEL)
    with opened(home) as cf:
        config = cf.connections.load("JIRA - Basic - bot").config
        assert config.password == "new-" + SENTINEL  # type: ignore[attr-defined]


def test_update_refuses_a_secret_in_set_and_needs_a_change(invoke: Invoke) -> None:
    create_basic(invoke)
    result = invoke("connection", "update", "JIRA - Basic - bot", "--set", f"password={SENTINEL}")
    assert result.exit_code == 2
    assert_no_secret(result)
    assert invoke("connection", "update", "JIRA - Basic - bot").exit_code == 2


def test_update_can_change_the_auth_type(invoke: Invoke, home: Path) -> None:
    create_basic(invoke)
    result = invoke("connection", "update", "JIRA - Basic - bot", "--type", "none", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["auth_type"] == "none"


def test_delete_needs_yes_without_a_terminal(invoke: Invoke, home: Path) -> None:
    create_basic(invoke)
    refused = invoke("connection", "delete", "JIRA - Basic - bot")
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    result = invoke("connection", "delete", "JIRA - Basic - bot", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["deleted"] is True
    with opened(home) as cf:
        assert cf.connections.list() == []
    assert invoke("connection", "delete", "JIRA - Basic - bot", "--yes").exit_code == 2


def test_delete_asks_on_a_terminal(
    invoke: Invoke, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_basic(invoke)
    monkeypatch.setattr(_common, "stdin_is_tty", lambda: True)
    assert invoke("connection", "delete", "JIRA - Basic - bot", input="n\n").exit_code == 1
    assert invoke("connection", "delete", "JIRA - Basic - bot", input="y\n").exit_code == 0
    with opened(home) as cf:
        assert cf.connections.list() == []
