"""An API key sent as a query parameter, from the builder's New Connection dialog to Test this
card, in a real browser (issue 13): the key reaches the upstream, the page never holds it."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

from playwright.sync_api import Page, expect
from yarl import URL

from tests.e2e.conftest import WebServer, login, screenshot
from tests.support.upstream import Upstream

KEY = "e2e-SENTINEL key+/é7"
KEY_FORMS = (
    KEY,
    URL("http://h/").with_query(k=KEY).raw_query_string[2:],  # as it went in the URL
    quote(KEY, safe=""),
    quote_plus(KEY),
    json.dumps(KEY)[1:-1],
)


def test_a_query_key_connection_made_in_the_builder_is_used_and_never_shown(
    web: WebServer, page: Page, upstream: Upstream
) -> None:
    with web.api() as api:
        flow = api.post(
            "/api/v1/flows",
            json={
                "name": "Weather",
                "trigger": {"type": "manual"},
                "save_data": True,
                "cards": [
                    {
                        "id": "get",
                        "card": "api_connector.get",
                        "inputs": {"url": f"{upstream.url}/echo/weather"},
                    }
                ],
            },
        ).json()
    login(page, web)
    page.goto(f"{web.url}/flows/{flow['id']}")
    card = page.locator('[data-step="get"]')
    card.get_by_label("Connection").select_option(label="+ New connection…")
    dialog = page.get_by_role("dialog", name="New Connection")
    dialog.get_by_label("Nickname *").fill("Weather - key")
    dialog.get_by_label("Auth type").select_option(label="API Key in Query")
    name = dialog.locator('[data-field="config.param_name"]')
    value = dialog.locator('[data-field="config.param_value"]')
    for field in (name, value):  # both required, marked so
        expect(field.locator("label .req")).to_have_text(" *")
    expect(value.locator("input")).to_have_attribute("type", "password")
    name.locator("input").fill("appid")
    value.locator("input").fill(KEY)
    dialog.get_by_label("Allowed hosts").fill(f"127.0.0.1:{upstream.port}")
    screenshot(page, "new-connection-query")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden()
    expect(card.get_by_label("Connection")).to_have_value("Weather - key")

    before = len(upstream.requests)
    card.get_by_role("button", name="▶ Test this card").click()
    result = card.locator("[data-test-result]")
    expect(result).to_have_attribute("data-test-result", "ok")
    expect(result.locator(".json-view")).to_contain_text('"/echo/weather"')
    expect(result.locator(".json-view")).to_contain_text("[redacted]")
    sent = [r for r in upstream.requests[before:] if r["path"] == "/echo/weather"]
    assert [r["query"] for r in sent] == [{"appid": [KEY]}]  # the key went on the wire
    # the test's request as curl: the key a placeholder in the URL
    result.get_by_text("Request as cURL").click()
    expect(result.locator(".curl-command")).to_have_text(
        f"curl '{upstream.url}/echo/weather?appid=<param_value>'"
    )
    expect(result.get_by_role("button", name="Copy as cURL")).to_be_visible()

    with web.api() as api:
        connection = api.get("/api/v1/connections").json()[0]
    assert connection["config"] == {"param_name": "appid", "param_value": {"set": True}}
    assert connection["allowed_hosts"] == [f"127.0.0.1:{upstream.port}"]
    html = page.content()
    page.goto(f"{web.url}/connections")
    expect(page.locator('tr[data-connection="Weather - key"]')).to_contain_text("API Key in Query")
    for text in (html, page.content()):
        for form in KEY_FORMS:
            assert form not in text, form
