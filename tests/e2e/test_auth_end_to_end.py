"""Two auth types of issue 13 end to end in a real browser, from the New Connection dialog to
"▶ Test this card" against a local server that checks them: a client certificate (mutual
TLS) presented to an HTTPS API that demands one, and a client_credentials connection that
authenticates with private_key_jwt at the Authlib provider, which verifies the assertion
with the public JWK the connections page shows. The page never holds the private keys."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login
from tests.integration.test_private_key_jwt import new_pem
from tests.support.certificates import Issued, TestPki
from tests.support.oauth_server import OAuthServer
from tests.support.upstream import Upstream


def _flow(web: WebServer, url: str) -> dict[str, Any]:
    """A flow with one Get card on ``url`` and no connection yet, made over REST."""
    with web.api() as api:
        created = api.post(
            "/api/v1/flows",
            json={
                "name": "Auth end to end",
                "trigger": {"type": "manual"},
                "save_data": True,
                "cards": [{"id": "get", "card": "api_connector.get", "inputs": {"url": url}}],
            },
        )
    assert created.status_code == 201, created.text
    flow: dict[str, Any] = created.json()
    return flow


def _pem_lines(pem: str) -> list[str]:
    return Issued.body_lines_of(pem)


def _assert_absent(html: str, pem: str) -> None:
    assert pem not in html
    for line in _pem_lines(pem):
        assert line not in html, line


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return TestPki.create()


@pytest.fixture(scope="module")
def demanding(pki: TestPki) -> Iterator[Upstream]:
    """An HTTPS API that refuses, in the handshake, a client without a certificate from
    ``pki``'s CA. Module scope (as in test_mutual_tls): it outlives the test's app, whose
    pooled TLS connection is closed first, not cut by the server's shutdown."""
    with Upstream(ssl_context=pki.server_context()) as server:
        yield server


def test_a_client_certificate_typed_in_the_dialog_is_presented_to_a_server_that_demands_one(
    web: WebServer, page: Page, pki: TestPki, demanding: Upstream
) -> None:
    alice = pki.client("alice")
    flow = _flow(web, f"{demanding.url}/tls/peer")
    login(page, web)
    page.goto(f"{web.url}/flows/{flow['id']}")
    card = page.locator('[data-step="get"]')
    card.get_by_label("Connection").select_option(label="+ New connection…")
    dialog = page.get_by_role("dialog", name="New Connection")
    dialog.get_by_label("Nickname *").fill("Bank - mTLS")
    dialog.get_by_label("Auth type").select_option("none")
    tls = dialog.locator("details.tls-fields")
    tls.get_by_text("Client certificate (mutual TLS)").click()
    certificate = dialog.locator('[data-field="config.client_certificate"] textarea')
    key = dialog.locator('[data-field="config.client_key"] textarea')
    expect(certificate).to_be_visible()
    certificate.fill(alice.certificate_pem)
    key.fill(alice.key_pem)
    dialog.locator('[data-field="config.ca_certificate"] textarea').fill(pki.ca_pem)
    dialog.get_by_label("Allowed hosts").fill(f"127.0.0.1:{demanding.port}")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden()
    expect(card.get_by_label("Connection")).to_have_value("Bank - mTLS")

    before = len(demanding.requests)
    card.get_by_role("button", name="▶ Test this card").click()
    result = card.locator("[data-test-result]")
    expect(result).to_have_attribute("data-test-result", "ok")
    # the server saw alice's certificate in the handshake, and answered with its subject
    expect(result.locator(".json-view")).to_contain_text(alice.subject)
    assert [r["path"] for r in demanding.requests[before:]] == ["/tls/peer"]

    with web.api() as api:
        [connection] = api.get("/api/v1/connections").json()
    assert connection["config"]["client_certificate"]["subject"] == alice.subject
    assert connection["config"]["client_key"] == {"set": True}
    html = page.content()
    page.goto(f"{web.url}/connections")
    expect(page.locator('tr[data-connection="Bank - mTLS"]')).to_be_visible()
    for text in (html, page.content()):
        _assert_absent(text, alice.key_pem)


def test_a_private_key_jwt_connection_made_in_the_dialog_gets_a_token_the_provider_verified(
    web: WebServer, page: Page, oauth_server: OAuthServer
) -> None:
    pem = new_pem("ES256")
    client_id = f"svc-{secrets.token_hex(3)}"
    flow = _flow(web, f"{oauth_server.url}/api/me")
    login(page, web)
    page.goto(f"{web.url}/connections")
    page.get_by_role("button", name="+ New Connection").first.click()
    dialog = page.get_by_role("dialog", name="New Connection")
    dialog.get_by_label("Nickname *").fill("IdP - service - JWT")
    dialog.get_by_label("Auth type").select_option(label="Client Credentials")
    dialog.get_by_label("Token URL *").fill(oauth_server.token_url)
    dialog.get_by_label("Client ID *").fill(client_id)
    dialog.get_by_label("Token endpoint authentication").select_option("private_key_jwt")
    dialog.locator('[data-field="config.private_key"] textarea').fill(pem)
    dialog.locator('[data-field="config.scope"] input').fill("read")
    dialog.get_by_label("Allowed hosts").fill(f"127.0.0.1:{oauth_server.port}")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden()

    # the public JWK, as the connections page shows it, registered with the provider
    block = page.locator('tr[data-connection="IdP - service - JWT"] [data-public-jwk]')
    jwk = json.loads(block.locator(".public-jwk-value").inner_text())
    assert jwk["kty"] == "EC" and "d" not in jwk
    oauth_server.add_client(client_id, "", "private_key_jwt", scope="read", jwks={"keys": [jwk]})
    connections_html = page.content()

    page.goto(f"{web.url}/flows/{flow['id']}")
    card = page.locator('[data-step="get"]')
    card.get_by_label("Connection").select_option(label="IdP - service - JWT")
    card.get_by_role("button", name="▶ Test this card").click()
    result = card.locator("[data-test-result]")
    expect(result).to_have_attribute("data-test-result", "ok")
    expect(result.locator(".json-view")).to_contain_text(f'"{client_id}"')  # /api/me's answer

    # the provider got one assertion, signed with the key and verified with the JWK
    assert oauth_server.token_requests == 1
    [claims] = oauth_server.assertions
    assert claims["iss"] == claims["sub"] == client_id
    assert claims["aud"] == oauth_server.token_url
    [header] = oauth_server.assertion_headers
    assert header["alg"] == "ES256" and header["kid"] == jwk["kid"]
    assert oauth_server.issued_tokens[-1][-4:] in result.locator(".json-view").inner_text()
    for text in (connections_html, page.content()):
        _assert_absent(text, pem)
