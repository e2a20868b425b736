"""The web app in a real browser (Debian's chromium) against a real `cardflow serve`."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.e2e.conftest import WebServer, login, screenshot
from tests.support.oauth_server import OAuthServer
from tests.support.upstream import Upstream

PASSWORD = "web-SENTINEL-pw-7d1"
HEADER_VALUE = "web-SENTINEL-key-0c4"
CLIENT_SECRET = "web-SENTINEL-client-9ab"


def _fill_connection_dialog(page: Page, name: str, auth_type: str, fields: dict[str, str]) -> None:
    dialog = page.get_by_role("dialog", name="New Connection")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Nickname *").fill(name)
    dialog.get_by_label("Auth type").select_option(label=auth_type)
    for label, value in fields.items():
        dialog.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$")).fill(value)
    dialog.get_by_role("button", name="Create").click()


def _add_card(page: Page, family: str, card: str) -> None:
    """+ Add card → the family's tab → the card."""
    page.get_by_role("button", name="+ Add card", exact=True).click()
    picker = page.get_by_role("dialog", name="Add a card")
    picker.get_by_role("tab", name=family).click()
    picker.locator(f'[data-card="{card}"]').click()
    expect(picker).to_be_hidden()


def _keys_as_json(step: Locator) -> Locator:
    """A Construct's or Return's keys switched from rows to their JSON text area."""
    step.get_by_role("button", name="Edit as JSON").click()
    return step.get_by_label("Keys (JSON object)")


