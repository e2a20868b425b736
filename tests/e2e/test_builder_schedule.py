"""A scheduled flow made in the builder, in a real browser: the next five fire times
follow the fields, a bad cron is explained where it is typed, and the saved flow runs on
its own."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login
from tests.e2e.test_web_app import _add_card


def test_a_schedule_is_built_previewed_and_saved(web: WebServer, page: Page) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Nightly")
    page.get_by_label("Trigger", exact=True).select_option("schedule")
    upcoming = page.locator("#schedule-next li")
    expect(upcoming).to_have_count(5)  # every 5m by default

    page.get_by_label("Repeat").select_option("cron")
    page.get_by_label("Cron", exact=True).fill("30 2 * * *")
    page.get_by_label("Time zone").fill("Europe/Paris")
    expect(upcoming).to_have_count(5)
    expect(upcoming.first).to_contain_text("Europe/Paris")
    expect(upcoming.first).to_contain_text(re.compile(r"2:30:00|02:30:00"))

    page.get_by_label("Cron", exact=True).fill("* * *")
    expect(upcoming.first).to_contain_text("5 fields")
    page.get_by_label("Cron", exact=True).fill("30 2 * * *")
    expect(upcoming).to_have_count(5)

    _add_card(page, "Object", "object.construct")
    page.get_by_role("button", name="Create flow").click()
    expect(page.locator("#save-status")).to_have_text("Saved")
    flows = httpx.get(
        f"{web.url}/api/v1/flows", headers={"Authorization": f"Bearer {web.api_token}"}
    ).json()
    [trigger] = [flow["trigger"] for flow in flows if flow["name"] == "Nightly"]
    assert {k: trigger.get(k) for k in ("type", "cron", "timezone", "every", "catch_up")} == {
        "type": "schedule",
        "cron": "30 2 * * *",
        "timezone": "Europe/Paris",
        "every": None,
        "catch_up": True,
    }
    page.reload()
    expect(page.get_by_label("Cron", exact=True)).to_have_value("30 2 * * *")
    expect(upcoming).to_have_count(5)
