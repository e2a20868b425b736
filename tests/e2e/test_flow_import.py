"""Importing a flow file that clashes with a flow already here, in a real browser: the clash
names that flow, and the file can go in as a copy beside it (or replace it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login, screenshot

LOOKUP = """name: Lookup
trigger: {type: api_endpoint, alias: lookup, security: none}
cards:
  - {id: c, card: object.construct, inputs: {v: %s}}
"""


def test_a_clash_names_the_flow_and_offers_a_copy_or_a_replacement(
    web: WebServer, page: Page, tmp_path: Path
) -> None:
    with web.api() as api:
        original = api.post(
            "/api/v1/flows/import", json={"content": LOOKUP % 1, "filename": "lookup.yaml"}
        ).json()
    same = tmp_path / "lookup.yaml"
    same.write_text(LOOKUP % 2)

    login(page, web)
    page.locator("#import-file").set_input_files(str(same))
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#import-clash")).to_contain_text(
        f"'Lookup' already exists ({original['id']})"
    )
    dialog.get_by_role("button", name="Import as a copy").click()
    expect(page.locator('tr[data-flow="Lookup (copy)"]')).to_be_visible()
    expect(page.locator('tr[data-flow="Lookup (copy)"]')).to_contain_text("/invoke/lookup-copy")

    page.locator("#import-file").set_input_files(str(same))
    page.get_by_role("dialog").get_by_role("button", name="Replace it").click()
    expect(page.get_by_text("Replaced “Lookup”.")).to_be_visible()
    with web.api() as api:
        flows = {flow["name"]: flow for flow in api.get("/api/v1/flows").json()}
    assert flows["Lookup"]["id"] == original["id"]
    assert flows["Lookup"]["cards"][0]["inputs"] == {"v": 2}
    assert flows["Lookup (copy)"]["trigger"]["alias"] == "lookup-copy"

    # another name, the same alias: only a copy can go in, and the message names the flow
    other = tmp_path / "other.yaml"
    other.write_text((LOOKUP % 3).replace("name: Lookup", "name: Lookup again"))
    page.locator("#import-file").set_input_files(str(other))
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#import-clash")).to_contain_text("Flow 'Lookup'")
    expect(dialog.locator("#import-clash")).to_contain_text("/invoke/lookup")
    expect(dialog.get_by_role("button", name="Replace it")).to_have_count(0)
    dialog.get_by_role("button", name="Import as a copy").click()
    expect(page.locator('tr[data-flow="Lookup again"]')).to_contain_text("/invoke/lookup-copy-2")


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
      list: [1]
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


def _connections_of(flow: dict[str, Any]) -> dict[str, str | None]:
    cards = flow["cards"]
    return {
        "user": cards[0]["connection"],
        "revoke": cards[1]["inputs"]["cards"][0]["connection"],
        "post": cards[2]["connection"],
    }


def test_missing_connections_are_mapped_to_existing_ones_or_created_in_the_dialog(
    web: WebServer, page: Page, tmp_path: Path
) -> None:
    with web.api() as api:
        api.post(
            "/api/v1/connections", json={"name": "Jira bot", "auth_type": "none", "config": {}}
        ).raise_for_status()
    path = tmp_path / "offboard.yaml"
    path.write_text(OFFBOARD)

    login(page, web)
    page.locator("#import-file").set_input_files(str(path))
    dialog = page.get_by_role("dialog", name="Choose the connections")
    expect(dialog.locator("#import-mapping-intro")).to_contain_text("“offboard.yaml”")
    jira = dialog.get_by_label("Connection for “JIRA - OAuth - prod”")
    slack = dialog.get_by_label("Connection for “Slack bot”")
    expect(jira).to_be_focused()
    expect(jira).to_have_accessible_description("Used by cards “user”, “revoke”.")
    expect(slack).to_have_accessible_description("Used by card “post”.")
    jira.select_option("Jira bot")

    # nothing chosen for one: said next to it
    dialog.get_by_role("button", name="Import").click()
    expect(dialog.locator('[data-field="connections.Slack bot"] .field-error')).to_have_text(
        "Choose a connection for “Slack bot”, or create one."
    )
    expect(slack).to_be_focused()
    expect(
        dialog.locator('[data-field="connections.JIRA - OAuth - prod"] .field-error')
    ).to_have_count(0)

    # the other is created on the spot, and chosen
    slack.select_option(label="+ Create a new connection…")
    created = page.get_by_role("dialog", name="New Connection")
    expect(created.get_by_label("Nickname *")).to_have_value("Slack bot")  # as the file names it
    created.get_by_label("Nickname *").fill("Slack - token")
    created.get_by_label("Auth type").select_option(label="None")
    created.get_by_role("button", name="Create").click()
    expect(created).to_be_hidden()
    expect(slack).to_have_value("Slack - token")
    expect(slack).to_be_focused()
    expect(jira).to_have_value("Jira bot")  # kept, and offered the new one too
    expect(jira.locator("option", has_text="Slack - token")).to_have_count(1)
    screenshot(page, "import-connection-mapping")
    dialog.get_by_role("button", name="Import").click()
    expect(page.get_by_text("Imported “Offboard”.")).to_be_visible()
    expect(dialog).to_be_hidden()

    # the flow's cards use them, nested card included
    page.locator('tr[data-flow="Offboard"]').get_by_role(
        "link", name="Offboard", exact=True
    ).click()
    expect(page.locator('[data-step="user"] .conn-select')).to_have_value("Jira bot")
    expect(page.locator('[data-step="revoke"] .conn-select')).to_have_value("Jira bot")
    expect(page.locator('[data-step="post"] .conn-select')).to_have_value("Slack - token")
    with web.api() as api:
        (flow,) = api.get("/api/v1/flows").json()
        assert _connections_of(flow) == {
            "user": "Jira bot",
            "revoke": "Jira bot",
            "post": "Slack - token",
        }
        spare = api.post(
            "/api/v1/connections", json={"name": "Spare", "auth_type": "none", "config": {}}
        ).json()

    # Both problems at once: the same file again maps its connections, then clashes with
    # the flow now here and goes in as a copy, the mapping kept. A connection gone while
    # the dialog was open is named next to its field. By keyboard alone, this time.
    page.goto(f"{web.url}/flows")
    page.locator("#import-file").set_input_files(str(path))
    dialog = page.get_by_role("dialog", name="Choose the connections")
    jira = dialog.get_by_label("Connection for “JIRA - OAuth - prod”")
    slack = dialog.get_by_label("Connection for “Slack bot”")
    submit = dialog.get_by_role("button", name="Import")
    expect(jira).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(jira).to_have_value("Jira bot")
    page.keyboard.press("Tab")
    expect(slack).to_be_focused()
    for _ in range(3):  # Jira bot, Slack - token, Spare
        page.keyboard.press("ArrowDown")
    expect(slack).to_have_value("Spare")
    with web.api() as api:
        api.delete(f"/api/v1/connections/{spare['id']}").raise_for_status()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(submit).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog.locator('[data-field="connections.Slack bot"] .field-error')).to_contain_text(
        "Connection for “Slack bot”: there is no connection 'Spare'"
    )
    expect(slack).to_have_attribute("aria-invalid", "true")
    expect(slack).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(slack).to_have_value("Slack - token")
    expect(dialog.locator(".field-error")).to_have_count(0)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    clash = page.get_by_role("dialog", name="This flow is already here")
    expect(clash.locator("#import-clash")).to_contain_text("'Offboard' already exists")
    clash.get_by_role("button", name="Import as a copy").click()
    expect(page.get_by_text("Imported as “Offboard (copy)”.")).to_be_visible()
    with web.api() as api:
        flows = {flow["name"]: flow for flow in api.get("/api/v1/flows").json()}
    assert _connections_of(flows["Offboard (copy)"]) == {
        "user": "Jira bot",
        "revoke": "Jira bot",
        "post": "Slack - token",
    }
