"""Run history as a daily user lives in it, in a real browser: more than a page of runs,
filters that stay in the address, and a run found by its id."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login


def test_paging_filters_and_run_id_search(web: WebServer, page: Page) -> None:
    with web.api() as api:
        quiet = api.post(
            "/api/v1/flows",
            json={
                "name": "Tick",
                "trigger": {"type": "manual"},
                "cards": [{"id": "c", "card": "object.construct", "inputs": {"n": 1}}],
            },
        ).json()
        failing = api.post(
            "/api/v1/flows",
            json={
                "name": "Breaks",
                "trigger": {"type": "api_endpoint", "alias": "breaks", "security": "none"},
                "cards": [
                    {
                        "id": "c",
                        "card": "object.get",
                        "inputs": {"object": {}, "path": "a", "on_missing": "fail"},
                    }
                ],
            },
        ).json()
        for _ in range(53):
            assert api.post(f"/api/v1/flows/{quiet['id']}/runs", json={}).status_code == 201
    failed = [httpx.post(f"{web.url}/invoke/breaks", timeout=30).json()["run_id"] for _ in range(2)]

    login(page, web)
    page.goto(f"{web.url}/runs")
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(50)  # the first page, newest first
    assert rows.first.get_attribute("data-run") == failed[-1]
    page.get_by_role("button", name="Older runs").click()
    expect(rows).to_have_count(55)
    expect(page.get_by_role("button", name="Older runs")).to_have_count(0)
    seen = [row.get_attribute("data-run") for row in rows.all()]
    assert len(set(seen)) == 55  # no run twice across pages

    page.get_by_label("Status").select_option("failed")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"/runs\?status=failed$"))
    page.reload()  # the filter is in the address
    expect(page.get_by_label("Status")).to_have_value("failed")
    expect(rows).to_have_count(2)
    page.get_by_label("Flow").select_option(label="Tick")
    expect(page.get_by_text("No run matches these filters.")).to_be_visible()
    page.get_by_label("Status").select_option("")
    expect(rows).to_have_count(50)
    assert failing["id"] not in page.url

    page.get_by_label("Run id").fill("run_nope")
    page.get_by_role("button", name="Open").click()
    expect(page.locator("#run-find-error")).to_contain_text("run_nope")
    page.get_by_label("Run id").fill(failed[0])
    page.get_by_role("button", name="Open").click()
    expect(page).to_have_url(f"{web.url}/runs/{failed[0]}")
    expect(page.locator("#run-status")).to_contain_text("Failed")


def test_builder_tests_are_apart_but_under_their_flow_and_a_run_runs_again_with_its_input(
    web: WebServer, page: Page
) -> None:
    with web.api() as api:
        flow = api.post(
            "/api/v1/flows",
            json={
                "name": "Echo",
                "save_data": True,
                "trigger": {"type": "manual"},
                "cards": [
                    {
                        "id": "ret",
                        "card": "flow.return",
                        "inputs": {"got": "{{ trigger.body.n }}"},
                    }
                ],
            },
        ).json()
        real = api.post(f"/api/v1/flows/{flow['id']}/runs", json={"inputs": {"n": 41}}).json()
    login(page, web)
    page.goto(f"{web.url}/flows/{flow['id']}")
    page.locator('[data-step="ret"]').get_by_role("button", name="▶ Test this card").click()
    link = page.locator('[data-step="ret"]').get_by_role("link", name="In run history")
    test_run = (link.get_attribute("href") or "").rsplit("/", 1)[-1]
    assert test_run.startswith("run_")

    # The flow's runs list its real run only; its builder tests are one filter away.
    page.goto(f"{web.url}/runs?flow={flow['id']}")
    rows = page.locator("#runs-table tbody tr")
    expect(rows.first).to_have_attribute("data-run", real["id"])
    expect(rows).to_have_count(1)
    page.get_by_label("Trigger").select_option(label="Card test (builder)")
    expect(rows.first).to_have_attribute("data-run", test_run)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Echo")  # listed under its flow
    with web.api() as api:
        listed = api.get("/api/v1/runs", params={"flow_id": flow["id"]}).json()
        assert {r["id"] for r in listed} == {real["id"], test_run}  # the API lists both
        apart = api.get("/api/v1/runs", params={"card_tests": "false"}).json()
        assert [r["id"] for r in apart] == [real["id"]]
        assert api.get(f"/api/v1/flows/{flow['id']}").json()["last_run"]["id"] == real["id"]
    page.goto(f"{web.url}/runs/{test_run}")
    expect(page.get_by_role("button", name="Run again with this input")).to_have_count(0)

    # Run again from the run's page, with its trigger body (edited here).
    page.goto(f"{web.url}/runs/{real['id']}")
    page.get_by_role("button", name="Run again with this input").click()
    dialog = page.get_by_role("dialog", name="Run again")
    body = dialog.get_by_label("Trigger body (JSON)")
    expect(body).to_have_value('{\n  "n": 41\n}')
    body.fill('{"n": 42}')
    dialog.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/runs/(?!{real['id']}$)run_\w+$"))
    expect(page.locator("#run-status")).to_contain_text("Succeeded")
    expect(page.locator("details.trigger-data")).to_contain_text('"n": 42')
