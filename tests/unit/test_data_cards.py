"""The data cards (JSON, XML, Text, Object), driven through the card runner."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cardflow.cards import data
from cardflow.cards.base import DEFAULT_LIMITS, CardContext, CardOptions, CardSpec
from cardflow.cards.runner import CardResult, run_card, validate_inputs
from cardflow.errors import InvalidInput
from cardflow.net.policy import NetworkPolicy
from cardflow.net.transport import HttpTransport

SPECS = {spec.id: spec for spec in data.CARDS}
SENTINEL = "SENTINEL-d41d8cd98f00b204"

# Files opened by this process (sys.addaudithook cannot be removed, so it only records).
_opened: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and isinstance(args[0], str | Path):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)


def context() -> CardContext:
    # These cards never send anything; the transport is there because the type asks for one.
    transport = HttpTransport(NetworkPolicy(()), max_response_bytes=1024)
    return CardContext(transport=transport, auth=None, options=CardOptions(), timeout=5.0)


async def run(card_id: str, inputs: dict[str, Any]) -> CardResult:
    spec = SPECS[card_id]
    return await run_card(spec, validate_inputs(spec, inputs), context())


async def outputs(card_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    result = await run(card_id, inputs)
    assert result.ok, result.error
    assert result.outputs is not None
    return result.outputs


async def error(card_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The error a user sees, whether the inputs are refused up front or while running."""
    try:
        result = await run(card_id, inputs)
    except InvalidInput as exc:
        return exc.to_dict()
    assert not result.ok, result.outputs
    assert result.error is not None
    return result.error


def test_cards_are_the_data_families() -> None:
    assert {spec.id: spec.family for spec in data.CARDS} == {
        "json.parse": "JSON",
        "json.stringify": "JSON",
        "xml.parse": "XML",
        "xml.build": "XML",
        "text.compose": "Text",
        "object.get": "Object",
        "object.construct": "Object",
    }
    for spec in data.CARDS:
        assert spec.outputs
        assert spec.description
        assert "\n" not in spec.description


@pytest.mark.parametrize("spec", data.CARDS, ids=lambda spec: spec.id)
async def test_every_example_runs(spec: CardSpec) -> None:
    result = await run_card(spec, validate_inputs(spec, spec.example), context())
    assert result.ok, result.error
    assert result.outputs is not None
    assert set(result.outputs) == set(spec.outputs)


async def test_examples_give_what_they_promise() -> None:
    get = SPECS["object.get"]
    assert (await outputs(get.id, get.example))["output"] == ["Ada"]
    parsed = (await outputs("xml.parse", SPECS["xml.parse"].example))["output"]
    assert parsed["soap:Envelope"]["soap:Body"]["user"]["role"] == ["admin", "dev"]


# -- JSON -------------------------------------------------------------------------------

VALUE = {"a": [1, 2.5, True, None, "é ✓"], "b": {"c": "x", "d": {}}, "e": -3}


async def test_json_round_trip_compact_and_indented() -> None:
    compact = (await outputs("json.stringify", {"value": VALUE}))["text"]
    assert compact == '{"a":[1,2.5,true,null,"é ✓"],"b":{"c":"x","d":{}},"e":-3}'
    assert (await outputs("json.parse", {"text": compact}))["output"] == VALUE
    pretty = (await outputs("json.stringify", {"value": VALUE, "indent": 2}))["text"]
    assert pretty == json.dumps(VALUE, indent=2, ensure_ascii=False)
    assert (await outputs("json.parse", {"text": pretty}))["output"] == VALUE


@pytest.mark.parametrize("text, value", [("42", 42), ('"x"', "x"), ("null", None), ("[]", [])])
async def test_json_parse_scalars(text: str, value: Any) -> None:
    assert (await outputs("json.parse", {"text": text}))["output"] == value


async def test_json_stringify_null_and_text() -> None:
    assert (await outputs("json.stringify", {"value": None}))["text"] == "null"
    assert (await outputs("json.stringify", {"value": 'say "hi"'}))["text"] == '"say \\"hi\\""'


async def test_invalid_json_names_text_with_line_and_column() -> None:
    err = await error("json.parse", {"text": '{"a": 1,\n  "b": }'})
    assert err["type"] == "invalid_input"
    assert err["field"] == "inputs.text"
    assert "line 2, column 8" in err["message"]


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "[-Infinity]"])
async def test_json_parse_refuses_nan_and_infinity(text: str) -> None:
    err = await error("json.parse", {"text": text})
    assert err["field"] == "inputs.text"
    assert "not valid JSON" in err["message"]


