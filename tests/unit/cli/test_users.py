"""``cardflow user``: list, invite, set-role, remove, as the owner on the host."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cli.helpers import Invoke, opened


def _invite(invoke: Invoke, home: Path, name: str, role: str) -> str:
    result = invoke("user", "invite", "--name", name, "--role", role)
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert "\n" not in url and "/login?token=" in url  # the link is all of stdout
    token = url.rpartition("token=")[2]
    assert token not in result.stderr
    return token


def test_invite_list_set_role_and_remove(invoke: Invoke, home: Path) -> None:
    token = _invite(invoke, home, "alice", "builder")
    pending = json.loads(invoke("user", "list", "--json").stdout)
    assert [u["name"] for u in pending["users"]] == ["owner"]  # the first user: the owner
    assert [(i["name"], i["role"]) for i in pending["invites"]] == [("alice", "builder")]
    assert token not in invoke("user", "list").stdout
    with opened(home) as cf:
        cf.web_sessions.redeem(token)
    listed = invoke("user", "list")
    assert "alice" in listed.stdout and "builder" in listed.stdout

    changed = invoke("user", "set-role", "alice", "viewer", "--json")
    assert changed.exit_code == 0 and json.loads(changed.stdout)["role"] == "viewer"
    bad = invoke("user", "set-role", "alice", "emperor")
    assert bad.exit_code == 2 and "not a role" in bad.stderr

    removed = invoke("user", "remove", "alice", "--yes")
    assert removed.exit_code == 0 and "Removed user 'alice'" in removed.stdout
    assert invoke("user", "remove", "alice", "--yes").exit_code == 2


def test_the_last_owner_cannot_be_removed_or_demoted(invoke: Invoke) -> None:
    for args in (("remove", "owner", "--yes"), ("set-role", "owner", "admin")):
        result = invoke("user", *args)
        assert result.exit_code == 2, result.output
        assert "last owner" in result.stderr


def test_the_cli_saves_flows_as_the_owner(invoke: Invoke, home: Path, tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text("name: F\ncards: []\n")
    assert invoke("flow", "import", str(flow)).exit_code == 0
    with opened(home) as cf:
        (version,) = cf.flows.versions("F")
        assert version.actor == "cli (owner)"
