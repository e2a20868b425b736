"""The builder's testing survives a reload, in a real browser: the test data and each
card's last result come back (kept on the server for the flow until it is deleted)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login


def test_test_data_and_results_survive_a_reload(web: WebServer, page: Page) -> None:
    with web.api() as api:
        flow = api.post(
            "/api/v1/flows",
            json={
                "name": "Greet",
                "trigger": {"type": "api_endpoint", "alias": "greet", "security": "none"},
                "cards": [
                    {
                        "id": "construct",
                        "card": "object.construct",
                        "inputs": {"hello": "{{ trigger.body.name }}"},
                    }
                ],
            },
        ).json()
    login(page, web)
    page.goto(f"{web.url}/flows/{flow['id']}")
    page.get_by_label("Test data: request body").fill('{"name": "Ada"}')
    card = page.locator('[data-step="construct"]')
    card.get_by_role("button", name="▶ Test this card").click()
    expect(card.locator("[data-test-result]")).to_contain_text('"Ada"')
    expect(page.locator("[data-tests-kept]")).to_have_count(1)  # sent to the server

    page.reload()
    expect(page.get_by_label("Test data: request body")).to_have_value('{"name": "Ada"}')
    card = page.locator('[data-step="construct"]')
    expect(card.locator("[data-test-result]")).to_contain_text('"Ada"')
    with web.api() as api:
        kept = api.get(f"/api/v1/flows/{flow['id']}/test-state").json()
        assert kept["sample"] == '{"name": "Ada"}'
        assert kept["results"]["construct"]["outputs"] == {"output": {"hello": "Ada"}}
        assert api.delete(f"/api/v1/flows/{flow['id']}").status_code == 204
        assert api.get(f"/api/v1/flows/{flow['id']}/test-state").status_code == 404
