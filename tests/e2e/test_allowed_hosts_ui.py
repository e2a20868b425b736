"""The Allowed hosts field of the connection dialog and the list, in a real browser against a
real `cardflow serve`."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import WebServer, login, screenshot

PASSWORD = "ui-hosts-SENTINEL-pw"
ANY_HOST = "any host can receive these credentials"


def _new_dialog(page: Page, name: str, auth_type: str) -> Locator:
    page.get_by_role("button", name="+ New Connection").first.click()
    dialog = page.get_by_role("dialog", name="New Connection")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Nickname *").fill(name)
    dialog.get_by_label("Auth type").select_option(label=auth_type)
    return dialog


def _field(dialog: Locator, label: str) -> Locator:
    return dialog.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$"))


def _connections(web: WebServer) -> dict[str, dict[str, object]]:
    with web.api() as api:
        return {c["name"]: c for c in api.get("/api/v1/connections").json()}


def test_basic_connections_with_and_without_allowed_hosts(web: WebServer, page: Page) -> None:
    login(page, web)
    page.get_by_role("link", name="Connections").click()

    # Basic: the field is asked for, empty at first, and says what empty means.
    dialog = _new_dialog(page, "Bound - Basic", "Basic")
    hosts = dialog.get_by_label("Allowed hosts")
    warning = dialog.locator('[data-warning="any-host"]')
    expect(hosts).to_have_value("")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(ANY_HOST)
    _field(dialog, "Username").fill("bot")
    _field(dialog, "Password").fill(PASSWORD)
    hosts.fill("api.example.com, *.Example.org:8443")
    expect(warning).to_be_hidden()
    screenshot(page, "new-connection-allowed-hosts")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden()
    row = page.locator('tr[data-connection="Bound - Basic"]')
    expect(row.locator(".hosts code")).to_have_text(["api.example.com", "*.example.org:8443"])
    expect(row.locator(".conn-warning")).to_have_count(0)

    # Without hosts: created all the same, and the list warns about it.
    dialog = _new_dialog(page, "Loose - Custom", "Custom Header")
    expect(dialog.locator('[data-warning="any-host"]')).to_contain_text(ANY_HOST)
    _field(dialog, "Header Name").fill("api_key")
    _field(dialog, "Header Value").fill(PASSWORD)
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden()
    loose = page.locator('tr[data-connection="Loose - Custom"]')
    expect(loose.locator(".hosts")).to_contain_text("Any host")
    expect(loose.locator(".conn-warning")).to_contain_text("any host")

    # A connection without credentials has nothing to bind: no field, no warning.
    dialog = _new_dialog(page, "Public", "None")
    expect(dialog.get_by_label("Allowed hosts")).to_be_hidden()
    dialog.get_by_role("button", name="Create").click()
    expect(page.locator('tr[data-connection="Public"] .conn-warning')).to_have_count(0)
    screenshot(page, "connections-allowed-hosts")

    saved = _connections(web)
    assert saved["Bound - Basic"]["allowed_hosts"] == ["api.example.com", "*.example.org:8443"]
    assert saved["Loose - Custom"]["allowed_hosts"] == [] and saved["Loose - Custom"]["warnings"]
    assert saved["Public"]["warnings"] == []

    # A bad pattern is named next to the field, and nothing is created.
    dialog = _new_dialog(page, "Bad", "Basic")
    _field(dialog, "Username").fill("bot")
    dialog.get_by_label("Allowed hosts").fill("https://api.example.com/v1")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.locator('[data-field="allowed_hosts"] .field-error')).to_contain_text(
        "not a host"
    )
    expect(dialog.get_by_label("Allowed hosts")).to_have_attribute("aria-invalid", "true")
    dialog.get_by_role("button", name="Cancel").click()
    assert "Bad" not in _connections(web)

    # Edit: allowing another host needs the password again, said next to the password.
    row.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name="Edit connection")
    expect(edit.get_by_label("Allowed hosts")).to_have_value("api.example.com, *.example.org:8443")
    edit.get_by_label("Allowed hosts").fill("api.example.com, evil.example.net")
    edit.get_by_role("button", name="Save").click()
    expect(edit.locator('[data-field="config.password"] .field-error')).to_contain_text(
        "enter it again"
    )
    assert _connections(web)["Bound - Basic"]["allowed_hosts"] == [
        "api.example.com",
        "*.example.org:8443",
    ]
    _field(edit, "Password").fill(PASSWORD)
    edit.get_by_role("button", name="Save").click()
    expect(edit).to_be_hidden()
    expect(row.locator(".hosts code")).to_have_text(["api.example.com", "evil.example.net"])

    # Narrowing needs nothing.
    row.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name="Edit connection")
    edit.get_by_label("Allowed hosts").fill("api.example.com")
    edit.get_by_role("button", name="Save").click()
    expect(edit).to_be_hidden()
    expect(row.locator(".hosts code")).to_have_text(["api.example.com"])
    assert PASSWORD not in page.content()


def test_oauth_and_client_credentials_suggest_the_token_urls_host(
    web: WebServer, page: Page
) -> None:
    login(page, web)
    page.get_by_role("link", name="Connections").click()

    dialog = _new_dialog(page, "Provider - OAuth", "OAuth 2.0")
    hosts = dialog.get_by_label("Allowed hosts")
    expect(hosts).to_have_value("")
    _field(dialog, "Authorize URL").fill("https://login.example.com/oauth/authorize")
    expect(hosts).to_have_value("login.example.com")
    _field(dialog, "Token URL").fill("https://api.example.com:8443/oauth/token")
    expect(hosts).to_have_value("login.example.com, api.example.com:8443")
    _field(dialog, "Token URL").fill("https://login.example.com/oauth/token")
    expect(hosts).to_have_value("login.example.com")  # follows the URLs while untouched
    expect(dialog.locator('[data-warning="any-host"]')).to_be_hidden()
    _field(dialog, "Client ID").fill("app")
    _field(dialog, "Client Secret").fill(PASSWORD)
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.locator(".redirect-uri-value")).to_be_visible()  # the next step
    dialog.get_by_role("button", name="Later").click()
    expect(page.locator('tr[data-connection="Provider - OAuth"] .hosts code')).to_have_text(
        ["login.example.com"]
    )

    # Client Credentials: the token URL's host; once the user types in the field, it is theirs.
    dialog = _new_dialog(page, "Service - CC", "Client Credentials")
    hosts = dialog.get_by_label("Allowed hosts")
    _field(dialog, "Token URL").fill("https://id.example.com/token")
    expect(hosts).to_have_value("id.example.com")
    hosts.fill("graph.example.com")
    _field(dialog, "Token URL").fill("https://id2.example.com/token")
    expect(hosts).to_have_value("graph.example.com")
    _field(dialog, "Client ID").fill("svc")
    _field(dialog, "Client Secret").fill(PASSWORD)
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden()

    saved = _connections(web)
    assert saved["Provider - OAuth"]["allowed_hosts"] == ["login.example.com"]
    assert saved["Service - CC"]["allowed_hosts"] == ["graph.example.com"]