async def test_json_parse_refuses_deep_nesting_and_huge_text() -> None:
    deep = await error("json.parse", {"text": "[" * 100_000 + "]" * 100_000})
    assert deep["field"] == "inputs.text"
    assert "nests deeper than 64 levels (CARDFLOW_MAX_NESTING_DEPTH)" in deep["message"]
    huge = await error("json.parse", {"text": " " * (data.MAX_TEXT_BYTES + 1)})
    assert huge["field"] == "inputs.text"
    assert "10 MiB" in huge["message"]


@pytest.mark.parametrize("value", [float("nan"), {"a": float("inf")}, {1, 2}, b"bytes"], ids=repr)
async def test_json_stringify_refuses_what_json_cannot_hold(value: Any) -> None:
    err = await error("json.stringify", {"value": value})
    assert err["field"] == "inputs.value"
    assert "cannot be written as JSON" in err["message"]


async def test_json_numbers_too_long_to_convert_are_invalid_input() -> None:
    parsed = await error("json.parse", {"text": "1" * 5000})
    assert parsed["field"] == "inputs.text"
    assert "4300 digits" in parsed["message"]
    assert "set_int_max_str_digits" not in parsed["message"]
    written = await error("json.stringify", {"value": 10**5000})
    assert written["field"] == "inputs.value"
    assert "4300 digits" in written["message"]


async def test_json_stringify_indent_is_checked() -> None:
    err = await error("json.stringify", {"value": 1, "indent": -1})
    assert err["field"] == "inputs.indent"


# -- XML: parse -------------------------------------------------------------------------


async def xml(text: str) -> Any:
    return (await outputs("xml.parse", {"text": text}))["output"]


async def test_xml_attributes_text_and_repeats() -> None:
    text = (
        '<order id="7" xml:lang="en">'
        '<item sku="a">Pen</item><item sku="b">Ink</item>'
        "<note>Fish &amp; chips &lt;3</note><empty/><single><x>1</x></single>"
        "</order>"
    )
    assert await xml(text) == {
        "order": {
            "@id": "7",
            "@xml:lang": "en",
            "item": [{"@sku": "a", "#text": "Pen"}, {"@sku": "b", "#text": "Ink"}],
            "note": "Fish & chips <3",
            "empty": None,
            "single": {"x": "1"},
        }
    }


async def test_xml_soap_envelope_keeps_prefixes_as_written() -> None:
    text = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:m="urn:example:users">
  <soap:Header><m:Trace>abc</m:Trace></soap:Header>
  <soap:Body>
    <m:GetUserResponse xmlns="urn:example:default">
      <m:User m:id="7"><m:Name>Ada</m:Name><plain>x</plain></m:User>
    </m:GetUserResponse>
  </soap:Body>
