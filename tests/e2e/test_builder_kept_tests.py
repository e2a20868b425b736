"""The builder's testing survives a reload, in a real browser: the test data and each
card's last result come back (kept on the server for the flow until it is deleted)."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login
from tests.support.upstream import Upstream


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
    # the test data may have been kept on its own first (typing it starts a save): wait
    # for the save that holds the card's result
    with web.api() as api:
        _wait_until(
            lambda: (
                "construct"
                in api.get(f"/api/v1/flows/{flow['id']}/test-state").json().get("results", {})
            )
        )

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


def test_a_pinned_cards_outputs_stay_what_later_cards_test_with(
    web: WebServer, page: Page, upstream: Upstream
) -> None:
    with web.api() as api:
        flow = api.post(
            "/api/v1/flows",
            json={
                "name": "Pins",
                "trigger": {"type": "manual"},
                "cards": [
                    {
                        "id": "get",
                        "card": "api_connector.get",
                        "inputs": {"url": f"{upstream.url}/echo/one"},
                    },
                    {
                        "id": "return",
                        "card": "flow.return",
                        "inputs": {"path": "{{ steps.get.body.path }}"},
                    },
                ],
            },
        ).json()
    login(page, web)
    page.goto(f"{web.url}/flows/{flow['id']}")
    get = page.locator('[data-step="get"]')
    ret = page.locator('[data-step="return"]')
    expect(get.get_by_role("button", name="Pin outputs")).to_have_count(0)  # nothing yet
    get.get_by_role("button", name="▶ Test this card").click()
    expect(get.locator("[data-test-result]")).to_contain_text('"/echo/one"')
    get.get_by_role("button", name="Pin outputs").click()
    expect(get.locator(".badge-pinned")).to_have_text("Pinned")
    expect(get.get_by_role("button", name="Unpin outputs")).to_have_attribute(
        "aria-pressed", "true"
    )

    # Tested again with another URL: the new answer is shown, the pinned outputs kept.
    get.get_by_role("textbox", name="URL").fill(f"{upstream.url}/echo/two")
    get.get_by_role("button", name="▶ Test this card").click()
    expect(get.locator("[data-test-result]")).to_contain_text('"/echo/two"')
    expect(get.locator(".test-box")).to_contain_text("Pinned outputs kept")
    ret.get_by_role("button", name="▶ Test this card").click()
    expect(ret.locator(".test-answer")).to_contain_text('"/echo/one"')

    # The pin is kept for the flow: after a reload it still holds.
    expect(page.locator("[data-tests-kept]")).to_have_count(1)
    with web.api() as api:

        def kept_pin() -> bool:
            got = api.get(f"/api/v1/flows/{flow['id']}/test-state").json()
            return bool(got.get("results", {}).get("get", {}).get("pinned"))

        _wait_until(kept_pin)  # an earlier save may have answered first
        kept = api.get(f"/api/v1/flows/{flow['id']}/test-state").json()
    assert kept["results"]["get"]["pinned"] is True
    assert kept["results"]["get"]["outputs"]["body"]["path"] == "/echo/one"
    page.reload()
    get = page.locator('[data-step="get"]')
    expect(get.locator(".badge-pinned")).to_be_visible()
    get.get_by_role("button", name="Unpin outputs").click()
    expect(get.locator(".badge-pinned")).to_have_count(0)
    get.get_by_role("button", name="▶ Test this card").click()
    expect(get.locator("[data-test-result]")).to_contain_text('"/echo/one"')  # the saved URL
    get.get_by_role("textbox", name="URL").fill(f"{upstream.url}/echo/two")
    get.get_by_role("button", name="▶ Test this card").click()
    expect(get.locator("[data-test-result]")).to_contain_text('"/echo/two"')
    ret = page.locator('[data-step="return"]')
    ret.get_by_role("button", name="▶ Test this card").click()
    expect(ret.locator(".test-answer")).to_contain_text('"/echo/two"')


def _wait_until(check: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the builder did not keep the test result"
        time.sleep(0.05)
