"""``cardflow token``: API tokens printed once, listed, revoked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cardflow
from tests.unit.cli.helpers import Invoke, opened


def test_token_create_prints_only_a_usable_token(invoke: Invoke, home: Path) -> None:
    result = invoke("token", "create", "--name", "ci")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert "\n" not in token and token.startswith("cf_")
    with opened(home) as cf:
        caller = cf.api_tokens.authenticate(token)
        assert (caller.token_name, caller.user_name, caller.role) == ("ci", "owner", "owner")
        assert [t.name for t in cf.api_tokens.list()] == ["ci"]


def test_token_create_json_list_and_revoke(invoke: Invoke, home: Path) -> None:
    created = json.loads(invoke("token", "create", "--name", "ci", "--json").stdout)
    assert set(created) == {"id", "name", "user", "role", "token"} and created["name"] == "ci"
    assert (created["user"], created["role"]) == ("owner", None)
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


def test_token_create_with_a_narrower_role_for_a_user(invoke: Invoke, home: Path) -> None:
    invited = invoke("user", "invite", "--name", "ann", "--role", "builder")
    assert invited.exit_code == 0, invited.output
    with opened(home) as cf:
        cf.web_sessions.redeem(invited.stdout.strip().rpartition("token=")[2])
    made = invoke("token", "create", "--name", "ro", "--user", "ann", "--role", "viewer", "--json")
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    assert (created["user"], created["role"]) == ("ann", "viewer")
    with opened(home) as cf:
        assert cf.api_tokens.authenticate(created["token"]).role == "viewer"
    wider = invoke("token", "create", "--name", "rw", "--user", "ann", "--role", "admin")
    assert wider.exit_code == 2 and "wider role" in wider.stderr
    listed = invoke("token", "list").stdout
    assert "ann" in listed and "viewer" in listed
