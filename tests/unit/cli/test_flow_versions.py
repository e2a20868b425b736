"""``cardflow flow versions``, ``diff``, ``restore`` and ``--note``: a flow's history."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cli.helpers import Invoke, opened

GREET = """\
name: Greet
trigger: {type: manual}
cards:
  - id: greeting
    card: object.construct
    inputs: {hello: world}
"""


def test_versions_diff_and_restore(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "greet.yaml"
    path.write_text(GREET, encoding="utf-8")
    assert invoke("flow", "import", str(path), "--note", "first cut").exit_code == 0
    path.write_text(GREET.replace("world", "there"), encoding="utf-8")
    replaced = invoke("flow", "import", str(path), "--replace", "--note", "say there")
    assert replaced.exit_code == 0, replaced.output
    assert invoke("flow", "disable", "Greet", "--note", "paused").exit_code == 0

    listed = invoke("flow", "versions", "Greet")
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.stdout.splitlines() if " cli " in f" {line} "]
    assert [row.split()[0] for row in rows] == ["3", "2", "1"]
    assert "paused" in rows[0] and "say there" in rows[1] and "first cut" in rows[2]
    as_json = json.loads(invoke("flow", "versions", "Greet", "--json", "--limit", "2").stdout)
    assert [(v["number"], v["actor"]) for v in as_json] == [(3, "cli (owner)"), (2, "cli (owner)")]

    diff = invoke("flow", "diff", "Greet", "1", "2")
    assert diff.exit_code == 0, diff.output
    assert "--- version 1" in diff.stdout and "+++ version 2" in diff.stdout
    assert "-    hello: world" in diff.stdout and "+    hello: there" in diff.stdout
    same = invoke("flow", "diff", "Greet", "2", "2")
    assert "are the same" in same.stdout

    restored = invoke("flow", "restore", "Greet", "1")
    assert restored.exit_code == 0, restored.output
    assert "to version 1, saved as version 4" in restored.stdout
    with opened(tmp_path / "home") as cf:
        view = cf.flows.get("Greet")
        assert view.cards[0].inputs == {"hello": "world"} and view.enabled
        newest = cf.flows.versions("Greet", limit=1)[0]
        assert (newest.number, newest.actor, newest.note) == (
            4,
            "cli (owner)",
            "Restored from version 1",
        )


def test_unknown_versions_and_long_notes_are_refused(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "greet.yaml"
    path.write_text(GREET, encoding="utf-8")
    assert invoke("flow", "import", str(path)).exit_code == 0
    missing = invoke("flow", "restore", "Greet", "7")
    assert missing.exit_code == 2
    assert "no version 7" in missing.stderr
    assert invoke("flow", "diff", "Greet", "1", "7").exit_code == 2
    assert invoke("flow", "versions", "Nope").exit_code == 2
    assert invoke("flow", "restore", "Greet", "0").exit_code == 2  # not a version number
    long_note = invoke("flow", "disable", "Greet", "--note", "n" * 501, "--json")
    assert long_note.exit_code == 2
    assert json.loads(long_note.stdout)["error"]["field"] == "note"
    with opened(tmp_path / "home") as cf:
        assert cf.flows.get("Greet").enabled and cf.flows.get("Greet").saved_version == 1
