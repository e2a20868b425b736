"""The connection dialog marks the fields a connection cannot do without and names each one
left empty; the Connections page says when the upstream rejected a connection's
credentials, in the browser's local time (issue 12, item 10)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Route, expect

from tests.e2e.conftest import WebServer, login, screenshot
from tests.support.upstream import Upstream

# Not UTC, and half an hour off whole hours: a time shown in UTC cannot pass for local.
ZONE = "Asia/Kolkata"
SECRET = "ui-required-SENTINEL-cs"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(
        viewport={"width": 1366, "height": 900}, timezone_id=ZONE, locale="en-US"
    )
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


def _field(dialog: Locator, name: str) -> Locator:
    return dialog.locator(f'[data-field="config.{name}"]')


def _connections(web: WebServer) -> dict[str, dict[str, object]]:
    with web.api() as api:
        return {c["name"]: c for c in api.get("/api/v1/connections").json()}


def test_required_fields_are_marked_and_each_empty_one_is_named_before_sending(
    web: WebServer, page: Page
) -> None:
    login(page, web)
    page.goto(f"{web.url}/connections")
    page.get_by_role("button", name="+ New Connection").first.click()
    dialog = page.get_by_role("dialog", name="New Connection")
    dialog.get_by_label("Auth type").select_option(label="Client Credentials")
    for name in ("token_url", "client_id", "client_secret"):
        expect(_field(dialog, name).locator("label .req")).to_have_text(" *")
        expect(_field(dialog, name).locator("input")).to_have_attribute("aria-required", "true")
    for name in ("scope",):
        expect(_field(dialog, name).locator("label .req")).to_have_count(0)
        expect(_field(dialog, name).locator("input")).not_to_have_attribute("aria-required", "true")

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.method == "POST" else None)
    dialog.get_by_label("Nickname *").fill("Acme - CC")
    _field(dialog, "token_url").locator("input").fill("https://id.acme.example/token")
    dialog.get_by_role("button", name="Create").click()
    # Every empty required field at once, by its label; nothing was sent.
    expect(_field(dialog, "client_id").locator(".field-error")).to_have_text(
        "Client ID is required."
    )
    expect(_field(dialog, "client_secret").locator(".field-error")).to_have_text(
        "Client Secret is required."
    )
    expect(_field(dialog, "client_id").locator("input")).to_have_attribute("aria-invalid", "true")
    expect(_field(dialog, "client_id").locator("input")).to_be_focused()
    expect(dialog.locator(".field-error")).to_have_count(2)
    screenshot(page, "new-connection-required")
    assert not [url for url in requests if url.endswith("/api/v1/connections")]

    # Basic: the user name is required, the password is not (API keys as user names).
    dialog.get_by_label("Auth type").select_option(label="Basic")
    expect(_field(dialog, "username").locator("label .req")).to_have_count(1)
    expect(_field(dialog, "password").locator("label .req")).to_have_count(0)
    # … and the dialog says what an empty one means
    expect(_field(dialog, "password").locator(".hint")).to_contain_text(
        "Left empty, an empty password is sent"
    )
    dialog.get_by_label("Auth type").select_option(label="Client Credentials")

    _field(dialog, "token_url").locator("input").fill("https://id.acme.example/token")
    _field(dialog, "client_id").locator("input").fill("acme-app")
    _field(dialog, "client_secret").locator("input").fill(SECRET)
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden()
    assert _connections(web)["Acme - CC"]["config"]["client_secret"] == {"set": True}  # type: ignore[index]

    # Editing: the stored secret is not asked for again; blank keeps it.
    page.locator('tr[data-connection="Acme - CC"]').get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name="Edit connection")
    secret = _field(edit, "client_secret")
    expect(secret.locator("label .req")).to_have_count(0)
    expect(secret.locator("input")).not_to_have_attribute("aria-required", "true")
    expect(secret.locator("input")).to_have_attribute("placeholder", re.compile("leave blank"))
    expect(_field(edit, "client_id").locator("label .req")).to_have_count(1)
    _field(edit, "scope").locator("input").fill("invoices.read")
    edit.get_by_role("button", name="Save").click()
    expect(edit).to_be_hidden()
    saved = _connections(web)["Acme - CC"]
    assert saved["config"]["scope"] == "invoices.read"  # type: ignore[index]
    assert saved["config"]["client_secret"] == {"set": True}  # type: ignore[index]


def test_the_servers_refusal_of_a_missing_secret_is_shown_next_to_it_by_label(
    web: WebServer, page: Page
) -> None:
    """A page holding an older description of the auth types (the secret not marked
    required) sends the form; the server's 422 lands next to the field."""

    def unmarked(route: Route) -> None:
        types = route.fetch().json()
        for auth_type in types:
            for field in auth_type["fields"]:
                if field["secret"]:
                    field["required"] = False
        route.fulfill(status=200, content_type="application/json", body=json.dumps(types))

    page.route("**/api/v1/auth-types", unmarked)
    login(page, web)
    page.goto(f"{web.url}/connections")
    page.get_by_role("button", name="+ New Connection").first.click()
    dialog = page.get_by_role("dialog", name="New Connection")
    dialog.get_by_label("Nickname *").fill("Acme - key")
    dialog.get_by_label("Auth type").select_option(label="Custom Header")
    _field(dialog, "header_name").locator("input").fill("api_key")
    expect(_field(dialog, "header_value").locator("label .req")).to_have_count(0)
    dialog.get_by_role("button", name="Create").click()
    expect(_field(dialog, "header_value").locator(".field-error")).to_have_text(
        "Header Value is required."
    )
    assert "Acme - key" not in _connections(web)