def test_login_link_session_cookie_csrf_and_logout(
    web_process: WebServer, context: BrowserContext, page: Page, browser: Browser
) -> None:
    web = web_process  # the link `cardflow serve` prints on first start, then login-link's
    page.goto(f"{web.url}/flows")
    expect(page).to_have_url(f"{web.url}/login")  # not logged in yet
    expect(page.locator("#result")).to_have_text("Log in to cardflow")
    screenshot(page, "login")

    login(page, web)
    expect(page.get_by_role("heading", name="Flows", exact=True)).to_be_visible()
    cookie = next(c for c in context.cookies() if c["name"] == "cardflow_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the session

    # The link worked once: a second browser cannot use it.
    other = browser.new_context()
    reuse = other.new_page()
    reuse.goto(web.login_link)
    reuse.get_by_role("button", name="Log in").click()
    expect(reuse.locator("#result")).to_have_text("This login link does not work")
    assert not any(c["name"] == "cardflow_session" for c in other.cookies())
    # `cardflow login-link` prints a fresh one that does work.
    reuse.goto(web.new_login_link())
    reuse.get_by_role("button", name="Log in").click()
    expect(reuse).to_have_url(f"{web.url}/flows")
    other.close()

    # The session cookie alone cannot change anything: the CSRF header is required.
    no_csrf = page.request.post(
        f"{web.url}/api/v1/connections",
        data={"name": "x", "auth_type": "none", "config": {}},
    )
    assert no_csrf.status == 403 and no_csrf.json()["error"]["type"] == "forbidden"
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert csrf
    wrong = page.request.post(
        f"{web.url}/api/v1/connections",
        data={"name": "x", "auth_type": "none", "config": {}},
        headers={"X-CSRF-Token": "0" * 64},
    )
    assert wrong.status == 403
    with web.api() as api:
        assert api.get("/api/v1/connections").json() == []  # nothing was created

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login\?logged_out"))
    page.goto(f"{web.url}/connections")
    expect(page).to_have_url(f"{web.url}/login")
    gone = page.request.get(f"{web.url}/api/v1/connections")
    assert gone.status == 401


def test_pages_send_a_strict_content_security_policy(web: WebServer, page: Page) -> None:
    login(page, web)
    for path in ("/flows", "/connections", "/runs", "/flows/new", "/login"):
        response = page.request.get(f"{web.url}{path}")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "frame-ancestors 'none'" in csp
        # every asset comes from cardflow itself: no CDN, works offline
        for target in re.findall(r'(?:src|href)="([^"]*)"', response.text()):
            assert target.startswith(("/", "#")), (path, target)
    html = page.request.get(f"{web.url}/flows").text()
    assert "<script>" not in html and "<style" not in html  # no inline script or style

    # The OpenAPI reference renders from cardflow's own copy of Swagger UI.
    page.goto(f"{web.url}/docs")
    expect(page.locator(".swagger-ui .title")).to_contain_text("cardflow")
    expect(page.locator(".opblock-tag", has_text="connections")).to_be_visible()
    # each auth type's config and each card's inputs are named schemas; errors are
    # cardflow's shape, not FastAPI's
    models = page.locator("section.models")
    for name in (
        "Basic (basic)",
        "OAuth 2.0 (oauth)",
        "Inputs of api_connector.get",
        "ErrorResponse",
    ):
        expect(models).to_contain_text(name)
    expect(models).not_to_contain_text("HTTPValidationError")


def test_connections_basic_custom_and_oauth_authorization(
    web: WebServer, page: Page, oauth_server: OAuthServer, upstream: Upstream
) -> None:
    login(page, web)
    page.get_by_role("link", name="Connections").click()
    expect(page.get_by_text("No connections yet")).to_be_visible()
    screenshot(page, "connections-empty")

    page.get_by_role("button", name="+ New Connection").first.click()
    _fill_connection_dialog(
        page,
        "Echo - Basic - svc",
        "Basic",
        {"Username": "svc", "Password": PASSWORD},
    )
    expect(page.locator('tr[data-connection="Echo - Basic - svc"]')).to_contain_text("Ready")

    page.get_by_role("button", name="+ New Connection").first.click()
    dialog = page.get_by_role("dialog", name="New Connection")
    dialog.get_by_label("Auth type").select_option(label="Custom Header")
    expect(dialog.get_by_label("Header Value")).to_have_attribute("type", "password")
    screenshot(page, "new-connection-dialog")
    _fill_connection_dialog(
        page,
        "Echo - Custom Header - api_key",
        "Custom Header",
        {"Header Name": "api_key", "Header Value": HEADER_VALUE},
    )
    expect(page.locator('tr[data-connection="Echo - Custom Header - api_key"]')).to_be_visible()

    # A bad field is named next to the field, in the dialog.
    page.get_by_role("button", name="+ New Connection").first.click()
    _fill_connection_dialog(page, "Echo - Basic - svc", "None", {})
    dialog = page.get_by_role("dialog", name="New Connection")
    expect(dialog.locator('[data-field="name"] .field-error')).to_contain_text("already")
    dialog.get_by_role("button", name="Cancel").click()

    # Edit: the secret is never shown back; a blank password keeps it.
    row = page.locator('tr[data-connection="Echo - Custom Header - api_key"]')
    row.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name="Edit connection")
    value = edit.get_by_label("Header Value")
    expect(value).to_have_value("")
    expect(value).to_have_attribute("placeholder", re.compile("leave blank to keep"))
    edit.get_by_label("Nickname *").fill("Echo - Custom - api_key")
    edit.get_by_role("button", name="Save").click()
    expect(page.locator('tr[data-connection="Echo - Custom - api_key"]')).to_be_visible()
    with web.api() as api:
        tested = api.post(
            "/api/v1/cards/api_connector.get/test",
            json={
                "connection": "Echo - Custom - api_key",
                "inputs": {"url": f"{upstream.url}/echo"},
            },
        ).json()
    # The kept secret went on the wire; the answer shown back has it blanked out.
    sent = [r for r in upstream.requests if r["path"] == "/echo"][-1]
    assert ["api_key", HEADER_VALUE] in sent["headers"]
    assert ["api_key", "[redacted]"] in tested["outputs"]["body"]["headers"]

    # OAuth: the dialog, the redirect URI, then the real dance with the Authlib provider.
    client_id = f"web-{secrets.token_hex(3)}"
    oauth_server.add_client(
        client_id,
        CLIENT_SECRET,
        scope="read write",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{web.url}/oauth/callback",),
    )
    page.get_by_role("button", name="+ New Connection").first.click()
    _fill_connection_dialog(
        page,
        "Provider - OAuth - alice",
        "OAuth 2.0",
        {
            "Authorize URL": oauth_server.authorize_url,
            "Token URL": oauth_server.token_url,
            "Scope": "read write",
            "Client ID": client_id,
            "Client Secret": CLIENT_SECRET,
        },
    )
    dialog = page.get_by_role("dialog", name="New Connection")
    expect(dialog.locator(".redirect-uri-value")).to_have_text(f"{web.url}/oauth/callback")
    dialog.get_by_role("link", name="Authorize now").click()
    # the provider's own pages: sign in, then consent
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wonderland")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Allow").click()
    expect(page).to_have_url(f"{web.url}/connections")
    expect(page.locator("#authorize-result")).to_contain_text(
        "Authorized “Provider - OAuth - alice”: the connection is ready."
    )
    oauth_row = page.locator('tr[data-connection="Provider - OAuth - alice"]')
    expect(oauth_row).to_contain_text("Ready")
    expect(oauth_row.get_by_role("link", name="Re-authorize")).to_be_visible()
    assert oauth_server.code_exchanges == 1
    screenshot(page, "connections")

    for secret in (PASSWORD, HEADER_VALUE, CLIENT_SECRET):
        assert secret not in page.content()
    with web.api() as api:
        me = api.post(
            "/api/v1/cards/api_connector.get/test",
            json={
                "connection": "Provider - OAuth - alice",
                "inputs": {"url": f"{oauth_server.url}/api/me"},
            },
        ).json()
    assert me["ok"], me


