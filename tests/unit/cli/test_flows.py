"""``cardflow flow``: import, export, list, show, run, enable, disable, delete and token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cardflow.cli import _common
from cardflow.flows.model import dump_document
from tests.unit.cli.helpers import Invoke, opened

GREET = """\
name: Greet
save_data: true
trigger: {type: manual}
cards:
  - id: greeting
    card: object.construct
    inputs: {hello: "{{ trigger.body.who }}", n: 1}
  - id: gate
    card: flow.continue_if
    inputs: {condition: "{{ steps.greeting.output.n }}"}
"""

ENDPOINT = """\
name: Offboard
trigger: {type: api_endpoint, alias: offboard, security: client_token}
cards:
  - id: ack
    card: api_connector.close
    inputs: {status_code: 200, body: {accepted: true}}
"""

FAILING = """\
name: Broken
trigger: {type: manual}
cards:
  - id: call
    card: api_connector.get
    inputs: {url: "http://127.0.0.1:9/"}
    timeout: 5
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def imported(invoke: Invoke, path: Path, *args: str) -> dict[str, object]:
    result = invoke("flow", "import", str(path), "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_import_list_show(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("flow", "import", str(write(tmp_path, "greet.yaml", GREET)))
    assert result.exit_code == 0, result.output
    assert "Imported flow 'Greet'" in result.stdout
    assert "flw_" in result.stdout and "manual" in result.stdout
    assert "client token" not in result.stdout

    listed = invoke("flow", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if "Greet" in line)
    assert "manual" in row and "yes" in row and " 2 " in row and "flw_" in row
    flows = json.loads(invoke("flow", "list", "--json").stdout)
    assert [f["name"] for f in flows] == ["Greet"] and flows[0]["client_token"] is None

    shown = invoke("flow", "show", "Greet")
    assert shown.exit_code == 0, shown.output
    for text in ("greeting", "object.construct", "gate", "flow.continue_if", flows[0]["id"]):
        assert text in shown.stdout
    by_id = json.loads(invoke("flow", "show", flows[0]["id"], "--json").stdout)
    assert by_id["name"] == "Greet" and len(by_id["cards"]) == 2


def test_import_existing_name_needs_replace(invoke: Invoke, tmp_path: Path) -> None:
    path = write(tmp_path, "greet.yaml", GREET)
    first = imported(invoke, path)
    again = invoke("flow", "import", str(path))
    assert again.exit_code == 2
    assert "--replace" in again.stderr
    as_json = invoke("flow", "import", str(path), "--json")
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["error"]["type"] == "conflict"

    changed = write(tmp_path, "changed.yaml", GREET.replace("save_data: true", "save_data: false"))
    replaced = invoke("flow", "import", str(changed), "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert "Replaced flow 'Greet'" in replaced.stdout
    view = json.loads(invoke("flow", "show", "Greet", "--json").stdout)
    assert view["id"] == first["id"] and view["save_data"] is False and view["version"] == 2
    # --replace with no flow of that name creates it
    other = write(tmp_path, "other.yaml", GREET.replace("name: Greet", "name: Other"))
    assert imported(invoke, other, "--replace")["name"] == "Other"


def test_export_round_trips(invoke: Invoke, tmp_path: Path) -> None:
    created = imported(invoke, write(tmp_path, "greet.yaml", GREET))
    exported = invoke("flow", "export", "Greet")
    assert exported.exit_code == 0, exported.output
    with opened(tmp_path / "home") as cf:
        assert exported.stdout == dump_document(cf.flows.get("Greet").document, "yaml")
    assert yaml.safe_load(exported.stdout)["cards"][0]["card"] == "object.construct"

    as_json = invoke("flow", "export", "Greet", "--format", "json")
    assert json.loads(as_json.stdout)["name"] == "Greet"
    assert json.loads(invoke("flow", "export", "Greet", "--json").stdout)["name"] == "Greet"

    out = tmp_path / "out.yaml"
    written = invoke("flow", "export", str(created["id"]), "--output", str(out))
    assert written.exit_code == 0, written.output
    assert out.read_text("utf-8") == exported.stdout

    again = imported(invoke, out, "--replace")
    assert again["id"] == created["id"]
    assert invoke("flow", "export", "Greet").stdout == exported.stdout

    out_json = tmp_path / "out.json"
    invoke("flow", "export", "Greet", "--format", "json", "-o", str(out_json))
    assert imported(invoke, out_json, "--replace")["id"] == created["id"]


def test_import_from_stdin(invoke: Invoke) -> None:
    result = invoke("flow", "import", "-", "--json", input=GREET)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "Greet"


def test_run_with_input(invoke: Invoke, tmp_path: Path) -> None:
    imported(invoke, write(tmp_path, "greet.yaml", GREET))
    result = invoke("flow", "run", "Greet", "--input", '{"who": "ann"}')
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout and "object.construct" in result.stdout
    assert '"hello": "ann"' in result.stdout

    as_json = invoke("flow", "run", "Greet", "--input", '{"who": "bob"}', "--json")
    assert as_json.exit_code == 0, as_json.output
    run = json.loads(as_json.stdout)
    assert run["status"] == "succeeded"
    assert run["cards"][0]["outputs"] == {"output": {"hello": "bob", "n": 1}}
    shown = json.loads(invoke("run", "show", run["id"], "--json").stdout)
    assert shown["id"] == run["id"] and shown["status"] == "succeeded"

    inputs = write(tmp_path, "inputs.json", '{"who": "cy"}')
    from_file = json.loads(
        invoke("flow", "run", "Greet", "--input-file", str(inputs), "--json").stdout
    )
    assert from_file["cards"][0]["outputs"]["output"]["hello"] == "cy"


def test_run_bad_input(invoke: Invoke, tmp_path: Path) -> None:
    imported(invoke, write(tmp_path, "greet.yaml", GREET))
    bad = invoke("flow", "run", "Greet", "--input", "{not json")
    assert bad.exit_code == 2 and "--input" in bad.stderr
    not_object = invoke("flow", "run", "Greet", "--input", "[1]")
    assert not_object.exit_code == 2 and "JSON object" in not_object.stderr
    inputs = write(tmp_path, "inputs.json", "{}")
    both = invoke("flow", "run", "Greet", "--input", "{}", "--input-file", str(inputs))
    assert both.exit_code == 2
    missing = invoke("flow", "run", "Nope")
    assert missing.exit_code == 2 and "Nope" in missing.stderr


def test_failing_run_exits_1(invoke: Invoke, tmp_path: Path) -> None:
    imported(invoke, write(tmp_path, "broken.yaml", FAILING))
    result = invoke("flow", "run", "Broken")
    assert result.exit_code == 1, result.output
    assert "failed" in result.stdout and "api_connector.get" in result.stdout
    as_json = invoke("flow", "run", "Broken", "--json")
    assert as_json.exit_code == 1
    run = json.loads(as_json.stdout)
    assert run["status"] == "failed" and run["cards"][0]["status"] == "failed"


def test_invalid_flow_files_exit_2(invoke: Invoke, tmp_path: Path) -> None:
    unknown = write(tmp_path, "bad.yaml", GREET.replace("object.construct", "no.such_card"))
    result = invoke("flow", "import", str(unknown))
    assert result.exit_code == 2
    assert "cards.0.card" in result.stderr and "no.such_card" in result.stderr
    as_json = invoke("flow", "import", str(unknown), "--json")
    assert json.loads(as_json.stdout)["error"]["field"] == "cards.0.card"

    broken_yaml = write(tmp_path, "broken.yaml", "name: x\ntrigger: {type: manual\ncards: []\n")
    result = invoke("flow", "import", str(broken_yaml))
    assert result.exit_code == 2
    # one sentence, 1-based line and column, no parser internals
    assert (
        "not valid YAML at line 3, column 6: expected ',' or '}', but got ':' (while parsing "
        "a flow mapping at line 2, column 10)." in " ".join(result.stderr.split())
    )
    assert "<unicode string>" not in result.stderr and "^" not in result.stderr

    broken_json = write(tmp_path, "broken.json", '{"name": "x",\n "cards": [}')
    result = invoke("flow", "import", str(broken_json))
    assert result.exit_code == 2
    assert "not valid JSON: expecting value at line 2, column 12." in result.stderr

    extra = write(tmp_path, "extra.yaml", GREET + "colour: blue\n")
    result = invoke("flow", "import", str(extra))
    assert result.exit_code == 2 and "colour" in result.stderr

    missing = invoke("flow", "import", str(tmp_path / "missing.yaml"))
    assert missing.exit_code == 2 and "missing.yaml" in missing.stderr
    assert json.loads(invoke("flow", "list", "--json").stdout) == []


def test_a_flow_file_with_several_problems_names_them_all(invoke: Invoke, tmp_path: Path) -> None:
    text = GREET.replace("object.construct", "no.such_card").replace(
        "steps.greeting.output.n", "steps.nowhere.n"
    )
    result = invoke("flow", "import", str(write(tmp_path, "two.yaml", text)))
    assert result.exit_code == 2
    said = " ".join(result.stderr.split())
    assert "error: 2 problems:" in said
    assert "There is no card 'no.such_card'" in said and "(field: cards.0.card)" in said
    assert "there is no card 'nowhere'" in said and "(field: cards.1.inputs.condition)" in said
    as_json = invoke("flow", "import", str(tmp_path / "two.yaml"), "--json")
    error = json.loads(as_json.stdout)["error"]
    assert [e["field"] for e in error["errors"]] == ["cards.0.card", "cards.1.inputs.condition"]


def test_api_endpoint_flow_token(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("flow", "import", str(write(tmp_path, "offboard.yaml", ENDPOINT)))
    assert result.exit_code == 0, result.output
    view = json.loads(invoke("flow", "show", "Offboard", "--json").stdout)
    token = view["client_token"]
    assert token and token.startswith("ct_")
    assert view["invoke_url"].endswith("/invoke/offboard")
    assert token in result.stdout and view["invoke_url"] in result.stdout

    listed = invoke("flow", "list")
    assert "POST|GET /invoke/offboard" in listed.stdout
    shown = invoke("flow", "show", "Offboard")
    assert token in shown.stdout and view["invoke_url"] in shown.stdout

    current = invoke("flow", "token", "Offboard")
    assert current.exit_code == 0 and current.stdout.strip() == token
    new = invoke("flow", "token", "Offboard", "--regenerate")
    assert new.exit_code == 0, new.output
    new_token = new.stdout.strip()
    assert new_token.startswith("ct_") and new_token != token
    assert json.loads(invoke("flow", "show", "Offboard", "--json").stdout)["client_token"] == (
        new_token
    )
    as_json = json.loads(invoke("flow", "token", "Offboard", "--regenerate", "--json").stdout)
    assert as_json["client_token"] not in (token, new_token)


def test_token_of_a_manual_flow_exits_2(invoke: Invoke, tmp_path: Path) -> None:
    imported(invoke, write(tmp_path, "greet.yaml", GREET))
    for args in ((), ("--regenerate",)):
        result = invoke("flow", "token", "Greet", *args)
        assert result.exit_code == 2 and "client_token" in result.stderr


def test_enable_disable(invoke: Invoke, tmp_path: Path) -> None:
    imported(invoke, write(tmp_path, "offboard.yaml", ENDPOINT))
    result = invoke("flow", "disable", "Offboard")
    assert result.exit_code == 0 and "Disabled flow 'Offboard'" in result.stdout
    assert json.loads(invoke("flow", "show", "Offboard", "--json").stdout)["enabled"] is False
    listed = invoke("flow", "list").stdout.splitlines()
    assert " no " in next(line for line in listed if "/invoke/offboard" in line)
    with opened(tmp_path / "home") as cf:
        assert cf.flows.by_alias("offboard") is None
    as_json = invoke("flow", "enable", "Offboard", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["enabled"] is True
    with opened(tmp_path / "home") as cf:
        assert cf.flows.by_alias("offboard") is not None


def test_delete(invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    imported(invoke, write(tmp_path, "greet.yaml", GREET))
    no_tty = invoke("flow", "delete", "Greet")
    assert no_tty.exit_code == 2 and "--yes" in no_tty.stderr

    monkeypatch.setattr(_common, "stdin_is_tty", lambda: True)
    declined = invoke("flow", "delete", "Greet", input="n\n")
    assert declined.exit_code == 1 and "Not deleted" in declined.stderr
    assert invoke("flow", "show", "Greet").exit_code == 0

    deleted = invoke("flow", "delete", "Greet", "--yes")
    assert deleted.exit_code == 0 and "Deleted flow 'Greet'" in deleted.stdout
    assert invoke("flow", "show", "Greet").exit_code == 2
    assert invoke("flow", "delete", "Greet", "--yes").exit_code == 2


def test_import_as_a_copy_beside_a_flow_of_the_same_name(invoke: Invoke, tmp_path: Path) -> None:
    path = write(tmp_path, "greet.yaml", GREET)
    assert invoke("flow", "import", str(path)).exit_code == 0
    clash = invoke("flow", "import", str(path))
    assert clash.exit_code == 2 and "--as-copy" in clash.stderr
    copy = invoke("flow", "import", str(path), "--as-copy", "--json")
    assert copy.exit_code == 0, copy.stderr
    assert json.loads(copy.stdout)["name"].endswith("(copy)")
    again = invoke("flow", "import", str(path), "--as-copy", "--json")
    assert json.loads(again.stdout)["name"].endswith("(copy 2)")
    both = invoke("flow", "import", str(path), "--as-copy", "--replace")
    assert both.exit_code == 2 and "not both" in both.stderr


OFFBOARD = """\
name: Offboard
trigger: {type: manual}
cards:
  - id: user
    card: api_connector.get
    connection: JIRA - OAuth - prod
    inputs: {url: "https://jira.example.com/rest/api/3/user"}
  - id: each
    card: list.for_each
    inputs:
      list: [1, 2]
      cards:
        - id: revoke
          card: api_connector.delete
          connection: JIRA - OAuth - prod
          inputs: {url: "https://jira.example.com/rest/api/3/user"}
  - id: post
    card: api_connector.post
    connection: Slack bot
    inputs: {url: "https://slack.example.com/api/chat.postMessage"}
"""


def test_import_names_the_missing_connections_and_the_flags_that_map_them(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = write(tmp_path, "offboard.yaml", OFFBOARD)
    refused = invoke("flow", "import", str(path))
    assert refused.exit_code == 2
    assert "'JIRA - OAuth - prod', used by cards 'user', 'revoke'" in refused.stderr
    assert "'Slack bot', used by card 'post'" in refused.stderr
    assert (
        "--connection 'JIRA - OAuth - prod=CONNECTION' --connection 'Slack bot=CONNECTION'"
        in refused.stderr
    )
    as_json = invoke("flow", "import", str(path), "--json")
    assert as_json.exit_code == 2
    error = json.loads(as_json.stdout)["error"]
    assert [m["name"] for m in error["missing_connections"]] == ["JIRA - OAuth - prod", "Slack bot"]
    assert error["missing_connections"][0]["cards"][1] == {
        "id": "revoke",
        "field": "cards.1.inputs.cards.0.connection",
    }

    for name in ("Jira bot", "Slack token"):
        assert invoke("connection", "create", name, "--type", "none").exit_code == 0
    jira = "--connection=JIRA - OAuth - prod=Jira bot"
    partly = invoke("flow", "import", str(path), jira)
    assert partly.exit_code == 2 and "'JIRA - OAuth - prod'" not in partly.stderr
    assert "--connection 'Slack bot=CONNECTION'" in partly.stderr
    wrong = invoke("flow", "import", str(path), jira, "--connection", "Slack bot=nope")
    assert wrong.exit_code == 2
    assert "--connection 'Slack bot=nope': there is no connection 'nope'" in wrong.stderr
    typo = invoke("flow", "import", str(path), jira, "--connection", "Slack=Slack token")
    assert typo.exit_code == 2
    assert "--connection 'Slack=Slack token': no card of the flow names" in typo.stderr
    with opened(tmp_path / "home") as cf:
        slack_id = cf.connections.get("Slack token").id
    flow = imported(invoke, path, jira, "--connection", f"Slack bot={slack_id}")
    cards = flow["cards"]
    assert isinstance(cards, list)
    assert [card["connection"] for card in cards] == ["Jira bot", None, "Slack token"]
    assert cards[1]["inputs"]["cards"][0]["connection"] == "Jira bot"
    shown = invoke("flow", "show", "Offboard")
    assert "Slack token" in shown.stdout
