"""cURL import in the builder (issue 13): "+ Add card" → "Paste cURL" → the card with its
inputs filled, and the New Connection dialog prefilled with the command's credentials. The
pasted secret ends up only in the new connection: not in the flow, not in the server's log,
not in the card's "Copy as cURL"."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login, screenshot

SENTINEL = "s3cr3t-SENTINEL-e2e-91c7"
COMMAND = f"""curl -X POST https://acme.atlassian.net/rest/api/3/issue \\
  -u 'bot@example.com:{SENTINEL}' \\
  -H 'Accept: application/json' \\
  -H 'Content-Type: application/json' \\
  -d '{{"fields": {{"project": {{"key": "OPS"}}, "summary": "Printer on fire"}}}}' -k"""


def test_paste_curl_adds_the_card_and_offers_the_connection(
    web_process: WebServer, page: Page
) -> None:
    web = web_process  # what `cardflow serve` logs is read at the end
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("From curl")
    page.get_by_label("Trigger", exact=True).select_option("manual")

    page.get_by_role("button", name="+ Add card", exact=True).click()
    picker = page.get_by_role("dialog", name="Add a card")
    picker.get_by_role("tab", name="Paste cURL").click()
    area = picker.get_by_label("A curl command (e.g. from an API's docs)")
    expect(area).to_be_focused()

    # Not a curl command: said next to the text area, nothing added.
    area.fill("wget https://example.com")
    picker.get_by_role("button", name="Import as a card").click()
    expect(picker.get_by_role("alert")).to_contain_text("not a curl command")
    expect(area).to_have_attribute("aria-invalid", "true")

    area.fill(COMMAND)
    picker.get_by_role("button", name="Import as a card").click()

    # The New Connection dialog opens prefilled with the command's credentials.
    dialog = page.get_by_role("dialog", name="New Connection")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Nickname")).to_have_value(
        "acme.atlassian.net - Basic - bot@example.com"
    )
    expect(dialog.get_by_label("Auth type")).to_have_value("basic")
    expect(dialog.get_by_label("Username")).to_have_value("bot@example.com")
    expect(dialog.get_by_label("Password")).to_have_value(SENTINEL)
    expect(dialog.get_by_label("Allowed hosts")).to_have_value("acme.atlassian.net")
    screenshot(page, "curl-import-connection")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden()

    # The picker says what was added and what to know (-k), then closes.
    expect(picker.locator(".curl-added")).to_contain_text("Added the card “post”")
    expect(picker.locator(".curl-warnings")).to_contain_text("verifies TLS")
    expect(picker.locator(".curl-connection")).to_contain_text("uses the new connection")
    picker.get_by_role("button", name="Done").click()
    expect(picker).to_be_hidden()

    step = page.locator('[data-step="post"]')
    expect(step.get_by_role("textbox", name="URL")).to_have_value(
        "https://acme.atlassian.net/rest/api/3/issue"
    )
    body = step.get_by_role("textbox", name="Body")
    assert json.loads(body.input_value()) == {
        "fields": {"project": {"key": "OPS"}, "summary": "Printer on fire"}
    }
    expect(step.locator(".conn-select")).to_have_value(
        "acme.atlassian.net - Basic - bot@example.com"
    )
    expect(page.locator("body")).not_to_contain_text(SENTINEL)

    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    with web.api() as api:
        flow = api.get("/api/v1/flows/From curl").json()
        connection = api.get(
            "/api/v1/connections/acme.atlassian.net - Basic - bot@example.com"
        ).json()
    card = flow["cards"][0]
    assert card["card"] == "api_connector.post"
    assert card["connection"] == "acme.atlassian.net - Basic - bot@example.com"
    assert card["inputs"]["headers"] == {
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    assert SENTINEL not in json.dumps(flow)
    assert connection["config"] == {"username": "bot@example.com", "password": {"set": True}}
    assert connection["allowed_hosts"] == ["acme.atlassian.net"]

    # Copy as cURL gives the request back, the connection's secret as a placeholder.
    step.get_by_role("button", name="Copy as cURL").click()
    shown = page.get_by_role("dialog", name="Copy as cURL: post")
    command = shown.get_by_label("curl command").input_value()
    assert command.splitlines()[:2] == [
        "curl -X POST https://acme.atlassian.net/rest/api/3/issue \\",
        "  -H 'Accept: application/json' \\",
    ]
    assert "-u 'bot@example.com:<password>'" in command
    assert SENTINEL not in command
    shown.get_by_role("button", name="Close").click()

    logged = "".join(web.output)
    assert "/api/v1/cards/from-curl" in logged  # the output is the server's, read so far
    assert SENTINEL not in logged