def test_build_test_save_invoke_and_find_the_run(
    web: WebServer, page: Page, upstream: Upstream
) -> None:
    login(page, web)
    expect(page.get_by_text("No flows yet")).to_be_visible()
    page.get_by_role("link", name="+ New flow").first.click()
    page.wait_for_selector("#app[data-ready='true']")

    page.get_by_label("Name", exact=True).fill("Look up user")
    page.get_by_label("Save run data").check()
    page.get_by_label("Alias").fill("look-up-user")
    page.get_by_label("Test data: request body").fill('{"user": "alice"}')

    # Add card -> API Connector -> Get
    page.get_by_role("button", name="+ Add card").click()
    picker = page.get_by_role("dialog", name="Add a card")
    expect(picker.get_by_role("tab", name="API Connector")).to_have_attribute(
        "aria-selected", "true"
    )
    screenshot(page, "add-card")
    picker.locator('[data-card="api_connector.get"]').click()
    get_card = page.locator('[data-step="get"]')
    # a connection created inline, with the same New Connection dialog
    get_card.get_by_label("Connection").select_option(label="+ New connection…")
    _fill_connection_dialog(
        page, "Echo - Basic - svc", "Basic", {"Username": "svc", "Password": PASSWORD}
    )
    expect(get_card.get_by_label("Connection")).to_have_value("Echo - Basic - svc")
    url = get_card.get_by_role("textbox", name="URL", exact=True)
    url.fill(f"{upstream.url}/echo/")
    get_card.get_by_role("button", name="Insert a reference into URL").click()
    references = get_card.get_by_role("listbox", name="References for URL")
    references.select_option("trigger.body.user")  # choosing alone inserts nothing...
    expect(url).to_have_value(f"{upstream.url}/echo/")
    references.press("Enter")  # ...Enter (or a click) does
    expect(url).to_have_value(f"{upstream.url}/echo/{{{{ trigger.body.user }}}}")

    get_card.get_by_role("button", name="▶ Test this card").click()
    result = get_card.locator("[data-test-result]")
    expect(result).to_have_attribute("data-test-result", "ok")
    expect(result.locator(".test-status")).to_contain_text("200")
    expect(result.locator(".json-view")).to_contain_text('"/echo/alice"')
    expect(result.locator(".test-duration")).to_contain_text("ms")

    # Add card -> Flow -> Return, with a reference to the Get card's output
    _add_card(page, "Flow", "flow.return")
    ret = page.locator('[data-step="return"]')
    keys = _keys_as_json(ret)
    keys.fill('{"echoed_path": }')
    keys.press("ArrowLeft")  # the cursor before the closing brace
    # the picker offers the Get card's outputs, including keys seen in its last test
    ret.get_by_role("button", name="Insert a reference into Keys").click()
    references = ret.get_by_role("listbox", name="References for Keys")
    references.get_by_role("option", name="steps.get.body.path").click()
    expect(keys).to_have_value('{"echoed_path": "{{ steps.get.body.path }}"}')
    ret.get_by_role("button", name="▶ Test this card").click()
    expect(ret.locator("[data-test-result]")).to_contain_text('"/echo/alice"')

    # Reorder and remove: a third card goes up above Return, then away.
    _add_card(page, "Object", "object.construct")
    steps = page.locator("#steps > .steps > .step")
    expect(steps).to_have_count(3)
    page.get_by_role("button", name="Move construct up").click()
    assert [s.get_attribute("data-step") for s in steps.all()] == ["get", "construct", "return"]
    expect(page.get_by_role("button", name="Move construct up")).to_be_focused()
    page.get_by_role("button", name="Remove construct").click()
    expect(steps).to_have_count(2)
    expect(page.locator("#undo-bar")).to_contain_text("Removed card “construct”.")

    # A save with an invalid field shows the error next to that card and field.
    url.fill(f"{upstream.url}/echo/{{{{ steps.return.x }}}}")
    page.get_by_role("button", name="Create flow").click()
    error = get_card.locator('[data-field^="cards.0.inputs"] .field-error')
    expect(error).to_contain_text("return")
    url.fill(f"{upstream.url}/echo/{{{{ trigger.body.user }}}}")
    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    invoke_url = page.get_by_label("Invoke URL")
    expect(invoke_url).to_have_value(f"{web.url}/invoke/look-up-user")
    token = page.get_by_label("Client token")
    expect(token).to_have_attribute("type", "password")
    client_token = token.input_value()
    assert len(client_token) > 20
    screenshot(page, "builder")

    answer = httpx.post(
        f"{web.url}/invoke/look-up-user",
        json={"user": "bob"},
        headers={"x-api-client-token": client_token},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"echoed_path": "/echo/bob"}

    page.get_by_role("link", name="Run history").first.click()
    runs = page.locator("#runs-table tbody tr")
    expect(runs.first).to_contain_text("API endpoint")
    expect(runs.first).to_contain_text("Succeeded")
    screenshot(page, "run-history")
    runs.first.get_by_role("link").click()
    expect(page.locator("#run-status")).to_contain_text("Succeeded")
    cards = page.locator(".run-card")
    expect(cards).to_have_count(2)
    for card in ("get", "return"):
        duration = page.locator(f'[data-card="{card}"] .card-duration')
        expect(duration).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s)$"))
    expect(page.locator('[data-card="get"]')).to_contain_text("HTTP 200")
    page.locator('[data-card="get"] summary', has_text="Outputs").click()
    expect(page.locator('[data-card="get"] .io')).to_contain_text('"/echo/bob"')
    screenshot(page, "run")
    assert PASSWORD not in page.content() and client_token not in page.content()

    # The flows list: the flow, its endpoint, disable and enable again.
    page.get_by_role("link", name="Flows").click()
    row = page.locator('tr[data-flow="Look up user"]')
    expect(row).to_contain_text("/invoke/look-up-user")
    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("Disabled")
    assert httpx.post(f"{web.url}/invoke/look-up-user", json={}).status_code == 404
    row.get_by_role("button", name="Enable").click()
    expect(row).to_contain_text("Enabled")
    screenshot(page, "flows")


