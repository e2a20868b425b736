"""A Digest connection made in the New Connection dialog with a test request, then the
Connections page's Test button, in a real browser against the real Digest server (httpbin):
a pass, then a wrong password's 401, shown in the row and as the connection's rejection;
the page never holds the password."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login, screenshot
from tests.support.digest_server import DigestServer

PASSWORD = "e2e-SENTINEL-digest/+é"


def test_the_test_button_sends_the_test_request_and_shows_how_it_went(
    web: WebServer, page: Page
) -> None:
    with DigestServer("ada", PASSWORD) as digest:
        login(page, web)
        page.goto(f"{web.url}/connections")
        page.get_by_role("button", name="+ New Connection").first.click()
        dialog = page.get_by_role("dialog", name="New Connection")
        dialog.get_by_label("Nickname *").fill("Intranet")
        dialog.get_by_label("Auth type").select_option(label="Digest")  # from the schema
        dialog.locator('[data-field="config.username"] input').fill("ada")
        password = dialog.locator('[data-field="config.password"] input')
        expect(password).to_have_attribute("type", "password")
        password.fill(PASSWORD)
        dialog.get_by_label("Allowed hosts").fill(f"127.0.0.1:{digest.port}")
        dialog.get_by_label("Test request method").select_option("GET")
        dialog.get_by_label("Test request", exact=True).fill(f"{digest.url}/hidden/SHA-256")
        dialog.get_by_role("button", name="Create").click()
        expect(dialog).to_be_hidden()

        row = page.locator('tr[data-connection="Intranet"]')
        expect(row).to_contain_text("Digest")
        row.get_by_role("button", name="Test Intranet").click()
        result = row.locator("[data-test-result]")
        expect(result).to_have_attribute("data-test-result", "ok")
        expect(result).to_have_attribute("data-status", "200")
        expect(result).to_contain_text(f"Test passed: GET {digest.url}/hidden/SHA-256 answered 200")
        expect(result).to_contain_text("the connection works")
        assert [auth is not None for _, auth in digest.requests] == [False, True]
        screenshot(page, "connection-test-passed")

        # a wrong password: the 401 is shown, and recorded as the connection's rejection
        row.get_by_role("button", name="Edit Intranet").click()
        edit = page.get_by_role("dialog", name="Edit connection")
        expect(edit.get_by_label("Test request", exact=True)).to_have_value(
            f"{digest.url}/hidden/SHA-256"
        )
        edit.locator('[data-field="config.password"] input').fill("not-the-password")
        edit.get_by_role("button", name="Save").click()
        expect(edit).to_be_hidden()
        row.get_by_role("button", name="Test Intranet").click()
        expect(result).to_have_attribute("data-test-result", "failed")
        expect(result).to_have_attribute("data-status", "401")
        expect(result).to_contain_text("Test failed: GET")
        expect(result).to_contain_text("rejected the connection's credentials")
        expect(row.locator(".badge")).to_have_text("Rejected")
        html = page.content()
    assert PASSWORD not in html


def test_a_connection_without_a_test_request_says_what_to_do(web: WebServer, page: Page) -> None:
    with web.api() as api:
        api.post(
            "/api/v1/connections", json={"name": "Plain", "auth_type": "none"}
        ).raise_for_status()
    login(page, web)
    page.goto(f"{web.url}/connections")
    row = page.locator('tr[data-connection="Plain"]')
    row.get_by_role("button", name="Test Plain").click()
    result = row.locator("[data-test-result]")
    expect(result).to_have_attribute("data-test-result", "failed")
    expect(result).to_contain_text("has no test request")
