"""The New Connection dialog with the two client authentications of issue 13, in a real
browser: choosing private_key_jwt hides the client secret (no longer required) and shows the
private key (required), the created connection shows its public JWK with a Copy button and
never the key; tls_client_auth opens the folded Client certificate section and requires the
certificate and key there."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login, screenshot
from tests.integration.test_private_key_jwt import new_pem


def _is_open(locator: object) -> bool:
    return bool(locator.evaluate("(details) => details.open"))  # type: ignore[attr-defined]


def test_private_key_jwt_and_the_client_certificate_section_in_the_new_connection_dialog(
    web: WebServer, page: Page
) -> None:
    pem = new_pem("ES256")
    login(page, web)
    page.goto(f"{web.url}/connections")
    page.get_by_role("button", name="+ New Connection").first.click()
    dialog = page.get_by_role("dialog", name="New Connection")
    dialog.get_by_label("Nickname *").fill("Okta - service")
    dialog.get_by_label("Auth type").select_option(label="Client Credentials")
    secret = dialog.locator('[data-field="config.client_secret"]')
    key = dialog.locator('[data-field="config.private_key"]')
    tls = dialog.locator("details.tls-fields")
    certificate = dialog.locator('[data-field="config.client_certificate"]')
    # the default method (client_secret_post): the secret shown and required, no key
    expect(secret).to_be_visible()
    expect(secret.locator("label .req")).to_have_text(" *")
    expect(key).to_be_hidden()
    assert not _is_open(tls)

    dialog.get_by_label("Token URL *").fill("http://127.0.0.1:9/oauth2/v1/token")
    dialog.get_by_label("Client ID *").fill("0oa-service")
    method = dialog.get_by_label("Token endpoint authentication")
    method.select_option("private_key_jwt")
    expect(secret).to_be_hidden()
    expect(key).to_be_visible()
    expect(key.locator("label .req")).to_have_text(" *")
    expect(key.locator("textarea")).to_have_attribute("aria-required", "true")
    # left empty, the key is refused by name before anything is sent (not the hidden secret)
    dialog.get_by_role("button", name="Create").click()
    expect(key.locator(".field-error")).to_be_visible()
    expect(secret.locator(".field-error")).to_have_count(0)

    # tls_client_auth: the key hidden, the Client certificate section opened, its
    # certificate and key required
    method.select_option("tls_client_auth")
    expect(key).to_be_hidden()
    assert _is_open(tls)
    expect(certificate).to_be_visible()
    expect(certificate.locator("label .req")).to_have_text(" *")
    expect(dialog.locator('[data-field="config.client_key"] label .req')).to_have_text(" *")
    expect(dialog.locator('[data-field="config.ca_certificate"] label .req')).to_have_count(0)

    # back to private_key_jwt: the certificate optional again, the section still there
    method.select_option("private_key_jwt")
    expect(certificate.locator("label .req")).to_have_count(0)
    tls.locator("summary").click()  # fold it, then open it again by its heading
    assert not _is_open(tls)
    tls.get_by_text("Client certificate (mutual TLS)").click()
    assert _is_open(tls)
    expect(certificate.locator("textarea")).to_be_visible()
    expect(certificate.get_by_role("button", name="Load from file…")).to_be_visible()

    key.locator("textarea").fill(pem)
    screenshot(page, "new-connection-private-key-jwt")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden()

    with web.api() as api:
        [connection] = api.get("/api/v1/connections").json()
    assert connection["config"]["token_auth_method"] == "private_key_jwt"
    assert connection["config"]["private_key"] == {"set": True}
    assert connection["config"]["client_secret"] == {"set": False}  # hidden: not sent
    jwk = connection["config"]["public_jwk"]
    assert jwk["kty"] == "EC" and "d" not in jwk
    row = page.locator('tr[data-connection="Okta - service"]')
    block = row.locator("[data-public-jwk]")
    expect(block).to_be_visible()
    assert json.loads(block.locator(".public-jwk-value").inner_text()) == jwk
    expect(block.get_by_role("button", name="Copy JWK")).to_be_visible()
    html = page.content()
    for line in pem.splitlines()[1:-1]:
        assert line not in html