def test_untrusted_text_renders_as_text(web: WebServer, page: Page, upstream: Upstream) -> None:
    evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    with web.api() as api:
        api.post(
            "/api/v1/connections", json={"name": f"Evil {evil}", "auth_type": "none"}
        ).raise_for_status()
        api.post(
            "/api/v1/flows",
            json={
                "name": f"Flow {evil}",
                "description": evil,
                "cards": [
                    {
                        "id": "page",
                        "card": "api_connector.get",
                        "connection": f"Evil {evil}",
                        "inputs": {"url": f"{upstream.url}/script", "headers": {"x": evil}},
                    }
                ],
            },
        ).raise_for_status()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, web)
    expect(page.get_by_text(f"Flow {evil}")).to_be_visible()
    page.get_by_role("link", name="Connections").click()
    expect(page.get_by_text(f"Evil {evil}")).to_be_visible()

    page.get_by_role("link", name="Flows").click()
    page.get_by_role("link", name=f"Flow {evil}", exact=True).click()
    step = page.locator('[data-step="page"]')
    step.get_by_role("button", name="▶ Test this card").click()
    body = step.locator(".body-text")
    expect(body).to_have_text("<html><body><script>alert(1)</script></body></html>")
    expect(step.get_by_role("textbox", name="Headers: name 1")).to_have_value("x")
    expect(step.get_by_role("textbox", name="Headers: value 1")).to_have_value(evil)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0
    # only cardflow's own module script is on the page
    assert page.evaluate("[...document.scripts].map(s => s.src)") == [
        f"{web.url}/static/js/main.js"
    ]
    assert not dialogs


