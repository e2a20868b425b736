"""Users and roles in a real browser: the owner invites from the Users page, a viewer and a
builder log in with their invitation links and see only the controls their role may use,
and the API refuses the rest anyway."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import WebServer, login, screenshot

FLOW = {"name": "Greet", "trigger": {"type": "manual"}, "cards": []}


def _accept(browser: Browser, web: WebServer, link: str) -> Page:
    """A fresh browser opening an invitation link, as the invited person would."""
    page = browser.new_context().new_page()
    page.goto(link)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{web.url}/flows")
    page.wait_for_selector("#app[data-ready='true']")
    return page


def _refused(page: Page, method: str, path: str, body: object) -> dict[str, object]:
    """What the API answers this page's own fetch (session cookie + CSRF token)."""
    answer: dict[str, object] = page.evaluate(
        """async ([method, path, body]) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch(path, { method, headers: { "Content-Type": "application/json",
                "X-CSRF-Token": csrf }, body: JSON.stringify(body) });
            return { status: r.status, body: await r.json() };
        }""",
        [method, path, body],
    )
    return answer


def test_owner_invites_and_a_viewer_sees_no_changing_control(
    web: WebServer, page: Page, browser: Browser
) -> None:
    with web.api() as api:
        assert api.post("/api/v1/flows", json=FLOW).status_code == 201
    login(page, web)
    page.get_by_role("link", name="Users").click()
    page.wait_for_selector("#app[data-ready='true']")
    expect(page.locator("#users-table")).to_contain_text("owner")
    page.get_by_role("button", name="+ Invite user").click()
    page.locator("#invite-name").fill("vera")
    page.locator("#invite-role").select_option("viewer")
    page.get_by_role("button", name="Create invitation").click()
    link = page.locator("#invite-url").input_value()
    assert "/login?token=" in link
    page.locator(".dialog-actions").get_by_role("button", name="Close").click()
    expect(page.locator("#invites-table")).to_contain_text("vera")
    screenshot(page, "users")

    viewer = _accept(browser, web, link)
    expect(viewer.locator(".whoami")).to_have_text("vera (viewer)")
    expect(viewer.get_by_role("link", name="Users")).to_have_count(0)
    expect(viewer.locator("#flows-table")).to_contain_text("Greet")
    expect(viewer.locator("[data-action='new-flow']")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Delete Greet")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Disable Greet")).to_have_count(0)
    expect(viewer.get_by_role("link", name="Export Greet")).to_have_count(1)
    viewer.get_by_role("link", name="Greet", exact=True).click()
    viewer.wait_for_selector("#app[data-ready='true']")
    expect(viewer.locator("#flow-history")).to_be_visible()
    expect(viewer.locator("#save-flow")).to_have_count(0)
    expect(viewer.locator("#run-now")).to_have_count(0)
    expect(viewer.locator("#add-card")).to_have_count(0)
    # and the API refuses anyway
    refused = _refused(viewer, "POST", "/api/v1/flows", {**FLOW, "name": "Sneaky"})
    assert refused["status"] == 403
    assert refused["body"]["error"]["type"] == "forbidden"  # type: ignore[index]
    expect(viewer.get_by_role("link", name="Audit log")).to_have_count(0)  # admins' page
    assert viewer.goto(f"{web.url}/users").status == 403  # type: ignore[union-attr]
    assert viewer.goto(f"{web.url}/audit").status == 403  # type: ignore[union-attr]
    # the invitation worked once: now it is gone from the owner's page
    page.reload()
    page.wait_for_selector("#app[data-ready='true']")
    expect(page.locator("#users-table")).to_contain_text("vera")
    expect(page.locator("#invites-table")).to_have_count(0)


def test_a_builder_builds_but_never_changes_a_connection(web: WebServer, browser: Browser) -> None:
    with web.api() as api:
        for name, shared in (("Shared API", ["everyone"]), ("Admins only", [])):
            made = api.post(
                "/api/v1/connections",
                json={"name": name, "auth_type": "none", "config": {}, "shared_with": shared},
            )
            assert made.status_code == 201, made.text
        invite = api.post("/api/v1/users/invites", json={"name": "bob", "role": "builder"})
        link = invite.json()["url"]
    builder = _accept(browser, web, link)
    expect(builder.locator("[data-action='new-flow']")).to_be_visible()
    builder.get_by_role("link", name="Connections").click()
    builder.wait_for_selector("#app[data-ready='true']")
    table = builder.locator("#connections-table")
    expect(table).to_contain_text("Shared API")
    expect(table).not_to_contain_text("Admins only")  # not shared with him
    expect(builder.locator("[data-action='new-connection']")).to_have_count(0)
    expect(builder.get_by_role("button", name="Edit Shared API")).to_have_count(0)
    expect(builder.get_by_role("button", name="Delete Shared API")).to_have_count(0)
    expect(builder.get_by_role("button", name="Test Shared API")).to_have_count(0)
    expect(builder.get_by_role("link", name="Audit log")).to_have_count(0)
    screenshot(builder, "connections-builder")
    refused = _refused(builder, "PATCH", "/api/v1/connections/Shared API", {"name": "Mine"})
    assert refused["status"] == 403

    # he builds a flow in the builder and saves it
    builder.goto(f"{web.url}/flows/new")
    builder.wait_for_selector("#app[data-ready='true']")
    builder.get_by_label("Name", exact=True).fill("Built by Bob")
    builder.get_by_label("Trigger", exact=True).select_option("manual")
    builder.get_by_role("button", name="Create flow").click()
    expect(builder.locator("#save-status")).to_have_text("Saved")
    builder.get_by_role("button", name="History").click()
    expect(builder.locator("#versions-table tbody tr").first).to_contain_text("bob")
    # a flow using the connection not shared with him is refused, naming it
    sneaky = {
        "name": "Uses admins' connection",
        "cards": [
            {
                "id": "get",
                "card": "api_connector.get",
                "connection": "Admins only",
                "inputs": {"url": "http://127.0.0.1:9/"},
            }
        ],
    }
    refused = _refused(builder, "POST", "/api/v1/flows", sneaky)
    assert refused["status"] == 403
    assert "Admins only" in refused["body"]["error"]["message"]  # type: ignore[index]
