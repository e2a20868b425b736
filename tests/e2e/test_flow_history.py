"""A flow's version history in a real browser: saves with notes, the History dialog, two
versions side by side with the changed line highlighted, Restore, the run page's version."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login, screenshot


def test_save_with_notes_compare_and_restore(web: WebServer, page: Page) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Greet")
    page.get_by_label("Trigger", exact=True).select_option("manual")
    page.get_by_label("Description", exact=True).fill("Says hello")
    page.locator("#save-note").fill("first cut")
    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    expect(page.locator("#save-status")).to_have_text("Saved")
    expect(page.locator("#save-note")).to_have_value("")  # a note goes with one save

    page.get_by_label("Description", exact=True).fill("Says goodbye")
    page.locator("#save-note").fill("say goodbye instead")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#save-status")).to_have_text("Saved")

    page.get_by_role("button", name="History").click()
    dialog = page.get_by_role("dialog", name="Version history")
    rows = dialog.locator("#versions-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("say goodbye instead")
    expect(rows.nth(0)).to_contain_text("Web app")
    expect(rows.nth(0).locator(".version-number")).to_have_text("2")
    expect(rows.nth(1)).to_contain_text("first cut")
    expect(dialog.get_by_role("button", name="Show older versions")).to_have_count(0)
    # when: the local time, as the browser writes it (not the ISO text)
    stamp = rows.nth(1).locator("time")
    expect(stamp).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    assert "T" not in stamp.inner_text()

    dialog.get_by_label("Compare version 1").check()
    expect(dialog.locator("#diff-table")).to_have_count(0)  # one ticked: nothing to compare
    dialog.get_by_label("Compare version 2").check()
    table = dialog.locator("#diff-table")
    expect(table).to_be_visible()
    expect(dialog.locator("#version-diff")).not_to_contain_text("null")
    changed = table.locator("tr.diff-changed")
    expect(changed).to_have_count(1)
    cells = changed.locator("td")
    expect(cells.nth(1)).to_have_text("description: Says hello")
    expect(cells.nth(3)).to_have_text("description: Says goodbye")
    # side by side: the two lines in one row, left and right, each highlighted
    left_box, right_box = cells.nth(1).bounding_box(), cells.nth(3).bounding_box()
    assert left_box and right_box and left_box["x"] < right_box["x"]
    assert abs(left_box["y"] - right_box["y"]) < 1
    same = table.locator("tr.diff-same").first.locator("td").nth(1)
    background = "el => getComputedStyle(el).backgroundColor"
    assert cells.nth(1).evaluate(background) != same.evaluate(background)
    assert cells.nth(3).evaluate(background) != same.evaluate(background)
    assert cells.nth(1).evaluate(background) != cells.nth(3).evaluate(background)
    screenshot(page, "flow-history")

    # Restore version 1, after a confirm: the builder shows the old document
    expect(rows.nth(0).get_by_role("button", name="Restore")).to_have_count(0)  # current
    rows.nth(1).get_by_role("button", name="Restore").click()
    confirm = page.get_by_role("dialog", name="Restore version 1?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    with web.api() as api:
        flow = api.get("/api/v1/flows/Greet").json()
    assert flow["saved_version"] == 2  # cancelled: nothing saved
    rows.nth(1).get_by_role("button", name="Restore").click()
    page.get_by_role("dialog", name="Restore version 1?").get_by_role(
        "button", name="Restore"
    ).click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_label("Description", exact=True)).to_have_value("Says hello")
    expect(page.locator("#save-status")).not_to_have_text("Unsaved changes")

    page.get_by_role("button", name="History").click()
    dialog = page.get_by_role("dialog", name="Version history")
    rows = dialog.locator("#versions-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Restored from version 1")
    with web.api() as api:
        flow = api.get("/api/v1/flows/Greet").json()
        assert (flow["saved_version"], flow["description"]) == (3, "Says hello")
        run = api.post(f"/api/v1/flows/{flow['id']}/runs", json={}).json()
    page.goto(f"{web.url}/runs/{run['id']}")
    expect(page.locator("#run-flow-version")).to_have_text("Version 3")