def test_screenshots_folder_is_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    shots = Path(__file__).parents[2] / "docs" / "screenshots"
    for name in ("connections", "builder", "run"):
        assert (shots / f"{name}.png").exists(), name
        assert f"docs/screenshots/{name}.png" in readme, name


def test_run_page_follows_a_running_flow_live(
    web: WebServer, page: Page, upstream: Upstream
) -> None:
    with web.api() as api:
        api.post(
            "/api/v1/flows",
            json={
                "name": "Slow",
                "trigger": {"type": "api_endpoint", "alias": "slow", "security": "none"},
                "cards": [
                    {
                        "id": "wait",
                        "card": "api_connector.get",
                        "inputs": {"url": f"{upstream.url}/slow?seconds=3"},
                    },
                    {"id": "done", "card": "object.construct", "inputs": {"ok": True}},
                ],
            },
        ).raise_for_status()
    started = httpx.post(f"{web.url}/invoke/slow", headers={"Prefer": "respond-async"})
    assert started.status_code == 202
    login(page, web)
    page.goto(f"{web.url}/runs/{started.json()['run_id']}")
    status = page.locator("#run-status")
    expect(status).to_contain_text("Running")
    expect(status).to_contain_text("updating")
    # no reload: the page polls while the run is running
    expect(status).to_contain_text("Succeeded", timeout=20_000)
    expect(page.locator(".run-card")).to_have_count(2)
    expect(page.locator('[data-card="wait"] .card-duration')).to_have_text(re.compile(r" s$"))


