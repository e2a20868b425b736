"""The Flows table in a real browser: each flow's last run, linked, and a table that fits a
760-pixel window."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login


def test_last_run_column_and_a_narrow_window(web: WebServer, page: Page) -> None:
    with web.api() as api:
        ran = api.post(
            "/api/v1/flows",
            json={
                "name": "Sync the customer records of every region every night",
                "trigger": {"type": "api_endpoint", "alias": "nightly-sync", "security": "none"},
                "cards": [{"id": "c", "card": "object.construct", "inputs": {"n": 1}}],
            },
        ).json()
        api.post(
            "/api/v1/flows",
            json={
                "name": "Never ran",
                "trigger": {"type": "manual"},
                "cards": [{"id": "c", "card": "object.construct", "inputs": {"n": 1}}],
            },
        ).raise_for_status()
        first = api.post(f"/api/v1/flows/{ran['id']}/runs", json={}).json()
        second = api.post(f"/api/v1/flows/{ran['id']}/runs", json={}).json()
        listed = {flow["name"]: flow["last_run"] for flow in api.get("/api/v1/flows").json()}
    assert listed["Never ran"] is None
    assert listed[ran["name"]]["id"] == second["id"] != first["id"]

    page.set_viewport_size({"width": 760, "height": 900})
    login(page, web)
    row = page.locator(f'tr[data-flow="{ran["name"]}"]')
    last = row.locator(".last-run a")
    expect(last).to_contain_text("Succeeded")
    expect(last).to_have_attribute("href", f"/runs/{second['id']}")
    expect(page.locator('tr[data-flow="Never ran"] .last-run')).to_have_text("never")
    # nothing sticks out sideways: the page does not scroll horizontally
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    right = page.locator("#flows-table").evaluate("t => t.getBoundingClientRect().right")
    assert right <= 760
    expect(row.get_by_role("button", name=f"Delete {ran['name']}")).to_be_in_viewport()
    last.click()
    expect(page.locator("#run-status")).to_contain_text("Succeeded")
