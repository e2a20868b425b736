"""Step references in the builder, in a real browser: the builder finds the same
``steps.<id>`` references as the server (quoted ids included) when it tests and renames cards."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from cardflow.flows.expressions import expressions_in, step_references
from tests.e2e.conftest import WebServer, login
from tests.e2e.test_web_app import _add_card, _keys_as_json
from tests.support.upstream import Upstream

STEP_REFS = "/static/js/builder/step-refs.js"
EXPRESSIONS = [
    "steps.construct.output.name",
    'steps."construct".output',
    'steps . "my-card".outputs',
    'steps."a b"',
    'steps."a\\"b".x',
    'steps.""',
    'steps."a\\\\"',
    'steps."two\nlines"',
    'steps."x\\\ny"',  # a backslash before a line break does not escape it
    'steps."😀"',
    'length(steps.a) && steps."b" || steps.c[0]',
    "steps.a.steps.b",  # only the first: the second follows a dot
    "steps.\n a",
    "steps.\x1c a",  # Python's whitespace, not JavaScript's
    "steps.\ufeffa",  # JavaScript's whitespace, not Python's
    "steps.1a",
    "steps.ab-cd",
    "'steps.a'",
    "xsteps.a",
    "_steps.a",
    "ésteps.a",
    "\u0661steps.a",  # a digit, in Arabic-Indic
    "(steps).a",
]
IN_BROWSER = """async ([path, expressions]) => {
  const refs = await import(path);
  return expressions.map((e) => {
    const found = [...refs.stepReferences(e)];
    return {
      found,
      renamed: found.map((id) => refs.renameInText(`{{ ${e} }}`, id, "renamed")),
      renamedJson: found.map((id) =>
        refs.renameInText(JSON.stringify({ key: `{{ ${e} }}` }), id, "renamed", { json: true })),
    };
  });
}"""


def test_builder_finds_the_step_references_the_server_finds(web: WebServer, page: Page) -> None:
    login(page, web)
    answers = page.evaluate(IN_BROWSER, [STEP_REFS, EXPRESSIONS])
    for expression, answer in zip(EXPRESSIONS, answers, strict=True):
        expected = step_references(expression)
        assert set(answer["found"]) == expected, expression
        # renaming one reference leaves the others, as the server reads them
        for old, text, json_text in zip(
            answer["found"], answer["renamed"], answer["renamedJson"], strict=True
        ):
            after = (expected - {old}) | {"renamed"}
            assert {r for e in expressions_in(text) for r in step_references(e)} == after, text
            value = json.loads(json_text)
            assert {r for e in expressions_in(value) for r in step_references(e)} == after


def test_builder_tests_and_renames_quoted_step_references(web: WebServer, page: Page) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Quoted")
    page.get_by_label("Trigger", exact=True).select_option("manual")

    _add_card(page, "Object", "object.construct")
    first = page.locator('[data-step="construct"]')
    _keys_as_json(first).fill('{"name": "Grace"}')
    _add_card(page, "Text", "text.compose")
    second = page.locator('[data-step="compose"]')
    second.get_by_role("textbox", name="Template").fill('Hello {{ steps."construct".output.name }}')

    # Testing a card that reads steps."construct" before that card was tested says so.
    second.get_by_role("button", name="▶ Test this card").click()
    expect(second.locator("[data-test-result] .cell-note")).to_contain_text(
        "No test output yet for construct"
    )
    first.get_by_role("button", name="▶ Test this card").click()
    expect(first.locator("[data-test-result]")).to_have_attribute("data-test-result", "ok")
    second.get_by_role("button", name="▶ Test this card").click()
    expect(second.locator("[data-test-result]")).to_contain_text('"Hello Grace"')
    expect(second.locator("[data-test-result] .cell-note")).to_have_count(0)

    # In JSON the quotes of a quoted id are escaped: steps.\"compose\".
    _add_card(page, "Flow", "flow.return")
    _keys_as_json(page.locator('[data-step="return"]')).fill(
        '{"greeting": "{{ steps.\\"compose\\".text }}"}'
    )

    # Renaming a card rewrites quoted references to it, and they stay quoted.
    card_id = first.get_by_label("Card id")
    card_id.fill("person")
    card_id.press("Tab")
    expect(
        page.locator('[data-step="compose"]').get_by_role("textbox", name="Template")
    ).to_have_value('Hello {{ steps."person".output.name }}')
    card_id = page.locator('[data-step="compose"]').get_by_label("Card id")
    card_id.fill("greet")
    card_id.press("Tab")
    expect(page.get_by_text("Updated 1 reference to steps.greet.")).to_be_visible()
    ret = page.locator('[data-step="return"]')
    expect(ret.get_by_label("Keys (JSON object)")).to_have_value(
        '{"greeting": "{{ steps.\\"greet\\".text }}"}'
    )
    ret.get_by_role("button", name="▶ Test this card").click()
    expect(ret.locator(".test-answer")).to_contain_text('"Hello Grace"')
    expect(ret.locator("[data-test-result] .cell-note")).to_have_count(0)

    # The server finds the same references: the flow saves and runs.
    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    page.get_by_role("button", name="Run now").click()
    page.get_by_role("dialog").get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(r"/runs/run_"))
    expect(page.locator("#run-status")).to_contain_text("Succeeded")
    with web.api() as api:
        flow = api.get("/api/v1/flows/Quoted").json()
    assert [c["id"] for c in flow["cards"]] == ["person", "greet", "return"]
    assert flow["cards"][1]["inputs"] == {"template": 'Hello {{ steps."person".output.name }}'}
    assert flow["cards"][2]["inputs"] == {"greeting": '{{ steps."greet".text }}'}


def test_a_key_clicked_in_a_test_output_inserts_its_reference(
    web: WebServer, page: Page, upstream: Upstream
) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Click to insert")
    page.get_by_label("Trigger", exact=True).select_option("manual")
    _add_card(page, "API Connector", "api_connector.get")
    get = page.locator('[data-step="get"]')
    url = get.get_by_role("textbox", name="URL")
    url.fill(f"{upstream.url}/echo/deep")
    get.get_by_role("button", name="▶ Test this card").click()
    expect(get.locator("[data-test-result]")).to_have_attribute("data-test-result", "ok")

    _add_card(page, "Flow", "flow.return")
    ret = page.locator('[data-step="return"]')
    ret.get_by_role("textbox", name="Keys: name 1").fill("where")
    ret.get_by_role("textbox", name="Keys: value 1").click()
    get.get_by_role("button", name="Insert reference steps.get.body.path").click()
    expect(ret.get_by_role("textbox", name="Keys: value 1")).to_have_value(
        "{{ steps.get.body.path }}"
    )

    # In JSON, into the string the cursor is in.
    keys = _keys_as_json(ret)
    keys.fill('{"where": "{{ steps.get.body.path }}", "how": ""}')
    keys.evaluate("el => el.setSelectionRange(el.value.length - 2, el.value.length - 2)")
    get.get_by_role("button", name="Insert reference steps.get.body.method").click()
    expect(keys).to_have_value(
        '{"where": "{{ steps.get.body.path }}", "how": "{{ steps.get.body.method }}"}'
    )

    # A card cannot read its own outputs: with its own URL focused the reference is not
    # inserted there (it is offered on the clipboard instead).
    url.click()
    get.get_by_role("button", name="Insert reference steps.get.body.query_string").click()
    expect(page.locator(".toast").last).to_contain_text("click into an input of a later card")
    expect(url).to_have_value(f"{upstream.url}/echo/deep")

    # The kept result after a reload still inserts.
    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    expect(page.locator("[data-tests-kept]")).to_have_count(1)
    page.reload()
    ret = page.locator('[data-step="return"]')
    expect(ret.get_by_role("textbox", name="Keys: value 2")).to_have_value(
        "{{ steps.get.body.method }}"
    )
    ret.get_by_role("button", name="+ Add key").click()
    ret.get_by_role("textbox", name="Keys: name 3").fill("raw")
    ret.get_by_role("textbox", name="Keys: value 3").click()
    page.locator('[data-step="get"]').get_by_role(
        "button", name="Insert reference steps.get.body.raw_path"
    ).click()
    expect(ret.get_by_role("textbox", name="Keys: value 3")).to_have_value(
        "{{ steps.get.body.raw_path }}"
    )