def test_builder_by_keyboard_rename_typed_outputs_and_run_now(web: WebServer, page: Page) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Greeting")
    page.get_by_label("Trigger", exact=True).select_option("manual")

    # Add a card with the keyboard only: the families are tabs, arrow keys move between them.
    page.get_by_role("button", name="+ Add card").focus()
    page.keyboard.press("Enter")
    picker = page.get_by_role("dialog", name="Add a card")
    expect(picker.get_by_role("tab", name="API Connector")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(picker.get_by_role("tab", name="Object")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # past Object · Get to Object · Construct
    expect(picker.locator('[data-card="object.construct"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(picker).to_be_hidden()
    first = page.locator('[data-step="construct"]')
    _keys_as_json(first).fill('{"name": "Grace"}')

    _add_card(page, "Text", "text.compose")
    second = page.locator('[data-step="compose"]')
    template = second.get_by_role("textbox", name="Template")
    template.fill("Hello {{ steps.construct.output.name }}")

    # Outputs typed for a test stand in for a card that was not run.
    first.get_by_text("Outputs for testing later cards").click()
    typed = first.get_by_label("Outputs (JSON)")
    typed.fill('{"output": {"name": "Ada"}}')
    typed.blur()
    second.get_by_role("button", name="▶ Test this card").click()
    expect(second.locator("[data-test-result]")).to_contain_text('"Hello Ada"')

    # Renaming a card rewrites the references to it.
    card_id = first.get_by_label("Card id")
    card_id.fill("person")
    card_id.press("Tab")
    expect(
        page.locator('[data-step="compose"]').get_by_role("textbox", name="Template")
    ).to_have_value("Hello {{ steps.person.output.name }}")

    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    page.get_by_role("button", name="Run now").click()
    page.get_by_role("dialog").get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/run_"))
    expect(page.locator("#run-status")).to_contain_text("Succeeded")
    expect(page.locator(".run-card")).to_have_count(2)
    with web.api() as api:
        flow = api.get("/api/v1/flows/Greeting").json()
    assert flow["trigger"]["type"] == "manual"
    assert flow["cards"][1]["inputs"] == {"template": "Hello {{ steps.person.output.name }}"}


def test_builder_nests_cards_in_for_each(web: WebServer, page: Page, upstream: Upstream) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Echo each")
    page.get_by_label("Alias").fill("echo-each")
    page.get_by_label("Security").select_option("none")
    page.get_by_label("Test data: request body").fill('{"users": ["ann", "bo"]}')

    _add_card(page, "Flow", "list.for_each")
    each = page.locator('[data-step="for_each"]')
    each.get_by_role("textbox", name="List").fill("{{ trigger.body.users }}")

    # a card inside the loop, with loop.item picked from the references
    each.get_by_role("button", name=re.compile("Add a card to")).click()
    picker = page.get_by_role("dialog", name="Add a card")
    picker.locator('[data-card="api_connector.get"]').click()
    inner = each.locator('[data-step="get"]')
    expect(inner).to_have_attribute("data-field", "cards.0.inputs.cards.0")
    url = inner.get_by_role("textbox", name="URL", exact=True)
    url.fill(f"{upstream.url}/echo/")
    inner.get_by_role("button", name="Insert a reference into URL").click()
    references = inner.get_by_role("listbox", name="References for URL")
    references.select_option("loop.item")
    references.press("Enter")
    expect(url).to_have_value(f"{upstream.url}/echo/{{{{ loop.item }}}}")

    # the loop card runs its nested cards when tested
    each.locator('[data-action="test-card"]').last.click()
    result = each.locator(".step-foot + .test-box [data-test-result]").last
    expect(result).to_have_attribute("data-test-result", "ok")
    expect(result).to_contain_text('"/echo/ann"')
    expect(result).to_contain_text('"/echo/bo"')

    _add_card(page, "Flow", "flow.return")
    _keys_as_json(page.locator('[data-step="return"]')).fill(
        '{"paths": "{{ steps.for_each.output[*].get.body.path }}"}'
    )

    # an error inside the loop is shown at the nested card's field
    url.fill("")
    page.get_by_role("button", name="Create flow").click()
    expect(
        inner.locator('[data-field="cards.0.inputs.cards.0.inputs.url"] .field-error')
    ).to_be_visible()
    url.fill(f"{upstream.url}/echo/{{{{ loop.item }}}}")
    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))

    answer = httpx.post(f"{web.url}/invoke/echo-each", json={"users": ["cy", "di", "ed"]})
    assert answer.json() == {"paths": ["/echo/cy", "/echo/di", "/echo/ed"]}
    # reloading the builder shows the nested card where it was
    page.reload()
    expect(page.locator('[data-step="for_each"] [data-step="get"]')).to_be_visible()
    screenshot(page, "builder-for-each")
