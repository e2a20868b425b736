"""Importing a flow file that names connections that are not here: the refusal lists every
one with the cards using it, and a mapping to existing connections lets the file in."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import RunningServer

# Two connections that do not exist here: one used twice (once inside a For Each), one
# inside the else branch of an If / Else.
OFFBOARD = """\
name: Offboard
trigger: {type: manual}
cards:
  - id: user
    card: api_connector.get
    connection: "JIRA - OAuth - prod"
    inputs: {url: "https://jira.example.com/rest/api/3/user"}
  - id: each
    card: list.for_each
    inputs:
      list: [1, 2]
      cards:
        - id: revoke
          card: api_connector.delete
          connection: "JIRA - OAuth - prod"
          inputs: {url: "https://jira.example.com/rest/api/3/user"}
  - id: tell
    card: branch.if_else
    inputs:
      condition: true
      then: []
      else:
        - id: post
          card: api_connector.post
          connection: Slack bot
          inputs: {url: "https://slack.example.com/api/chat.postMessage"}
"""


def api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def connections_of(flow: dict[str, Any]) -> dict[str, str | None]:
    """Card id -> the connection it names, nested cards included."""
    found: dict[str, str | None] = {}

    def visit(cards: list[dict[str, Any]]) -> None:
        for card in cards:
            found[card["id"]] = card.get("connection")
            for key in ("cards", "then", "else"):
                if isinstance(card.get("inputs", {}).get(key), list):
                    visit(card["inputs"][key])

    visit(flow["cards"])
    return found


def test_a_file_naming_missing_connections_is_refused_naming_each_and_the_cards_using_it(
    server: RunningServer,
) -> None:
    with api(server) as client:
        answer = client.post("/api/v1/flows/import", json={"content": OFFBOARD})
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["type"] == "invalid_input"
        assert error["field"] == "cards.0.connection"
        assert "'JIRA - OAuth - prod'" in error["message"]
        assert "'Slack bot'" in error["message"]
        assert error["missing_connections"] == [
            {
                "name": "JIRA - OAuth - prod",
                "cards": [
                    {"id": "user", "field": "cards.0.connection"},
                    {"id": "revoke", "field": "cards.1.inputs.cards.0.connection"},
                ],
            },
            {
                "name": "Slack bot",
                "cards": [{"id": "post", "field": "cards.2.inputs.else.0.connection"}],
            },
        ]
        assert client.get("/api/v1/flows").json() == []


def test_a_mapping_points_every_card_at_existing_connections_nested_ones_too(
    server: RunningServer,
) -> None:
    jira = server.cf.connections.create("JIRA - Basic - bot", "none", {})
    slack = server.cf.connections.create("Slack - token", "none", {})
    with api(server) as client:
        # one mapped by name, one by id: the cards name both by name, as the builder writes
        mapping = {"JIRA - OAuth - prod": "JIRA - Basic - bot", "Slack bot": slack.id}
        answer = client.post(
            "/api/v1/flows/import", json={"content": OFFBOARD, "connections": mapping}
        )
        assert answer.status_code == 201, answer.text
        flow = answer.json()
        assert connections_of(flow) == {
            "user": jira.name,
            "each": None,
            "revoke": jira.name,
            "tell": None,
            "post": slack.name,
        }
        assert connections_of(client.get(f"/api/v1/flows/{flow['id']}").json())["post"] == (
            "Slack - token"
        )
        used = client.get(f"/api/v1/connections/{jira.id}").json()["used_by"]
        assert [use["name"] for use in used] == ["Offboard"]


def test_a_partial_mapping_leaves_only_the_unmapped_connection_missing(
    server: RunningServer,
) -> None:
    server.cf.connections.create("JIRA - Basic - bot", "none", {})
    mapping = {"JIRA - OAuth - prod": "JIRA - Basic - bot"}
    with api(server) as client:
        answer = client.post(
            "/api/v1/flows/import", json={"content": OFFBOARD, "connections": mapping}
        )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == "cards.2.inputs.else.0.connection"
    assert [missing["name"] for missing in error["missing_connections"]] == ["Slack bot"]
    assert error["message"] == "Card 'post': there is no connection 'Slack bot'."


def test_a_mapping_to_a_connection_that_does_not_exist_names_its_field(
    server: RunningServer,
) -> None:
    server.cf.connections.create("JIRA - Basic - bot", "none", {})
    with api(server) as client:
        answer = client.post(
            "/api/v1/flows/import",
            json={
                "content": OFFBOARD,
                "connections": {"JIRA - OAuth - prod": "JIRA - Basic - bot", "Slack bot": "nope"},
            },
        )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_input"
    assert error["field"] == "connections.Slack bot"
    assert "'nope'" in error["message"]
    assert "missing_connections" not in error


def test_a_mapping_for_a_connection_no_card_names_is_refused(server: RunningServer) -> None:
    server.cf.connections.create("JIRA - Basic - bot", "none", {})
    with api(server) as client:
        answer = client.post(
            "/api/v1/flows/import",
            json={"content": OFFBOARD, "connections": {"JIRA - OAuth - prd": "JIRA - Basic - bot"}},
        )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == "connections.JIRA - OAuth - prd"
    assert "'JIRA - OAuth - prod', 'Slack bot'" in error["message"]


def test_a_mapped_file_can_also_go_in_as_a_copy(server: RunningServer) -> None:
    server.cf.connections.create("JIRA - Basic - bot", "none", {})
    server.cf.connections.create("Slack - token", "none", {})
    mapping = {"JIRA - OAuth - prod": "JIRA - Basic - bot", "Slack bot": "Slack - token"}
    with api(server) as client:
        first = client.post(
            "/api/v1/flows/import", json={"content": OFFBOARD, "connections": mapping}
        )
        assert first.status_code == 201, first.text
        clash = client.post(
            "/api/v1/flows/import", json={"content": OFFBOARD, "connections": mapping}
        )
        assert clash.status_code == 409 and clash.json()["error"]["field"] == "name"
        copy = client.post(
            "/api/v1/flows/import",
            json={"content": OFFBOARD, "connections": mapping, "as_copy": True},
        )
        assert copy.status_code == 201, copy.text
        assert copy.json()["name"] == "Offboard (copy)"
        assert connections_of(copy.json())["post"] == "Slack - token"


def test_the_docs_describe_the_mapping_and_the_missing_connections(
    server: RunningServer,
) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    components = spec["components"]["schemas"]
    body = components["FlowImport"]["properties"]["connections"]
    assert body["type"] == "object" and body["additionalProperties"] == {"type": "string"}
    detail = components["ApiErrorDetail"]["properties"]["missing_connections"]
    assert {"type": "array", "items": {"$ref": "#/components/schemas/MissingConnection"}} in (
        detail["anyOf"]
    )
    assert set(components["MissingConnection"]["properties"]) == {"name", "cards"}
    refused = spec["paths"]["/api/v1/flows/import"]["post"]["responses"]["422"]
    assert "missing_connections" in refused["description"]