def test_the_connections_page_says_when_credentials_were_rejected(
    web: WebServer, page: Page, upstream: Upstream
) -> None:
    with web.api() as api:
        connection = api.post(
            "/api/v1/connections",
            json={
                "name": "Billing",
                "auth_type": "basic",
                "config": {"username": "bot", "password": "wrong"},
                "allowed_hosts": [f"127.0.0.1:{upstream.port}"],
            },
        ).json()
        flow = api.post(
            "/api/v1/flows",
            json={
                "name": "Invoices",
                "trigger": {"type": "manual"},
                "cards": [
                    {
                        "id": "fetch",
                        "card": "api_connector.get",
                        "connection": "Billing",
                        "inputs": {"url": f"{upstream.url}/status/401"},
                    }
                ],
            },
        ).json()
        run = api.post(f"/api/v1/flows/{flow['id']}/runs", json={"inputs": {}}).json()
        assert run["status"] == "failed"
        rejected = api.get(f"/api/v1/connections/{connection['id']}").json()["rejected"]
    assert rejected["status_code"] == 401 and rejected["run_id"] == run["id"]
    local = datetime.fromisoformat(rejected["at"]).astimezone(ZoneInfo(ZONE))

    login(page, web)
    page.goto(f"{web.url}/connections")
    row = page.locator('tr[data-connection="Billing"]')
    expect(row.locator(".badge")).to_have_text("Rejected")
    note = row.locator(".conn-rejected")
    expect(note).to_contain_text("Credentials rejected (HTTP 401) at ")
    expect(note.locator("time")).to_contain_text(local.strftime("%H:%M"))
    expect(note.locator("time")).to_have_attribute("datetime", rejected["at"])
    link = note.get_by_role("link")
    expect(link).to_have_text("“Invoices”, card fetch")
    expect(link).to_have_attribute("href", f"/runs/{run['id']}")
    screenshot(page, "connection-credentials-rejected")
    # the builder says it under the card's connection too
    page.goto(f"{web.url}/flows/{flow['id']}")
    expect(page.locator('[data-step="fetch"] .conn-rejected')).to_contain_text(
        "Credentials rejected (HTTP 401) at "
    )

    # A later call that succeeds clears it.
    with web.api() as api:
        tested = api.post(
            "/api/v1/cards/api_connector.get/test",
            json={"connection": "Billing", "inputs": {"url": f"{upstream.url}/json"}},
        ).json()
        assert tested["ok"], tested
    page.goto(f"{web.url}/connections")
    expect(row.locator(".badge")).to_have_text("Ready")
    expect(row.locator(".conn-rejected")).to_have_count(0)
