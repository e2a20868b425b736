"""The connections page says which flows use each connection, and a connection in use is
refused before anyone confirms its deletion (the server refuses it too)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login


def test_used_by_links_the_flows_and_delete_explains_the_refusal_first(
    web: WebServer, page: Page
) -> None:
    with web.api() as api:
        used = api.post(
            "/api/v1/connections",
            json={
                "name": "Billing",
                "auth_type": "basic",
                "config": {"username": "u", "password": "p"},
            },
        ).json()
        api.post(
            "/api/v1/connections",
            json={"name": "Spare", "auth_type": "none", "config": {}},
        ).raise_for_status()
        flow = api.post(
            "/api/v1/flows",
            json={
                "name": "Invoices",
                "trigger": {"type": "manual"},
                "cards": [
                    {
                        "id": "get",
                        "card": "api_connector.get",
                        "connection": used["id"],
                        "inputs": {"url": "http://127.0.0.1:9/invoices"},
                    }
                ],
            },
        ).json()

    login(page, web)
    page.goto(f"{web.url}/connections")
    billing = page.locator('tr[data-connection="Billing"]')
    link = billing.locator(".used-by a")
    expect(link).to_have_text("Invoices")
    expect(link).to_have_attribute("href", f"/flows/{flow['id']}")
    expect(page.locator('tr[data-connection="Spare"] .used-by')).to_have_text("no flow")

    billing.get_by_role("button", name="Delete Billing").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("“Billing” is in use")
    expect(dialog.locator("#in-use-message")).to_contain_text("Invoices")
    expect(dialog.get_by_role("button", name="Delete")).to_have_count(0)  # nothing to confirm
    dialog.get_by_role("button", name="OK").click()
    expect(billing).to_be_visible()

    page.locator('tr[data-connection="Spare"]').get_by_role("button", name="Delete Spare").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator('tr[data-connection="Spare"]')).to_have_count(0)
    with web.api() as api:
        assert [c["name"] for c in api.get("/api/v1/connections").json()] == ["Billing"]