</soap:Envelope>
"""
    assert await xml(text) == {
        "soap:Envelope": {
            "@xmlns:soap": "http://schemas.xmlsoap.org/soap/envelope/",
            "@xmlns:m": "urn:example:users",
            "soap:Header": {"m:Trace": "abc"},
            "soap:Body": {
                "m:GetUserResponse": {
                    "@xmlns": "urn:example:default",
                    "m:User": {"@m:id": "7", "m:Name": "Ada", "plain": "x"},
                }
            },
        }
    }


async def test_xml_declared_encoding_does_not_garble_text() -> None:
    # The text is already decoded: a declaration naming another encoding changes nothing.
    text = '<?xml version="1.0" encoding="ISO-8859-1"?><a>é ✓</a>'
    assert await xml(text) == {"a": "é ✓"}


@pytest.fixture
def secret_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "secret.txt"
    path.write_text(SENTINEL)
    _opened.clear()
    yield path
    assert str(path) not in _opened, "the card opened the file"


def _refused(err: dict[str, Any]) -> None:
    assert err["type"] == "invalid_input"
    assert err["field"] == "inputs.text"
    assert "DOCTYPE" in err["message"]
    assert SENTINEL not in json.dumps(err)


@pytest.mark.parametrize(
    "template",
    [
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file://{path}">]><x>&e;</x>',
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "{path}">]><x>&e;</x>',
        '<!DOCTYPE x [<!ENTITY % p SYSTEM "file://{path}"> %p;]><x/>',
        '<!DOCTYPE x SYSTEM "file://{path}"><x>&e;</x>',
        '<!DOCTYPE x [<!ATTLIST x a CDATA "&e;"><!ENTITY e SYSTEM "file://{path}">]><x/>',
    ],
    ids=["xxe", "xxe-relative", "parameter-entity", "external-dtd", "attribute-default"],
)
async def test_xml_external_entities_are_refused_without_reading_the_file(
    template: str, secret_file: Path
) -> None:
    result_error = await error("xml.parse", {"text": template.format(path=secret_file)})
    _refused(result_error)


async def test_xml_billion_laughs_is_refused() -> None:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    err = await error("xml.parse", {"text": f"<!DOCTYPE lolz [{entities}]><lolz>&lol9;</lolz>"})
    _refused(err)
    assert "lollol" not in err["message"]


async def test_xml_external_references_never_touch_the_network() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/evil.dtd"
        for text in (
            f'<!DOCTYPE x SYSTEM "{url}"><x/>',
            f'<!DOCTYPE x PUBLIC "-//EVIL//DTD x//EN" "{url}"><x/>',
            f'<!DOCTYPE x [<!ENTITY % p SYSTEM "{url}"> %p;]><x/>',
            f'<!DOCTYPE x [<!ENTITY e SYSTEM "{url}">]><x>&e;</x>',
        ):
            _refused(await error("xml.parse", {"text": text}))
        with pytest.raises(TimeoutError):
            listener.accept()


@pytest.mark.parametrize(
    "text, words",
    [
        ("<a><b></a>", "mismatched tag at line 1, column 9"),
        ("<a>&nope;</a>", "undefined entity at line 1"),
        ("<a/><b/>", "junk after document element"),
        ("", "no element found"),
        ("just text", "syntax error"),
        ("<a>\n\n  <b x=1/></a>", "line 3"),
    ],
)
async def test_malformed_xml_is_invalid_input(text: str, words: str) -> None:
    err = await error("xml.parse", {"text": text})
    assert err["field"] == "inputs.text"
    assert "not well-formed XML" in err["message"]
    assert words in err["message"]


async def test_xml_too_deep_or_too_big_is_refused() -> None:
    most = DEFAULT_LIMITS.max_nesting_depth
    depth = most + 1
    deep = await error("xml.parse", {"text": "<a>" * depth + "</a>" * depth})
    assert deep["field"] == "inputs.text"
    assert f"more than {most} levels deep (CARDFLOW_MAX_NESTING_DEPTH)" in deep["message"]
    fine = most
    assert await xml("<a>" * fine + "</a>" * fine)
    big = await error("xml.parse", {"text": "<a>" + "é" * (data.MAX_TEXT_BYTES // 2) + "</a>"})
    assert big["field"] == "inputs.text"
    assert "larger than 10 MiB" in big["message"]


async def test_xml_lone_surrogate_is_invalid_input() -> None:
    err = await error("xml.parse", {"text": "<a>\ud800</a>"})
    assert err["field"] == "inputs.text"


# -- XML: build -------------------------------------------------------------------------

DOCUMENT = {
    "soap:Envelope": {
        "@xmlns:soap": "http://schemas.xmlsoap.org/soap/envelope/",
        "soap:Body": {
            "order": {
                "@id": "7",
                "item": [{"@sku": "a", "#text": "Pen"}, {"@sku": "b", "#text": '<Ink> & "co"'}],
                "note": "multi\nline",
                "empty": None,
            }
        },
    }
}


@pytest.mark.parametrize("pretty", [False, True])
async def test_xml_build_and_parse_round_trip(pretty: bool) -> None:
    text = (await outputs("xml.build", {"value": DOCUMENT, "pretty": pretty}))["text"]
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    assert ("\n  <soap:Body>" in text) is pretty
    assert await xml(text) == DOCUMENT


async def test_xml_build_writes_scalars_as_text() -> None:
    value = {"r": {"@on": True, "n": 3, "f": 1.5, "off": False}}
    text = (await outputs("xml.build", {"value": value}))["text"]
    assert await xml(text) == {"r": {"@on": "true", "n": "3", "f": "1.5", "off": "false"}}


@pytest.mark.parametrize(
    "value, words",
    [
        ("<a/>", "must be an object with one root key"),
        ([{"a": 1}], "must be an object with one root key"),
        ({}, "exactly one root key, not 0"),
        ({"a": 1, "b": 2}, "exactly one root key, not 2"),
        ({"@a": "1"}, "not an element name"),
        ({"#text": "x"}, "not an element name"),
        ({"a": [{"x": "1"}, {"x": "2"}]}, "multiple roots"),
        ({"a": {"b c": "1"}}, "whitespace not allowed"),
        ({"a": {"@x>": "1"}}, "not allowed"),
        ({"1a": "x"}, "does not give well-formed XML: not well-formed (invalid token)"),
        ({"a": "bell \x07"}, "does not give well-formed XML"),
    ],
)
async def test_xml_build_refuses_values_that_are_not_one_document(value: Any, words: str) -> None:
    err = await error("xml.build", {"value": value})
    assert err["type"] == "invalid_input"
    assert err["field"] == "inputs.value"
    assert words in err["message"]


async def test_xml_build_refuses_too_deep_values() -> None:
    value: dict[str, Any] = {"leaf": "x"}
    for _ in range(data.MAX_XML_DEPTH):
        value = {"a": value}
    err = await error("xml.build", {"value": value})
    assert err["field"] == "inputs.value"
    assert "levels deep" in err["message"]


# -- Text -------------------------------------------------------------------------------


async def test_text_compose_returns_the_filled_in_template() -> None:
    # In a flow the engine has already replaced the expressions; run alone, nothing changes.
    template = "Hello {{ steps.user.output.name }}!"
    assert (await outputs("text.compose", {"template": template}))["text"] == template
    assert (await outputs("text.compose", {"template": "Hello Ada!"}))["text"] == "Hello Ada!"


@pytest.mark.parametrize(
    "value, text",
    [(5, "5"), (None, ""), (True, "true"), ({"a": [1, "é"]}, '{"a":[1,"é"]}'), ("", "")],
)
async def test_text_compose_turns_a_whole_expression_value_into_text(value: Any, text: str) -> None:
    assert (await outputs("text.compose", {"template": value}))["text"] == text


async def test_text_compose_needs_a_template() -> None:
    assert (await error("text.compose", {}))["field"] == "inputs.template"


# -- Object -----------------------------------------------------------------------------

OBJECT = {
    "user": {"name": "Ada", "emails": [{"kind": "work", "to": "ada@w"}, {"kind": "home"}]},
    "items": [{"id": 1, "active": True}, {"id": 2, "active": False}, {"id": 3, "active": True}],
    "x.y": "dotted",
}


@pytest.mark.parametrize(
    "path, value",
    [
        ("user.name", "Ada"),
        ("user.emails[0].to", "ada@w"),
        ("user.emails[-1].kind", "home"),
        ("items[?active].id", [1, 3]),
        ("length(items)", 3),
        ('"x.y"', "dotted"),
        ("user.missing.deeper", None),
        ("@", OBJECT),
    ],
)
async def test_object_get_nested_paths(path: str, value: Any) -> None:
    assert (await outputs("object.get", {"object": OBJECT, "path": path}))["output"] == value


@pytest.mark.parametrize(
    "path, words",
    [
        ("items[", "not a valid JMESPath expression: it ends too early (after character 6)"),
        ("user name", "not a valid JMESPath expression: unexpected “name” at character 6"),
        ("&&", "not a valid JMESPath expression"),
        ("length(user.name.first)", "failed on this object"),
        ("abs(user)", "failed on this object: In function abs(), invalid type"),
    ],
)
async def test_object_get_bad_path_names_path(path: str, words: str) -> None:
    err = await error("object.get", {"object": OBJECT, "path": path})
    assert err["type"] == "invalid_input"
    assert err["field"] == "inputs.path"
    assert words in err["message"]
    assert "\n" not in err["message"]


async def test_object_get_empty_path_and_missing_object() -> None:
    assert (await error("object.get", {"object": {}, "path": ""}))["field"] == "inputs.path"
    assert (await error("object.get", {"path": "a"}))["field"] == "inputs.object"
    assert (await outputs("object.get", {"object": None, "path": "a"}))["output"] is None


@pytest.mark.parametrize(
    "inputs",
    [
        {},
        {"name": "Ada", "nested": {"a": [1, None]}, "n": 0, "none": None},
        {"model_config": "x", "object": 1, "": "empty key", "path": "p"},
    ],
)
async def test_object_construct_keeps_exactly_the_given_keys(inputs: dict[str, Any]) -> None:
    result = await outputs("object.construct", inputs)
    assert result == {"output": inputs}
    assert list(result["output"]) == list(inputs)


async def test_object_get_says_whether_the_path_found_something_and_can_fail_on_nothing() -> None:
    found = await outputs("object.get", {"object": OBJECT, "path": "user.name"})
    assert found["found"] is True
    missing = await outputs("object.get", {"object": OBJECT, "path": "user.nope"})
    assert missing == {"output": None, "found": False}
    err = await error("object.get", {"object": OBJECT, "path": "user.nope", "on_missing": "fail"})
    assert err["field"] == "inputs.path"
    assert "'user.nope' matches nothing" in err["message"]
    bad = await error("object.get", {"object": OBJECT, "path": "a", "on_missing": "maybe"})
    assert bad["field"] == "inputs.on_missing"
