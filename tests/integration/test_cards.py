"""API Connector cards against a real loopback upstream (through the library API)."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest

import cardflow
from cardflow.app import Cardflow
from tests.support.upstream import Upstream


def _name() -> str:
    return f"conn-{secrets.token_hex(4)}"


def wire_headers(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in record["headers"]]


def header_on_wire(record: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in record["headers"] if key.lower() == name.lower()]


def test_basic_connection_sends_basic_header(cf: Cardflow, upstream: Upstream) -> None:
    name = _name()
    cf.connections.create(name, "basic", {"username": "alice", "password": "pw-ü"})
    result = cf.test_card(
        "api_connector.get", connection=name, inputs={"url": f"{upstream.url}/echo"}
    )
    assert result.ok, result.error
    sent = header_on_wire(upstream.requests[-1], "authorization")  # type: ignore[arg-type]
    assert sent == ["Basic " + base64.b64encode("alice:pw-ü".encode()).decode()]
    # the upstream echoed the header: what the test answers has it blanked
    echoed = header_on_wire(result.outputs["body"], "authorization")  # type: ignore[index]
    assert echoed == ["Basic [redacted]"]
    assert result.run_id is not None
    assert cf.runs.get(result.run_id).cards[0].status_code == 200


def test_custom_header_name_is_sent_exactly_as_typed(cf: Cardflow, upstream: Upstream) -> None:
    name = _name()
    cf.connections.create(name, "custom", {"header_name": "api_key", "header_value": "k-123"})
    result = cf.test_card(
        "api_connector.get", connection=name, inputs={"url": f"{upstream.url}/echo"}
    )
    assert result.ok, result.error
    assert ("api_key", "k-123") in wire_headers(upstream.requests[-1])  # type: ignore[arg-type]
    assert ("api_key", "[redacted]") in wire_headers(result.outputs["body"])  # type: ignore[index]


def test_none_connection_and_no_connection_add_nothing(cf: Cardflow, upstream: Upstream) -> None:
    name = _name()
    cf.connections.create(name, "none", {})
    for connection in (name, None):
        result = cf.test_card(
            "api_connector.get",
            connection=connection,
            inputs={"url": f"{upstream.url}/echo", "headers": {"X-Trace": "1"}},
        )
        assert result.ok
        record = result.outputs["body"]  # type: ignore[index]
        assert header_on_wire(record, "authorization") == []
        assert header_on_wire(record, "X-Trace") == ["1"]


def test_query_is_merged_with_url_query(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    result = sqlite_cf.test_card(
        "api_connector.get",
        inputs={
            "url": f"{upstream.url}/echo?a=1",
            "query": {"b": "two words", "c": [1, 2], "d": True, "skip": None},
        },
    )
    assert result.ok
    assert result.outputs["body"]["query"] == {  # type: ignore[index]
        "a": ["1"],
        "b": ["two words"],
        "c": ["1", "2"],
        "d": ["true"],
    }


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_json_cards_encode_objects(sqlite_cf: Cardflow, upstream: Upstream, method: str) -> None:
    body = {"name": "Ada", "tags": ["x"], "n": 1.5, "unicode": "ü"}
    result = sqlite_cf.test_card(
        f"api_connector.{method}", inputs={"url": f"{upstream.url}/echo", "body": body}
    )
    assert result.ok, result.error
    record = result.outputs["body"]  # type: ignore[index]
    assert record["method"] == method.upper()
    assert header_on_wire(record, "content-type") == ["application/json"]
    assert json.loads(record["body"]) == body


def test_text_body_and_explicit_content_type(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    result = sqlite_cf.test_card(
        "api_connector.post",
        inputs={
            "url": f"{upstream.url}/echo",
            "headers": {"content-type": "text/plain"},
            "body": "just text",
        },
    )
    record = result.outputs["body"]  # type: ignore[index]
    assert header_on_wire(record, "content-type") == ["text/plain"]
    assert record["body"] == "just text"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/json", {"hello": "world", "n": 1}),
        ("/vnd-json", {"hello": "world", "n": 1}),
        ("/text", "plain text"),
        ("/empty", None),
        ("/empty200", None),
    ],
)
def test_response_parsing(
    sqlite_cf: Cardflow, upstream: Upstream, path: str, expected: object
) -> None:
    result = sqlite_cf.test_card("api_connector.get", inputs={"url": upstream.url + path})
    assert result.ok, result.error
    assert result.outputs["body"] == expected  # type: ignore[index]


def test_invalid_json_with_json_content_type_fails_clearly(
    sqlite_cf: Cardflow, upstream: Upstream
) -> None:
    result = sqlite_cf.test_card("api_connector.get", inputs={"url": f"{upstream.url}/bad-json"})
    assert not result.ok
    assert result.error["type"] == "invalid_response"  # type: ignore[index]
    assert "not valid JSON" in result.error["message"]  # type: ignore[index]


def test_raw_request_is_byte_exact_and_unparsed(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    envelope = '<?xml version="1.0"?>\r\n<Envelope a="ü">  <Body/></Envelope>\n'
    result = sqlite_cf.test_card(
        "api_connector.raw_request",
        inputs={
            "url": f"{upstream.url}/echo",
            "method": "propfind",
            "headers": {"Content-Type": "text/xml; charset=utf-8"},
            "body": envelope,
        },
    )
    assert result.ok, result.error
    record = json.loads(result.outputs["body"])  # type: ignore[index]  # text, not parsed
    assert record["method"] == "PROPFIND"
    assert base64.b64decode(record["body_b64"]) == envelope.encode()
    xml = sqlite_cf.test_card(
        "api_connector.raw_request", inputs={"url": f"{upstream.url}/xml", "method": "GET"}
    )
    assert xml.outputs["body"].startswith("<?xml")  # type: ignore[index]


def test_non_2xx_fails_with_status_headers_and_excerpt(
    sqlite_cf: Cardflow, upstream: Upstream
) -> None:
    result = sqlite_cf.test_card("api_connector.get", inputs={"url": f"{upstream.url}/status/404"})
    assert not result.ok
    assert result.outputs is None
    assert result.error["type"] == "upstream_status"  # type: ignore[index]
    assert result.error["status_code"] == 404  # type: ignore[index]
    assert '"status": 404' in result.error["body_excerpt"]  # type: ignore[index]
    assert result.status_code == 404


def test_on_error_continue_returns_outputs(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    result = sqlite_cf.test_card(
        "api_connector.get",
        inputs={"url": f"{upstream.url}/status/500"},
        options={"on_error": "continue"},
    )
    assert not result.ok
    assert result.outputs is not None
    assert result.outputs["status_code"] == 500
    assert result.outputs["body"] == {"status": 500}
    assert result.outputs["error"]["type"] == "upstream_status"


def test_429_is_retried_honouring_retry_after(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    key = secrets.token_hex(4)
    result = sqlite_cf.test_card(
        "api_connector.get",
        inputs={"url": f"{upstream.url}/flaky/{key}?fail=2&code=429&retry_after=0"},
        options={"retry": {"count": 2, "max_wait": 1}},
    )
    assert result.ok, result.error
    assert upstream.calls(key) == 3


def test_retry_count_is_respected(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    key = secrets.token_hex(4)
    result = sqlite_cf.test_card(
        "api_connector.get",
        inputs={"url": f"{upstream.url}/flaky/{key}?fail=5&code=429&retry_after=0"},
        options={"retry": {"count": 1, "max_wait": 1}},
    )
    assert not result.ok
    assert result.error["status_code"] == 429  # type: ignore[index]
    assert upstream.calls(key) == 2


def test_503_is_retried_only_with_retry_after(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    plain, with_header = secrets.token_hex(4), secrets.token_hex(4)
    sqlite_cf.test_card(
        "api_connector.get", inputs={"url": f"{upstream.url}/flaky/{plain}?fail=1&code=503"}
    )
    assert upstream.calls(plain) == 1
    result = sqlite_cf.test_card(
        "api_connector.get",
        inputs={"url": f"{upstream.url}/flaky/{with_header}?fail=1&code=503&retry_after=0"},
    )
    assert result.ok
    assert upstream.calls(with_header) == 2


def test_retry_after_is_capped_by_max_wait(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    key = secrets.token_hex(4)
    result = sqlite_cf.test_card(
        "api_connector.get",
        inputs={"url": f"{upstream.url}/flaky/{key}?fail=1&code=429&retry_after=3600"},
        options={"retry": {"count": 1, "max_wait": 0.2}},
    )
    assert result.ok
    assert result.duration_ms < 3_000_000  # it did not wait an hour; the cap applied


def test_hanging_upstream_times_out(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    result = sqlite_cf.test_card(
        "api_connector.get", inputs={"url": f"{upstream.url}/hang"}, options={"timeout": 0.5}
    )
    assert not result.ok
    assert result.error["type"] == "timeout"  # type: ignore[index]
    assert result.error["retryable"] is True  # type: ignore[index]


def test_connection_reset_is_a_clear_error(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    result = sqlite_cf.test_card("api_connector.get", inputs={"url": f"{upstream.url}/reset"})
    assert not result.ok
    assert result.error["type"] == "connection_error"  # type: ignore[index]


@pytest.mark.parametrize("route", ["big", "big-declared"])
def test_response_cap(tmp_path: Any, upstream: Upstream, route: str) -> None:
    with cardflow.open(home=tmp_path, max_response_bytes=1024 * 1024) as cf:
        result = cf.test_card("api_connector.get", inputs={"url": f"{upstream.url}/{route}?mib=50"})
        assert not result.ok
        assert result.error["type"] == "response_too_large"  # type: ignore[index]
        assert "1,048,576 bytes" in result.error["message"]  # type: ignore[index]
        # and it keeps working afterwards
        assert cf.test_card("api_connector.get", inputs={"url": f"{upstream.url}/json"}).ok


def test_default_cap_is_10_mib(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    result = sqlite_cf.test_card("api_connector.get", inputs={"url": f"{upstream.url}/big?mib=50"})
    assert result.error["type"] == "response_too_large"  # type: ignore[index]
    assert "10,485,760" in result.error["message"]  # type: ignore[index]


def test_redirects_followed_up_to_five(sqlite_cf: Cardflow, upstream: Upstream) -> None:
    ok = sqlite_cf.test_card(
        "api_connector.get",
        inputs={"url": f"{upstream.url}/redirect-chain/4"},  # 5 hops
    )
    assert ok.ok, ok.error
    assert ok.outputs["body"]["path"] == "/echo"  # type: ignore[index]
    too_many = sqlite_cf.test_card(
        "api_connector.get",
        inputs={"url": f"{upstream.url}/redirect-chain/5"},  # 6 hops
    )
    assert too_many.error["type"] == "too_many_redirects"  # type: ignore[index]


@pytest.mark.parametrize(
    ("auth_type", "config", "header"),
    [
        ("basic", {"username": "u", "password": "p"}, "authorization"),
        ("custom", {"header_name": "api_key", "header_value": "v"}, "api_key"),
    ],
)
def test_connection_headers_never_go_to_another_origin(
    sqlite_cf: Cardflow, upstream: Upstream, auth_type: str, config: dict[str, str], header: str
) -> None:
    name = _name()
    sqlite_cf.connections.create(name, auth_type, config)
    port = upstream.url.rsplit(":", 1)[1]
    same = f"{upstream.url}/echo"
    other = f"http://localhost:{port}/echo"  # same server, another origin
    kept = sqlite_cf.test_card(
        "api_connector.get", connection=name, inputs={"url": f"{upstream.url}/redirect?to={same}"}
    )
    assert header_on_wire(kept.outputs["body"], header) != []  # type: ignore[index]
    dropped = sqlite_cf.test_card(
        "api_connector.get", connection=name, inputs={"url": f"{upstream.url}/redirect?to={other}"}
    )
    assert dropped.ok, dropped.error
    assert dropped.outputs["body"]["path"] == "/echo"  # type: ignore[index]
    assert header_on_wire(dropped.outputs["body"], header) == []  # type: ignore[index]


def test_denied_network_is_refused_before_connecting(tmp_path: Any, upstream: Upstream) -> None:
    before = len(upstream.requests)
    with cardflow.open(home=tmp_path, deny_networks="127.0.0.0/8,::1/128") as cf:
        for url in (
            f"{upstream.url}/echo",
            f"http://localhost:{upstream.url.rsplit(':', 1)[1]}/echo",
        ):
            result = cf.test_card("api_connector.get", inputs={"url": url})
            assert not result.ok
            assert result.error["type"] == "network_denied"  # type: ignore[index]
    assert len(upstream.requests) == before


def test_redirect_into_denied_network_is_refused(tmp_path: Any, upstream: Upstream) -> None:
    port = upstream.url.rsplit(":", 1)[1]
    with cardflow.open(
        home=tmp_path, deny_networks="127.0.0.0/8", allow_networks="127.0.0.1/32"
    ) as cf:
        result = cf.test_card(
            "api_connector.get",
            inputs={"url": f"{upstream.url}/redirect?to=http://127.0.0.2:{port}/echo"},
        )
        assert result.error["type"] == "network_denied"  # type: ignore[index]
        assert cf.test_card("api_connector.get", inputs={"url": f"{upstream.url}/json"}).ok


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"url": "ftp://example.test/x"}, "inputs.url"),
        ({"url": "/relative"}, "inputs.url"),
        ({}, "inputs.url"),
        (
            {"url": "http://127.0.0.1/", "headers": {"X-A": "a\r\nInjected: 1"}},
            "inputs.headers.X-A",
        ),
        ({"url": "http://127.0.0.1/", "headers": {"Bad Name": "x"}}, "inputs.headers.Bad Name"),
        ({"url": "http://127.0.0.1/", "query": {"a": {"nested": 1}}}, "inputs.query.a"),
        ({"url": "http://127.0.0.1/", "bogus": 1}, "inputs.bogus"),
    ],
)
def test_bad_inputs_name_the_field(sqlite_cf: Cardflow, inputs: dict[str, Any], field: str) -> None:
    from cardflow.errors import InvalidInput

    with pytest.raises(InvalidInput) as info:
        sqlite_cf.test_card("api_connector.get", inputs=inputs)
    assert info.value.field is not None
    assert info.value.field.startswith(field)


def test_unencodable_body_names_the_field(sqlite_cf: Cardflow) -> None:
    from cardflow.errors import InvalidInput

    result_error = None
    try:
        sqlite_cf.test_card(
            "api_connector.post", inputs={"url": "http://127.0.0.1:9/", "body": {"x": float("nan")}}
        )
    except InvalidInput as exc:
        result_error = exc
    assert result_error is not None and result_error.field == "inputs.body"
