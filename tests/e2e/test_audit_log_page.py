"""The Audit log page in a real browser: a change just made in the web app is listed with
the web session as its actor, and the action filter narrows the list and stays in the
address."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login, screenshot


def test_audit_log_lists_a_change_just_made_and_filters_by_action(
    web: WebServer, page: Page
) -> None:
    with web.api() as api:
        made = api.post(
            "/api/v1/connections",
            json={
                "name": "Billing",
                "auth_type": "basic",
                "config": {"username": "bot", "password": "not-shown-9931"},
                "allowed_hosts": ["api.example.com"],
            },
        )
        assert made.status_code == 201, made.text
        flow = api.post("/api/v1/flows", json={"name": "Nightly", "cards": []})
        assert flow.status_code == 201, flow.text

    login(page, web)
    page.get_by_role("button", name="Disable Nightly").click()  # a change in the web app
    expect(page.get_by_role("button", name="Enable Nightly")).to_be_visible()

    page.get_by_role("link", name="Audit log").click()
    expect(page).to_have_url(f"{web.url}/audit")
    rows = page.locator("#audit-table tbody tr")
    newest = rows.first
    expect(newest).to_have_attribute("data-action", "flow.disabled")
    expect(newest).to_contain_text("Web session")
    expect(newest).to_contain_text("(owner)")  # the session's user
    expect(newest).to_contain_text("127.0.0.1")
    expect(newest).to_contain_text("Nightly")
    expect(newest).to_contain_text("enabled: true → false")
    created = page.locator("#audit-table tr[data-action='connection.created']")
    expect(created).to_contain_text("API token e2e")
    expect(created).to_contain_text("(owner)")  # the token's user
    expect(created).to_contain_text("config.password changed")
    expect(created).not_to_contain_text("not-shown-9931")
    expect(page.locator("#audit-table tr[data-action='web.login']")).to_have_count(1)
    screenshot(page, "audit-log")

    page.get_by_label("Action").select_option("connection")
    expect(page).to_have_url(re.compile(r"/audit\?action=connection$"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-action", "connection.created")
    expect(page.locator("#audit-export")).to_have_attribute(
        "href", "/api/v1/audit/export?action=connection"
    )
    page.reload()  # the filter is in the address
    expect(page.get_by_label("Action")).to_have_value("connection")
    expect(rows).to_have_count(1)

    page.get_by_label("Action").select_option("keys.rotated")
    expect(page.get_by_text("No audit log entry matches these filters.")).to_be_visible()
    page.get_by_label("Target").fill("Nightly")
    page.get_by_label("Action").select_option("")
    expect(rows).to_have_count(2)  # created, then disabled
    expect(page).to_have_url(re.compile(r"/audit\?target=Nightly$"))
    expect(page.locator("body")).not_to_contain_text("not-shown-9931")
