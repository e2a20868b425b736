"""The run page and the builder as a user acts on a failure, in a real browser: why a card
failed (what the upstream answered), what the caller got, which cards never ran; a value a
card would always refuse is refused at Save; Run now on a flow with Close succeeds."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login, screenshot
from tests.e2e.test_web_app import _add_card
from tests.support.upstream import Upstream


def test_a_failed_run_shows_the_upstream_answer_the_callers_answer_and_the_cards_not_reached(
    web: WebServer, page: Page, upstream: Upstream
) -> None:
    with web.api() as api:
        created = api.post(
            "/api/v1/flows",
            json={
                "name": "Look up",
                "trigger": {"type": "api_endpoint", "alias": "look-up", "security": "none"},
                "cards": [
                    {
                        "id": "user",
                        "card": "api_connector.get",
                        "inputs": {"url": f"{upstream.url}/status/404?body=no+such+user+42"},
                    },
                    {"id": "done", "card": "flow.return", "inputs": {"name": "x"}},
                ],
            },
        )
        assert created.status_code == 201, created.text
    answer = httpx.post(f"{web.url}/invoke/look-up", json={}, timeout=30)
    assert answer.status_code == 500
    run_id = answer.json()["run_id"]

    login(page, web)
    page.goto(f"{web.url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_contain_text("Failed")
    failed = page.locator('[data-card="user"]')
    expect(failed.locator(".cell-error")).to_contain_text("404")
    answered = failed.locator(".upstream-answer")
    expect(answered).to_contain_text("HTTP 404")
    expect(answered.locator(".body-excerpt")).to_have_text("no such user 42")
    expect(answered).to_contain_text("Response headers")
    not_reached = page.locator('[data-card="done"]')
    expect(not_reached).to_have_class(re.compile("run-card-not-reached"))
    expect(not_reached).to_contain_text("Not reached")
    expect(page.locator("#run-events")).to_contain_text("The caller got HTTP 500")
    screenshot(page, "run-failed")


def test_save_refuses_a_value_the_card_always_refuses_and_run_now_with_close_succeeds(
    web: WebServer, page: Page
) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Acknowledge")
    page.get_by_label("Alias").fill("acknowledge")
    page.get_by_label("Security").select_option("none")
    page.get_by_label("Save run data").check()
    page.get_by_label("Test data: request body").fill('{"n": 7}')
    _add_card(page, "API Connector", "api_connector.close")
    close = page.locator('[data-step="close"]')
    status = close.get_by_role("textbox", name="Status code")
    status.fill("202")
    page.get_by_role("button", name="Create flow").click()
    error = close.locator('[data-field="cards.0.inputs.status_code"] .field-error')
    # named by its label next to the field, not by its path (inputs.status_code)
    expect(error).to_have_text("Status code: must be 200, or from 400 to 599.")
    expect(page).to_have_url(f"{web.url}/flows/new")  # nothing saved

    status.fill("200")
    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    page.get_by_role("button", name="Run now").click()
    dialog = page.get_by_role("dialog")
    body = dialog.get_by_label("Trigger body (JSON)")
    expect(body).to_have_value('{\n  "n": 7\n}')  # the builder's test data
    body.fill('{"n": 8,}')
    dialog.get_by_role("button", name="Run", exact=True).click()
    expect(dialog.locator("#run-trigger-error")).to_contain_text("Not valid JSON")
    body.fill('{"n": 8}')
    dialog.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/run_"))
    expect(page.locator("#run-status")).to_contain_text("Succeeded")
    expect(page.locator('[data-card="close"]')).to_contain_text("Succeeded")
    expect(page.locator("details.trigger-data")).to_contain_text('"n": 8')
