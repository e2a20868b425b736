"""Builder ergonomics in a real browser: Ctrl+S saves, the Save bar stays in view, new card
ids cannot be mistaken for another card type's, and /docs is one click away."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login
from tests.e2e.test_web_app import _add_card, _keys_as_json


def test_ctrl_s_saves_the_bar_sticks_and_card_ids_say_what_they_are(
    web: WebServer, page: Page
) -> None:
    login(page, web)
    docs = page.get_by_role("navigation", name="Main").get_by_role("link", name="API docs")
    expect(docs).to_have_attribute("href", "/docs")

    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Pick a name")
    page.get_by_label("Trigger", exact=True).select_option("manual")
    _add_card(page, "API Connector", "api_connector.get")
    _add_card(page, "Object", "object.get")
    _add_card(page, "Object", "object.get")
    steps = page.locator("#steps > .steps > .step")
    assert [s.get_attribute("data-step") for s in steps.all()] == [
        "get",
        "object_get",
        "object_get_2",
    ]
    page.locator('[data-step="get"]').get_by_role("textbox", name="URL").fill(
        "http://127.0.0.1:9/users"
    )
    for step in ("object_get", "object_get_2"):
        card = page.locator(f'[data-step="{step}"]')
        card.get_by_role("textbox", name="Object").fill("{{ steps.get.body }}")
        card.get_by_role("textbox", name="Path").fill("name")

    page.keyboard.press("Control+s")  # a new flow: Ctrl+S creates it
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    expect(page.locator("#save-status")).to_have_text("Saved")
    bar = page.locator(".builder-bar")
    assert bar.evaluate("el => getComputedStyle(el).position") == "sticky"

    page.get_by_label("Name", exact=True).fill("Pick a better name")
    expect(page.locator("#save-status")).to_have_text("Unsaved changes")
    page.mouse.wheel(0, 2000)  # scrolled down, the bar and its Save are still in view
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_in_viewport()
    page.keyboard.press("Control+s")
    expect(page.locator("#save-status")).to_have_text("Saved")
    with web.api() as api:
        names = [flow["name"] for flow in api.get("/api/v1/flows").json()]
    assert names == ["Pick a better name"]


def test_removing_a_card_names_the_cards_reading_it_and_can_be_undone(
    web: WebServer, page: Page
) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Undo me")
    page.get_by_label("Trigger", exact=True).select_option("manual")
    _add_card(page, "API Connector", "api_connector.get")
    _add_card(page, "Object", "object.get")
    page.locator('[data-step="get"]').get_by_role("textbox", name="URL").fill(
        "http://127.0.0.1:9/users"
    )
    reader = page.locator('[data-step="object_get"]')
    reader.get_by_role("textbox", name="Object").fill("{{ steps.get.body }}")
    reader.get_by_role("textbox", name="Path").fill("name")
    steps = page.locator("#steps > .steps > .step")

    page.get_by_role("button", name="Remove get").click()  # no dialog: it goes at once
    expect(steps).to_have_count(1)
    bar = page.locator("#undo-bar")
    expect(bar).to_contain_text("Removed card “get”.")
    expect(bar).to_contain_text("Card “object_get” reads its outputs")
    expect(page.get_by_role("button", name="Undo")).to_be_focused()
    page.get_by_role("button", name="Undo").click()
    expect(steps).to_have_count(2)
    assert [s.get_attribute("data-step") for s in steps.all()] == ["get", "object_get"]
    expect(page.locator('[data-step="get"]').get_by_role("textbox", name="URL")).to_have_value(
        "http://127.0.0.1:9/users"
    )
    expect(bar).to_have_count(0)


def test_a_path_that_matches_nothing_is_a_warning_and_can_be_made_to_fail(
    web: WebServer, page: Page
) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Pick")
    page.get_by_label("Trigger", exact=True).select_option("manual")
    _add_card(page, "Object", "object.get")
    card = page.locator('[data-step="object_get"]')
    card.get_by_role("textbox", name="Object").fill('{"user": {"name": "Ada"}}')
    card.get_by_role("textbox", name="Path").fill("user.nmae")
    card.get_by_role("button", name="▶ Test this card").click()
    result = card.locator("[data-test-result]")
    expect(result).to_have_attribute("data-test-result", "ok")
    expect(result.locator(".test-warning")).to_contain_text("matched nothing")
    card.get_by_label("On missing").select_option("fail")
    card.get_by_role("button", name="▶ Test this card").click()
    expect(result).to_have_attribute("data-test-result", "failed")
    expect(result).to_contain_text("'user.nmae' matches nothing")
    card.get_by_role("textbox", name="Path").fill("user.name")
    card.get_by_role("button", name="▶ Test this card").click()
    expect(result).to_have_attribute("data-test-result", "ok")
    expect(result.locator(".test-warning")).to_have_count(0)


def test_the_reference_picker_searches_any_depth_and_shows_last_test_values(
    web: WebServer, page: Page
) -> None:
    """A SOAP-like reply nests six levels deep: its leaf is found by searching, its value
    from the last test is shown, and Enter inserts the quoted path."""
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Deep")
    page.get_by_label("Trigger", exact=True).select_option("manual")
    _add_card(page, "Object", "object.construct")
    construct = page.locator('[data-step="construct"]')
    _keys_as_json(construct).fill(
        '{"soap:Envelope": {"soap:Body": {"GetUserResponse": {"User": {"Name": "Ada", "Id": 7}}}}}'
    )
    construct.get_by_role("button", name="▶ Test this card").click()
    expect(construct.locator("[data-test-result]")).to_have_attribute("data-test-result", "ok")

    _add_card(page, "Text", "text.compose")
    compose = page.locator('[data-step="compose"]')
    compose.get_by_role("button", name="Insert a reference into Template").click()
    search = compose.get_by_role("searchbox", name="Search references for Template")
    expect(search).to_be_focused()
    search.fill("name")
    references = compose.get_by_role("listbox", name="References for Template")
    leaf = 'steps.construct.output."soap:Envelope"."soap:Body".GetUserResponse.User.Name'
    expect(references.get_by_role("option")).to_have_count(1)
    expect(references.get_by_role("option", name=leaf)).to_have_count(1)
    search.press("ArrowDown")
    expect(compose.locator(".ref-value")).to_have_text(f'Last test: {leaf} = "Ada"')
    references.press("Enter")
    expect(compose.get_by_role("textbox", name="Template")).to_have_value(f"{{{{ {leaf} }}}}")
    # a value matches too
    compose.get_by_role("button", name="Insert a reference into Template").click()
    compose.get_by_role("searchbox", name="Search references for Template").fill("7")
    expect(references.get_by_role("option", name=leaf.replace("Name", "Id"))).to_have_count(1)
