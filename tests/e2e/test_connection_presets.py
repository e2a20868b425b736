"""The New Connection dialog's "Start from a preset" picker in a real browser (issue 13):
search, fill a placeholder (Okta's domain), and the form is filled from the preset (its
test request too, as a path under the base URL)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login, screenshot

SECRET = "e2e-preset-SENTINEL-77"


def test_an_okta_connection_from_the_preset_picker(web: WebServer, page: Page) -> None:
    login(page, web)
    page.goto(f"{web.url}/connections")
    page.get_by_role("button", name="+ New Connection").first.click()
    dialog = page.get_by_role("dialog", name="New Connection")
    picker = dialog.locator("fieldset.preset-picker")
    expect(picker.locator("legend")).to_have_text("Start from a preset")

    picker.get_by_label("Search presets").fill("okta custom")
    options = picker.locator(".preset-option")
    expect(options).to_have_count(2)
    picker.get_by_role("button", name="Okta (custom authorization server)").click()
    docs = picker.get_by_role("link", name="Developer docs ↗")
    expect(docs).to_have_attribute("href", "https://developer.okta.com/docs/concepts/auth-servers/")
    expect(picker.get_by_label("Authorization server ID")).to_have_value("default")

    # the domain is required, and checked: a path is refused, and named at its field
    picker.get_by_role("button", name="Fill the form").click()
    domain_field = picker.locator('[data-field="preset_params.okta_domain"]')
    expect(domain_field.locator(".field-error")).to_contain_text("okta_domain")
    picker.get_by_label("Okta domain").fill("acme.okta.com/evil")
    picker.get_by_role("button", name="Fill the form").click()
    expect(domain_field.locator(".field-error")).to_contain_text("not a valid Okta domain")
    picker.get_by_label("Okta domain").fill("acme.okta.com")
    picker.get_by_role("button", name="Fill the form").click()
    expect(picker.locator(".preset-applied")).to_contain_text("Filled from")

    expect(dialog.get_by_label("Auth type")).to_have_value("oauth")
    authorize = dialog.locator('[data-field="config.authorize_url"] input')
    expect(authorize).to_have_value("https://acme.okta.com/oauth2/default/v1/authorize")
    expect(dialog.locator('[data-field="config.token_url"] input')).to_have_value(
        "https://acme.okta.com/oauth2/default/v1/token"
    )
    expect(dialog.locator('[data-field="config.scope"] input')).to_have_value(
        "openid profile email offline_access"
    )
    expect(dialog.get_by_label("Base URL")).to_have_value("https://acme.okta.com")
    expect(dialog.get_by_label("Allowed hosts")).to_have_value("acme.okta.com")
    # the preset's test request, a path under the base URL
    expect(dialog.get_by_label("Test request method")).to_have_value("GET")
    expect(dialog.get_by_label("Test request", exact=True)).to_have_value(
        "/oauth2/default/v1/userinfo"
    )
    expect(dialog.get_by_label("Nickname *")).to_have_value(
        "Okta (custom authorization server) - OAuth 2.0"
    )

    dialog.get_by_label("Nickname *").fill("Okta - acme")
    dialog.locator('[data-field="config.client_id"] input').fill("0oa1abc")
    dialog.locator('[data-field="config.client_secret"] input').fill(SECRET)
    screenshot(page, "new-connection-preset")
    dialog.get_by_role("button", name="Create").click()
    # an OAuth connection: the dialog now shows the redirect URI to register
    dialog.get_by_role("button", name="Later").click()
    expect(dialog).to_be_hidden()

    with web.api() as api:
        connection = api.get("/api/v1/connections/Okta - acme").json()
    assert connection["auth_type"] == "oauth"
    assert connection["config"]["authorize_url"] == (
        "https://acme.okta.com/oauth2/default/v1/authorize"
    )
    assert connection["config"]["client_id"] == "0oa1abc"
    assert connection["config"]["client_secret"] == {"set": True}
    assert connection["allowed_hosts"] == ["acme.okta.com"]
    assert connection["base_url"] == "https://acme.okta.com"
    assert connection["test_request"] == {"method": "GET", "url": "/oauth2/default/v1/userinfo"}
    row = page.locator('tr[data-connection="Okta - acme"]')
    expect(row.locator(".conn-base-url")).to_contain_text("https://acme.okta.com")
    assert SECRET not in page.content()
