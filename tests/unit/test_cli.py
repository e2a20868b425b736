"""The ``cardflow`` CLI, run in-process with Typer's CliRunner on a fresh SQLite per test."""

from __future__ import annotations

import base64
import json
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import cardflow
from cardflow import cli
from cardflow.app import Cardflow
from tests.support.upstream import Upstream

SENTINEL = "s3cr3t-SENTINEL-7f3a9c"
Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CARDFLOW_") or name in ("FORCE_COLOR", "NO_COLOR"):
            monkeypatch.delenv(name)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def invoke(home: Path) -> Invoke:
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(
            cli.app, list(args), input=input, env={"CARDFLOW_HOME": str(home), **(env or {})}
        )

    return run


def opened(home: Path) -> Cardflow:
    return cardflow.open(home=home)


def assert_no_secret(result: Result, secret: str = SENTINEL) -> None:
    assert secret not in result.stdout
    assert secret not in result.stderr


def create_basic(invoke: Invoke, name: str = "JIRA - Basic - bot") -> Result:
    result = invoke(
        "connection", "create", name, "--type", "basic", "--set", "username=bot",
        "--secret-env", "password=PW", env={"PW": SENTINEL},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


# -- tokens -------------------------------------------------------------------------------


def test_token_create_prints_only_a_usable_token(invoke: Invoke, home: Path) -> None:
    result = invoke("token", "create", "--name", "ci")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert "\n" not in token and token.startswith("cf_")
    with opened(home) as cf:
        token_id = cf.api_tokens.authenticate(token)
        assert [t["id"] for t in cf.api_tokens.list()] == [token_id]


def test_token_create_json_list_and_revoke(invoke: Invoke, home: Path) -> None:
    created = json.loads(invoke("token", "create", "--name", "ci", "--json").stdout)
    assert set(created) == {"id", "name", "token"} and created["name"] == "ci"
    listed = invoke("token", "list", "--json")
    assert json.loads(listed.stdout)[0]["id"] == created["id"]
    assert created["token"] not in listed.stdout
    assert "ci" in invoke("token", "list").stdout

    assert invoke("token", "revoke", "ci").exit_code == 0
    with opened(home) as cf, pytest.raises(cardflow.CardflowError):
        cf.api_tokens.authenticate(created["token"])


def test_token_duplicate_name_is_a_conflict(invoke: Invoke) -> None:
    assert invoke("token", "create", "--name", "ci").exit_code == 0
    result = invoke("token", "create", "--name", "ci", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["type"] == "conflict"
    assert "already exists" in result.stderr


def test_revoke_unknown_token_is_not_found(invoke: Invoke) -> None:
    result = invoke("token", "revoke", "nope")
    assert result.exit_code == 2
    assert "error:" in result.stderr and "nope" in result.stderr
    assert "Traceback" not in result.output


# -- connections ----------------------------------------------------------------------------


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
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
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
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
    assert invoke("connection", "delete", "JIRA - Basic - bot", input="n\n").exit_code == 1
    assert invoke("connection", "delete", "JIRA - Basic - bot", input="y\n").exit_code == 0
    with opened(home) as cf:
        assert cf.connections.list() == []


# -- cards and runs -------------------------------------------------------------------------


def test_card_test_against_a_closed_port(invoke: Invoke) -> None:
    create_basic(invoke)
    result = invoke(
        "card", "test", "api_connector.get", "--connection", "JIRA - Basic - bot",
        "--input", "url=http://127.0.0.1:9/", "--timeout", "5",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "connection_error" in result.stderr
    assert "run id: run_" in result.stdout
    assert_no_secret(result)

    as_json = invoke(
        "card", "test", "api_connector.get", "--input", "url=http://127.0.0.1:9/", "--json"
    )
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["error"]["type"] == "connection_error"

    runs = json.loads(invoke("run", "list", "--json").stdout)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"failed"}
    shown = invoke("run", "show", data["run_id"])
    assert shown.exit_code == 0 and "api_connector.get" in shown.stdout
    assert (
        json.loads(invoke("run", "show", data["run_id"], "--json").stdout)["id"] == (data["run_id"])
    )


def test_card_test_success_shows_status_headers_and_json_body(
    invoke: Invoke, upstream: Upstream
) -> None:
    create_basic(invoke)
    result = invoke(
        "card", "test", "api_connector.get", "--connection", "JIRA - Basic - bot",
        "--input", f"url={upstream.url}/json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout and "HTTP 200" in result.stdout
    assert "content-type" in result.stdout.lower() and "application/json" in result.stdout
    assert '"hello": "world"' in result.stdout
    assert "run id: run_" in result.stdout
    sent = dict((k.lower(), v) for k, v in upstream.requests[-1]["headers"])
    expected = base64.b64encode(f"bot:{SENTINEL}".encode()).decode()
    assert sent["authorization"] == f"Basic {expected}"


def test_card_test_non_2xx_fails_and_continue_still_shows_outputs(
    invoke: Invoke, upstream: Upstream
) -> None:
    url = f"url={upstream.url}/status/404?body=missing-thing"
    failed = invoke("card", "test", "api_connector.get", "--input", url)
    assert failed.exit_code == 1
    assert "upstream_status" in failed.stderr and "missing-thing" in failed.stdout
    kept = invoke(
        "card", "test", "api_connector.get", "--input", url, "--on-error", "continue", "--json"
    )
    assert kept.exit_code == 1
    data = json.loads(kept.stdout)
    assert data["outputs"]["status_code"] == 404 and data["outputs"]["body"] == "missing-thing"


def test_card_test_bad_url_names_the_field(invoke: Invoke) -> None:
    result = invoke("card", "test", "api_connector.get", "--input", "url=ftp://example.com/x")
    assert result.exit_code == 2
    assert "inputs.url" in result.stderr
    as_json = invoke(
        "card", "test", "api_connector.get", "--inputs-json", '{"url": "nope"}', "--json"
    )
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["field"] == "inputs.url"


def test_card_test_input_values_are_json_when_they_parse(invoke: Invoke) -> None:
    # query must be an object: a JSON object passes validation, a plain string does not.
    ok = invoke(
        "card", "test", "api_connector.get", "--input", "url=http://127.0.0.1:9/",
        "--input", 'query={"a": 1}', "--json",
    )  # fmt: skip
    assert ok.exit_code == 1 and json.loads(ok.stdout)["error"]["type"] == "connection_error"
    bad = invoke(
        "card", "test", "api_connector.get", "--input", "url=http://127.0.0.1:9/",
        "--input", "query=a=1",
    )  # fmt: skip
    assert bad.exit_code == 2 and "inputs.query" in bad.stderr


def test_card_test_inputs_file_and_errors(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps({"url": "gopher://x"}))
    result = invoke("card", "test", "api_connector.get", "--inputs-file", str(path))
    assert result.exit_code == 2 and "inputs.url" in result.stderr
    broken = invoke("card", "test", "api_connector.get", "--inputs-json", "{not json")
    assert broken.exit_code == 2 and "not valid JSON" in broken.stderr
    unknown = invoke("card", "test", "no.such.card", "--input", "url=http://127.0.0.1:9/")
    assert unknown.exit_code == 2 and "no.such.card" in unknown.stderr
    missing = invoke(
        "card", "test", "api_connector.get", "--connection", "ghost",
        "--input", "url=http://127.0.0.1:9/",
    )  # fmt: skip
    assert missing.exit_code == 2 and "ghost" in missing.stderr


def test_run_show_unknown(invoke: Invoke) -> None:
    result = invoke("run", "show", "run_nope")
    assert result.exit_code == 2 and "run_nope" in result.stderr
    assert invoke("run", "list").stdout.strip() == "No runs yet."


# -- keys, database, serve ------------------------------------------------------------------


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
    fake = types.ModuleType("cardflow.server.app")

    def create_app(cf: Any = None, *, settings: Any = None) -> str:
        seen["settings"] = settings
        return "the-app"

    fake.create_app = create_app  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "cardflow.server.app", fake)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))

    result = invoke("serve", "--port", "9123")
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:9123" in result.stdout
    assert "cardflow token create --name NAME" in result.stdout
    assert seen["app"] == "the-app" and seen["settings"].port == 9123
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 9123)

    assert invoke("token", "create", "--name", "ci").exit_code == 0
    again = invoke("serve", "--json", env={"CARDFLOW_HOST": "::1"})
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data == {
        "url": "http://[::1]:8080",
        "public_url": "http://127.0.0.1:8080",
        "api_token_exists": True,
    }


def test_every_command_has_help_with_an_example(invoke: Invoke) -> None:
    commands = [
        ("serve",), ("token", "create"), ("token", "list"), ("token", "revoke"),
        ("connection", "create"), ("connection", "list"), ("connection", "show"),
        ("connection", "update"), ("connection", "delete"), ("card", "test"),
        ("run", "list"), ("run", "show"), ("keys", "rotate"), ("db", "upgrade"),
    ]  # fmt: skip
    for command in commands:
        result = invoke(*command, "--help")
        assert result.exit_code == 0, command
        assert "Example" in result.stdout and "--json" in result.stdout, command
