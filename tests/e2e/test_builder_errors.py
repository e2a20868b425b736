"""A form's errors all at once (issue 12, item 9): the builder names every input it cannot
read, and every problem the server finds on save, each at its field by its label, with a
count above the page, instead of one per click."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login, screenshot
from tests.e2e.test_web_app import _add_card


def test_every_problem_is_shown_at_its_field_at_once(web: WebServer, page: Page) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Many problems")
    page.get_by_label("Alias").fill("many")
    _add_card(page, "API Connector", "api_connector.close")
    close = page.locator('[data-step="close"]')
    _add_card(page, "Object", "object.get")
    pick = page.locator('[data-step="object_get"]')
    _add_card(page, "Flow", "flow.return")
    ret = page.locator('[data-step="return"]')

    # Read in the page: a status code that is no number, and a row with no name.
    close.get_by_role("textbox", name="Status code").fill("two hundred")
    ret.get_by_role("textbox", name="Keys: value 1").fill("orphan")
    page.get_by_role("button", name="Create flow").click()
    expect(page.locator("#problem-count")).to_have_text(
        "2 problems to fix before saving: each is shown at its field."
    )
    expect(close.locator(".field-error")).to_have_text("Enter a number or a {{ reference }}.")
    expect(ret.locator(".field-error")).to_contain_text("This row has a value but no name")
    expect(close.get_by_role("textbox", name="Status code")).to_be_focused()  # the first

    # Found by the server: a status Close never sends, a path that is no JMESPath, a
    # reference to a card that runs later, and a required input left empty.
    close.get_by_role("textbox", name="Status code").fill("202")
    pick.get_by_role("textbox", name="Path").fill("users[?active")
    ret.get_by_role("textbox", name="Keys: name 1").fill("who")
    ret.get_by_role("textbox", name="Keys: value 1").fill("{{ steps.later.name }}")
    page.get_by_role("button", name="Create flow").click()
    expect(page.locator("#problem-count")).to_contain_text("problems to fix before saving")
    expect(close.locator(".field-error")).to_have_text(
        "Status code: must be 200, or from 400 to 599."
    )
    expect(pick.locator('[data-field$=".inputs.path"] .field-error')).to_contain_text(
        "not a valid JMESPath expression"
    )
    expect(pick.locator('[data-field$=".inputs.object"] .field-error')).to_have_text(
        "Object is required."
    )
    # next to the row named "who", its value marked
    row_error = ret.locator('.pair[data-field="cards.2.inputs.who"] .field-error')
    expect(row_error).to_have_text("{{ steps.later.name }}: there is no card 'later'.")
    expect(ret.get_by_role("textbox", name="Keys: value 1")).to_have_attribute(
        "aria-invalid", "true"
    )
    count = page.locator("#problem-count").inner_text()
    assert count.startswith(f"{page.locator('.field-error').count()} problems"), count
    expect(page).to_have_url(f"{web.url}/flows/new")  # nothing saved
    screenshot(page, "builder-errors")

    # Fixed, the flow saves and the errors are gone.
    close.get_by_role("textbox", name="Status code").fill("200")
    pick.get_by_role("textbox", name="Object").fill('{"users": []}')
    pick.get_by_role("textbox", name="Path").fill("users[?active]")
    ret.get_by_role("textbox", name="Keys: value 1").fill("{{ steps.object_get.value }}")
    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    expect(page.locator(".field-error")).to_have_count(0)
    expect(page.locator("#problem-count")).to_have_count(0)
