"""Importing a flow file that clashes with a flow already here, in a real browser: the clash
names that flow, and the file can go in as a copy beside it (or replace it)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, login

LOOKUP = """name: Lookup
trigger: {type: api_endpoint, alias: lookup, security: none}
cards:
  - {id: c, card: object.construct, inputs: {v: %s}}
"""


def test_a_clash_names_the_flow_and_offers_a_copy_or_a_replacement(
    web: WebServer, page: Page, tmp_path: Path
) -> None:
    with web.api() as api:
        original = api.post(
            "/api/v1/flows/import", json={"content": LOOKUP % 1, "filename": "lookup.yaml"}
        ).json()
    same = tmp_path / "lookup.yaml"
    same.write_text(LOOKUP % 2)

    login(page, web)
    page.locator("#import-file").set_input_files(str(same))
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#import-clash")).to_contain_text(
        f"'Lookup' already exists ({original['id']})"
    )
    dialog.get_by_role("button", name="Import as a copy").click()
    expect(page.locator('tr[data-flow="Lookup (copy)"]')).to_be_visible()
    expect(page.locator('tr[data-flow="Lookup (copy)"]')).to_contain_text("/invoke/lookup-copy")

    page.locator("#import-file").set_input_files(str(same))
    page.get_by_role("dialog").get_by_role("button", name="Replace it").click()
    expect(page.get_by_text("Replaced “Lookup”.")).to_be_visible()
    with web.api() as api:
        flows = {flow["name"]: flow for flow in api.get("/api/v1/flows").json()}
    assert flows["Lookup"]["id"] == original["id"]
    assert flows["Lookup"]["cards"][0]["inputs"] == {"v": 2}
    assert flows["Lookup (copy)"]["trigger"]["alias"] == "lookup-copy"

    # another name, the same alias: only a copy can go in, and the message names the flow
    other = tmp_path / "other.yaml"
    other.write_text((LOOKUP % 3).replace("name: Lookup", "name: Lookup again"))
    page.locator("#import-file").set_input_files(str(other))
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#import-clash")).to_contain_text("Flow 'Lookup'")
    expect(dialog.locator("#import-clash")).to_contain_text("/invoke/lookup")
    expect(dialog.get_by_role("button", name="Replace it")).to_have_count(0)
    dialog.get_by_role("button", name="Import as a copy").click()
    expect(page.locator('tr[data-flow="Lookup again"]')).to_contain_text("/invoke/lookup-copy-2")
