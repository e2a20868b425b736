"""Object inputs in the builder as name / value rows (issue 12, item 6): Query, Headers and a
Construct's or Return's keys, each value text or a {{ reference }}, with "Edit as JSON" for
power users; a reference inserted inside a JSON string no longer brings its own quotes."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import WebServer, login, screenshot
from tests.e2e.test_web_app import _add_card
from tests.support.upstream import Upstream


def _row(step: Locator, title: str, n: int) -> tuple[Locator, Locator]:
    return (
        step.get_by_role("textbox", name=f"{title}: name {n}", exact=True),
        step.get_by_role("textbox", name=f"{title}: value {n}", exact=True),
    )


def _fill_row(step: Locator, title: str, n: int, name: str, value: str) -> None:
    key, val = _row(step, title, n)
    key.fill(name)
    val.fill(value)


def test_object_inputs_are_rows_of_names_and_values(
    web: WebServer, page: Page, upstream: Upstream
) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Rows")
    page.get_by_label("Trigger", exact=True).select_option("manual")

    # Construct's keys: text as typed, 42 as a number, "7" in quotes as the text 7.
    _add_card(page, "Object", "object.construct")
    construct = page.locator('[data-step="construct"]')
    _fill_row(construct, "Keys", 1, "name", "Grace Hopper")
    construct.get_by_role("button", name="+ Add key").click()
    expect(_row(construct, "Keys", 2)[0]).to_be_focused()
    _fill_row(construct, "Keys", 2, "age", "42")
    construct.get_by_role("button", name="+ Add key").click()
    _fill_row(construct, "Keys", 3, "code", '"7"')
    construct.get_by_role("button", name="▶ Test this card").click()
    result = construct.locator("[data-test-result]")
    expect(result).to_have_attribute("data-test-result", "ok")
    expect(result).to_contain_text('"age": 42')
    expect(result).to_contain_text('"code": "7"')

    # A Get's Query and Headers; a reference inserted into a row's value from the picker.
    _add_card(page, "API Connector", "api_connector.get")
    get = page.locator('[data-step="get"]')
    get.get_by_role("textbox", name="URL").fill(f"{upstream.url}/echo")
    query_name, query_value = _row(get, "Query", 1)
    query_name.fill("q")
    get.get_by_role("button", name="Insert a reference into Query value 1").click()
    get.get_by_role("searchbox").fill("steps.construct.output.name")
    get.get_by_role("searchbox").press("Enter")
    expect(query_value).to_have_value("{{ steps.construct.output.name }}")
    get.get_by_role("button", name="+ Add parameter").click()
    _fill_row(get, "Query", 2, "tag", '["a", "b"]')
    _fill_row(get, "Headers", 1, "X-Age", "age {{ steps.construct.output.age }}")
    get.get_by_role("button", name="▶ Test this card").click()
    answer = get.locator("[data-test-result]")
    expect(answer).to_have_attribute("data-test-result", "ok")
    expect(answer).to_contain_text("Grace Hopper")
    sent = [r for r in upstream.requests if r["path"] == "/echo"][-1]
    assert sent["query"] == {"q": ["Grace Hopper"], "tag": ["a", "b"]}
    assert ["X-Age", "age 42"] in [[k, v] for k, v in sent["headers"]]
    get.scroll_into_view_if_needed()
    screenshot(page, "builder-rows")

    # Removing a row takes it out; saving keeps the values with their types.
    get.get_by_role("button", name="+ Add parameter").click()
    _fill_row(get, "Query", 3, "gone", "x")
    get.get_by_role("button", name="Remove Query row 3 (gone)").click()
    expect(_row(get, "Query", 3)[0]).to_have_count(0)
    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    with web.api() as api:
        flow = api.get("/api/v1/flows/Rows").json()
    assert flow["cards"][0]["inputs"] == {"name": "Grace Hopper", "age": 42, "code": "7"}
    assert flow["cards"][1]["inputs"]["query"] == {
        "q": "{{ steps.construct.output.name }}",
        "tag": ["a", "b"],
    }
    headers = flow["cards"][1]["inputs"]["headers"]
    assert headers == {"X-Age": "age {{ steps.construct.output.age }}"}

    # After a reload the rows show what was saved, "7" still quoted.
    page.reload()
    construct = page.locator('[data-step="construct"]')
    expect(_row(construct, "Keys", 3)[1]).to_have_value('"7"')
    expect(_row(construct, "Keys", 2)[1]).to_have_value("42")
    get = page.locator('[data-step="get"]')
    expect(_row(get, "Query", 2)[1]).to_have_value('["a","b"]')

    # A row with a value but no name, and a name in two rows, are shown on their rows.
    _row(get, "Headers", 1)[0].fill("")
    page.get_by_role("button", name="Save", exact=True).click()
    error = get.locator(".pair .field-error, [data-field$='.#0'] .field-error").first
    expect(error).to_contain_text("This row has a value but no name")
    _row(get, "Headers", 1)[0].fill("X-Age")
    _row(get, "Query", 2)[0].fill("q")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(get.locator(".field-error").first).to_contain_text("“q” is in two rows")
    _row(get, "Query", 2)[0].fill("tag")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#save-status")).to_contain_text("Saved")


def test_edit_as_json_and_back_and_a_reference_inside_a_json_string(
    web: WebServer, page: Page
) -> None:
    login(page, web)
    page.goto(f"{web.url}/flows/new")
    page.get_by_label("Name", exact=True).fill("Json mode")
    page.get_by_label("Trigger", exact=True).select_option("manual")
    _add_card(page, "Object", "object.construct")
    construct = page.locator('[data-step="construct"]')
    _fill_row(construct, "Keys", 1, "name", "Ada")
    construct.get_by_role("button", name="▶ Test this card").click()
    expect(construct.locator("[data-test-result]")).to_have_attribute("data-test-result", "ok")
    _add_card(page, "Flow", "flow.return")
    ret = page.locator('[data-step="return"]')
    _fill_row(ret, "Keys", 1, "n", "1")

    # Rows → JSON shows the same object; an edit there shows up as rows again.
    ret.get_by_role("button", name="Edit as JSON").click()
    area = ret.get_by_label("Keys (JSON object)")
    expect(area).to_be_focused()
    assert area.input_value().replace(" ", "").replace("\n", "") == '{"n":1}'
    area.fill('{"n": 1, "greeting": "Hello "}')
    # the cursor inside "Hello |": the reference goes into that string, without quotes
    area.evaluate(
        "el => el.setSelectionRange(el.value.indexOf('Hello ') + 6, el.value.indexOf('Hello ') + 6)"
    )
    ret.get_by_role("button", name="Insert a reference into Keys").click()
    ret.get_by_role("searchbox").fill("steps.construct.output.name")
    ret.get_by_role("searchbox").press("Enter")
    expect(area).to_have_value('{"n": 1, "greeting": "Hello {{ steps.construct.output.name }}"}')
    ret.get_by_role("button", name="Edit as rows").click()
    expect(_row(ret, "Keys", 2)[1]).to_have_value("Hello {{ steps.construct.output.name }}")
    expect(_row(ret, "Keys", 1)[1]).to_have_value("1")

    # A whole object from a reference stays JSON: the switch says why.
    ret.get_by_role("button", name="Edit as JSON").click()
    ret.get_by_label("Keys (JSON object)").fill("{{ steps.construct }}")
    ret.get_by_role("button", name="Edit as rows").click()
    expect(ret.locator(".field-error")).to_contain_text("not a JSON object of names and values")
    expect(ret.get_by_label("Keys (JSON object)")).to_have_value("{{ steps.construct }}")
    ret.get_by_label("Keys (JSON object)").fill('{"who": "{{ steps.construct.output.name }}"}')
    ret.get_by_role("button", name="Edit as rows").click()

    # Renaming a card renames the reference in a row.
    card_id = construct.get_by_label("Card id")
    card_id.fill("person")
    card_id.press("Tab")
    expect(_row(page.locator('[data-step="return"]'), "Keys", 1)[1]).to_have_value(
        "{{ steps.person.output.name }}"
    )
    page.get_by_role("button", name="Create flow").click()
    expect(page).to_have_url(re.compile(r"/flows/flw_"))
    with web.api() as api:
        flow = api.get("/api/v1/flows/Json mode").json()
    assert flow["cards"][1]["inputs"] == {"who": "{{ steps.person.output.name }}"}


ROUND_TRIP = """async ([path, cases]) => {
  const inputs = await import(path);
  return cases.map(([kind, value]) => {
    const text = inputs.pairText(kind, value);
    return [text, inputs.pairValue(kind, text)];
  });
}"""


def test_a_row_shows_each_value_as_text_that_reads_back_to_the_same_value(
    web: WebServer, page: Page
) -> None:
    values: list[object] = ["Ada", "42", 42, 1.5, True, "true", None, "null", [1, "a"]]
    values += [{"a": {"b": None}}, '"quoted"', " 42", "{{ steps.a.b }}", "Hi {{ x }}", ""]
    cases = [["any", v] for v in values]
    cases += [["query", v] for v in ["x", ["a", "b"], None, "null", "[1]", '"x"', "{{ a }}"]]
    cases += [["text", v] for v in ["x", "42", '"q"', "{{ a }}", "[1]"]]
    login(page, web)
    answers = page.evaluate(ROUND_TRIP, ["/static/js/card-inputs.js", cases])
    for (kind, value), (text, back) in zip(cases, answers, strict=True):
        assert isinstance(text, str), (kind, value)
        assert back == value, (kind, value, text)
    # in a query a number is text (the URL holds text): 42 is shown and sent as "42"
    assert page.evaluate(ROUND_TRIP, ["/static/js/card-inputs.js", [["query", 42]]]) == [
        ["42", "42"]
    ]
